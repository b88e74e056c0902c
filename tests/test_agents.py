"""Every agent shipped in agents/ loads (safetensors, no code run), carries the config it was
trained with, and still plays as well as its card says."""
import numpy as np
import pytest
from omegaconf import OmegaConf

from rlkit.watch import AGENTS_DIR, main as watch, shipped_agents

# The least mean return over 10 sampled episodes for each shipped agent, well below its card's
# 100-episode score (ViZDoom Basic: 80; uniformly random actions score about -120 there).
FLOOR = {"doom-basic": 50.0}


def test_every_shipped_agent_has_a_card_and_a_floor():
    assert shipped_agents() == sorted(FLOOR)
    for name in shipped_agents():
        assert (AGENTS_DIR / name / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(FLOOR))
def test_shipped_agent_plays_as_its_card_says(name, capsys):
    import rlkit

    agent = rlkit.load_agent(AGENTS_DIR / name)
    shipped = OmegaConf.load(AGENTS_DIR / name / "config.yaml")
    assert OmegaConf.to_container(shipped) == OmegaConf.to_container(agent.cfg)
    returns = watch([f"agent={name}", "episodes=10", "record=none", "seed=0"])
    assert len(returns) == 10 and np.mean(returns) >= FLOOR[name]
    assert "mean return" in capsys.readouterr().out
