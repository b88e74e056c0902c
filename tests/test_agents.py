"""Every agent shipped in agents/ loads (safetensors, no code run), carries the config it was
trained with, and still plays as well as its card says."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from rlkit.stored import stored_config
from rlkit.watch import AGENTS_DIR, shipped_agents
from rlkit.watch import main as watch

# The least mean return over sampled episodes (board games: greedy games against `random`,
# +1 a win, -1 a loss) for each shipped agent, well below its card's score (ViZDoom Basic: 80,
# where uniformly random actions score about -120; doom-defend-the-center: 6.0, random 0.5;
# connect-four (AlphaZero-style) and connect-four-ppo:
# 199 and 200 of 200 won against random, greedy;
# pong: 18.2, where random play scores about -20 (3 games: a game of Pong takes about 5 s); go: 194 and 195
# of 200 won against random; tictactoe: 191 won, 9 drawn of 200 against random).
FLOOR = {"doom-basic": 50.0, "doom-defend-the-center": 3.0, "connect-four": 0.6, "connect-four-ppo": 0.6,
         "pong": 10.0, "go": 0.6, "tictactoe": 0.6}
WATCH = {"doom-basic": ["episodes=10", "record=none"], "doom-defend-the-center": ["episodes=10", "record=none"],
         "connect-four": ["episodes=10", "opponent=random"],
         "connect-four-ppo": ["episodes=10", "opponent=random"],
         "pong": ["episodes=3", "record=none"], "go": ["episodes=10", "opponent=random"],
         "tictactoe": ["episodes=10", "opponent=random"]}


def test_every_shipped_agent_has_a_card_and_a_floor():
    from safetensors import safe_open

    from rlkit import checkpoint

    assert shipped_agents() == sorted(FLOOR)
    for name in shipped_agents():
        assert (AGENTS_DIR / name / "README.md").is_file()
        with safe_open(str(AGENTS_DIR / name / "agent.safetensors"), "pt") as f:  # damage to any byte is found
            assert f.metadata()["format"] == checkpoint.FORMAT and len(f.metadata()["digest"]) == 64


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOOR))
def test_shipped_agent_plays_as_its_card_says(name, capsys):
    import rlkit

    agent = rlkit.load_agent(AGENTS_DIR / name)
    # config.yaml holds what the file holds; both read alike (keys added to rlkit since filled in)
    shipped, _ = stored_config(OmegaConf.to_container(OmegaConf.load(AGENTS_DIR / name / "config.yaml")), name)
    assert OmegaConf.to_container(shipped) == OmegaConf.to_container(agent.cfg)
    returns = watch([f"agent={name}", "seed=0", *WATCH[name]])
    assert len(returns) == int(WATCH[name][0].split("=")[1]) and np.mean(returns) >= FLOOR[name]
    assert "mean return" in capsys.readouterr().out


def test_the_shipped_tictactoe_agent_never_loses_to_perfect_play_as_loaded():
    import rlkit
    from rlkit.players import against_minimax

    agent = rlkit.load_agent(AGENTS_DIR / "tictactoe")  # greedy: a board agent's default
    for seat in (0, 1):
        assert against_minimax(agent, seat)["lost"] == 0
