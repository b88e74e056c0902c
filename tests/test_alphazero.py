"""algo=alphazero: the positions and results a searched self-play game leaves in the window, the
update's targets and mirror images, and a tiny run from the command line through the arena."""
import numpy as np
import pytest
import torch

from rlkit.algos import alphazero
from rlkit.config import UsageError, load_config
from rlkit.games import connect_four as c4
from rlkit.games import position
from rlkit.nets import make_policy
from tests.conftest import run_cli


def collector(**algo):
    overrides = [f"algo.{k}={v}" for k, v in algo.items()]
    cfg = load_config(["env=connect_four", "algo=alphazero", "num_envs=1", "env.selfplay.opening_moves=0",
                       *overrides])
    return alphazero.SearchSelfPlay(cfg, torch.device("cpu"), seed=0)


class Scripted:
    """Stands in for search.search: the moves of a script, with made-up visit counts."""

    def __init__(self, moves):
        self.moves, self.calls = list(moves), []

    def __call__(self, policy, pos, mask, sims, c_puct, device, noise, game, gumbel, considered):
        self.calls.append((pos.copy(), mask.copy(), noise.copy()))
        col = self.moves.pop(0)
        visits = np.ones((len(pos), 7)) * mask
        visits[:, col] += 10
        trees = type("Trees", (), {})()
        trees.targets, trees.best = lambda: visits / visits.sum(1, keepdims=True), lambda: np.full(len(pos), col)
        return trees


@pytest.mark.parametrize("opened", [0, 1])
def test_a_searched_game_leaves_each_position_with_its_movers_result(monkeypatch, opened):
    # First searcher: column 0 four times; second: column 1 three times. The first searcher wins
    # in 7; it is the first player unless the game opened with one random move (counted, not kept).
    game = [0, 1, 0, 1, 0, 1, 0]
    script = Scripted([*game, 2])
    monkeypatch.setattr(alphazero.search, "search", script)
    c = collector(num_steps=8, temperature_moves=0)
    c.opened[0] = opened
    batch, episodes = c.collect(policy=None)
    assert episodes == [(1.0, 7)] if not opened else [(-1.0, 8)]
    assert c.filled == 7 and batch["new"] == 8  # the 8th move is the next game's first, still open
    # The window holds the game last move first: the winner's positions +1, the loser's -1.
    assert batch["z"].tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    for k, (pos, mask, noise) in enumerate(script.calls[:7]):
        j = 6 - k
        assert (batch["obs"][j].numpy() == pos[0]).all()  # the mover's view
        assert batch["masks"][j].tolist() == mask[0].tolist()
        assert batch["pi"][j].argmax().item() == game[k] and batch["pi"][j].sum().item() == pytest.approx(1)
        assert noise.sum() == pytest.approx(1) and (noise[~mask] == 0).all()
    second_to_move = batch["obs"][5].numpy()  # after the first move: the first mover's stone is "theirs"
    assert second_to_move[5, 0, 1] == 1 and second_to_move[..., 0].sum() == 0
    assert c.pos.sum() == 1  # the new game, one stone in


def test_a_draw_is_zero_for_both_sides_and_the_window_wraps():
    c = collector(replay_size=5, batch_size=4)
    c.history[0] = [(np.zeros((6, 7, 2), np.int8), np.ones(7, bool), np.full(7, 1 / 7, np.float32))] * 3
    c._keep(0, 0.0)
    assert c.window["z"][:3].tolist() == [0.0, 0.0, 0.0] and c.filled == 3
    c.history[0] = c.history[0] * 2
    c._keep(0, -1.0)  # 6 more into 5 places: the oldest go
    assert c.filled == 5 and c.next == 4
    assert c.window["z"].tolist() == [1.0, -1.0, 1.0, -1.0, -1.0]  # written last move first, from place 3 on


def test_the_window_is_saved_oldest_first_and_refilled():
    c = collector(replay_size=5, batch_size=4)
    for k in range(7):  # 7 one-position games, each z = its number: 5 places hold games 2..6
        c.history[0] = [(np.full((6, 7, 2), k, np.int8), np.ones(7, bool), np.full(7, k, np.float32))]
        c._keep(0, -float(k))
    state = c.state()
    assert state["tensors"]["z"].tolist() == [2, 3, 4, 5, 6]
    assert state["tensors"]["obs"][:, 0, 0, 0].tolist() == [2, 3, 4, 5, 6]
    again = collector(replay_size=5, batch_size=4)
    again.load_state(state)
    assert again.filled == 5 and again.next == 0 and again.state()["tensors"]["pi"][:, 0].tolist() == [2, 3, 4, 5, 6]
    narrower = collector(replay_size=3, batch_size=2)
    narrower.load_state(state)  # the newest that fit
    assert narrower.window["z"].tolist() == [4, 5, 6] and narrower.filled == 3 and narrower.next == 0
    part = collector(replay_size=8, batch_size=2)
    part.load_state(state)
    assert part.filled == 5 and part.next == 5 and part.window["z"][:5].tolist() == [2, 3, 4, 5, 6]


def test_update_learns_the_visit_shares_and_results_and_their_mirror_image():
    torch.manual_seed(0)
    cfg = load_config(["env=connect_four", "algo=alphazero", "algo.batch_size=32", "algo.replay_ratio=32"])
    import gymnasium as gym

    policy = make_policy(load_config(["env=connect_four", "model=mlp"]).model,
                         gym.spaces.Box(0, 1, (6, 7, 2), np.int8), gym.spaces.Discrete(7), board=True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    mine, theirs = np.zeros((2, 42), bool), np.zeros((2, 42), bool)
    mine[0, [35, 36]], theirs[0, [40, 33]] = True, True  # lopsided: its mirror image is another position
    mine[1, [41]], theirs[1, [34, 27]] = True, True
    pi = np.zeros((2, 7), np.float32)
    pi[0, 1], pi[1, 6] = 1.0, 1.0
    pos = position(mine, theirs, (6, 7))
    window = {"obs": pos.astype(np.int8), "masks": c4.legal(pos), "pi": pi,
              "z": np.array([1.0, -1.0], np.float32)}
    batch = {k: torch.as_tensor(np.concatenate([v] * 16)) for k, v in window.items()}  # 32 positions
    batch["new"], batch["game"] = 32, "connect_four"
    small = {k: v[:31] for k, v in batch.items() if k not in ("new", "game")}
    small.update(new=32, game="connect_four")
    assert alphazero.update(policy, optimizer, small, cfg.algo) == {}  # less than a minibatch: no step
    for _ in range(10):
        stats = alphazero.update(policy, optimizer, batch, cfg.algo)
    assert stats["stats/gradient_steps"] == 32 and stats["loss/policy"] < 0.2 and stats["loss/value"] < 0.1
    mirror = np.concatenate([pos, pos[:, :, ::-1]]).astype(np.int8)
    masks = np.concatenate([c4.legal(pos), c4.legal(pos)[:, ::-1]])
    with torch.no_grad():
        logits, value = policy(torch.as_tensor(mirror.copy()), torch.as_tensor(masks.copy()))
    assert logits.argmax(1).tolist() == [1, 6, 5, 0]  # the image's move is the mirrored column
    assert value.tolist() == pytest.approx([1, -1, 1, -1], abs=0.3)


@pytest.mark.slow
def test_alphazero_trains_from_the_command_line_and_its_agent_plays(tmp_path):
    run = tmp_path / "az"
    done = run_cli("rlkit.train", "env=connect_four", "algo=alphazero", "num_envs=8", "algo.sims=4",
                   "algo.num_steps=8", "algo.batch_size=16", "total_steps=256", "progress=false",
                   "env.selfplay.eval_games=2", f"run_dir={run}")
    assert done.returncode == 0, done.stderr
    assert (run / "checkpoints" / "final.safetensors").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    assert ea.Scalars("stats/gradient_steps") and ea.Scalars("elo/latest")  # it learned, and rated snapshots
    from rlkit import checkpoint

    first = checkpoint.load(run / "checkpoints" / "final.safetensors")["collector"]["tensors"]
    assert len(first["z"]) > 0
    more = run_cli("rlkit.train", f"resume={run}", "total_steps=512")
    assert more.returncode == 0, more.stderr
    resumed = checkpoint.load(run / "checkpoints" / "final.safetensors")["collector"]["tensors"]
    n = len(first["z"])
    assert len(resumed["z"]) > n  # the resumed run kept the first run's positions, then added its own
    assert all(torch.equal(resumed[k][:n], first[k]) for k in first)
    shipped = checkpoint.export(run / "checkpoints" / "final.safetensors", tmp_path / "agent.safetensors")
    assert checkpoint.load(shipped)["collector"] is None
    out = run_cli("rlkit.arena", "env=connect_four", f"agents=[{run},random]", "games=2", "mcts=4")
    assert out.returncode == 0 and "az+mcts4 vs random: " in out.stdout, out.stderr
    bad = run_cli("rlkit.train", "env=cartpole", "algo=alphazero", f"run_dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: algo=alphazero searches with a game's rules in arrays; env=cartpole has none "
        "(use env=connect_four or env=tictactoe or env=go, or algo=ppo)"]
    assert not (tmp_path / "bad").exists()


def test_connect_four_tunes_alphazero_apart_and_the_command_line_wins(tmp_path, monkeypatch):
    cfg = load_config(["env=connect_four", "algo=alphazero"])
    assert (cfg.num_envs, cfg.total_steps) == (256, 1700000)
    mine = load_config(["env=connect_four", "algo=alphazero", "num_envs=8", "total_steps=1000"])
    assert (mine.num_envs, mine.total_steps) == (8, 1000)
    ppo = load_config(["env=connect_four"])
    assert (ppo.num_envs, ppo.total_steps) == (64, 3500000)
    with pytest.raises(UsageError, match="algo.sims must be > 0"):
        load_config(["env=connect_four", "algo=alphazero", "algo.sims=0"])
    with pytest.raises(UsageError, match=r"algo.replay_size \(100\) must hold at least one minibatch"):
        alphazero.SearchSelfPlay(load_config(["env=connect_four", "algo=alphazero", "algo.replay_size=100"]),
                                 torch.device("cpu"), 0)
    import shutil

    from rlkit.config import config_dir

    shutil.copytree(config_dir(), tmp_path / "configs")
    env_file = tmp_path / "configs" / "env" / "connect_four.yaml"
    env_file.write_text(env_file.read_text().replace("1700000}", "1700000, runner: ray}"))
    monkeypatch.setenv("RLKIT_CONFIGS", str(tmp_path / "configs"))
    with pytest.raises(UsageError, match="env connect_four: tuned alphazero: 'runner' is not a key; valid: the keys "
                                         "python -m rlkit.train --help lists"):
        load_config(["env=connect_four", "algo=alphazero"])
    assert load_config(["env=connect_four"]).num_envs == 64  # the block of an algo not chosen is not read


def test_tictactoe_trains_by_gumbel_search_and_its_loaded_agent_searches(tmp_path):
    run = tmp_path / "ttt"
    done = run_cli("rlkit.train", "env=tictactoe", "algo=alphazero", "algo.root=gumbel", "algo.sims=4",
                   "num_envs=8", "algo.num_steps=8", "algo.batch_size=16", "total_steps=128", "progress=false",
                   "env.selfplay.eval_games=2", f"run_dir={run}")
    assert done.returncode == 0, done.stderr
    from rlkit import load_agent
    from rlkit.games import tictactoe

    plain, searching = load_agent(run), load_agent(run, mcts=64)
    # Positions where the mover wins only by completing a line at once (every other move throws
    # the win away, by minimax): the barely trained network's greedy move (board agents play
    # greedily by default) misses some; with search, every one is found.
    from rlkit.players import Minimax

    rng, perfect, missed, found = np.random.default_rng(0), Minimax(), 0, 0
    for _ in range(300):
        stones = rng.permutation(9)[:rng.integers(4, 8)]
        mine, theirs = np.zeros((1, 9), bool), np.zeros((1, 9), bool)
        mine[0, stones[::2]], theirs[0, stones[1::2]] = True, True
        mine, theirs = (theirs, mine) if len(stones) % 2 else (mine, theirs)  # the mover: as many stones or fewer
        pos = position(mine, theirs, (3, 3))
        legal = tictactoe.legal(pos)[0]
        if any(side[0, tictactoe.LINES].all(-1).any() for side in (mine, theirs)):  # already over
            continue
        wins = [m for m in np.flatnonzero(legal) if tictactoe.play(pos, np.array([m]))[1][0] == -1.0]
        obs = pos[0].astype(np.int8)
        winning = [m for m, v in perfect.move_values(obs).items() if v > 0]
        if not wins or sorted(winning) != sorted(wins):
            continue
        found += 1
        missed += plain.act(obs, action_mask=legal) not in wins
        assert searching.act(obs, action_mask=legal) in wins
    assert found > 20 and missed > 0
    with pytest.raises(UsageError, match="an agent that searches needs the legal moves"):
        searching.act(obs)
    with pytest.raises(UsageError, match="mcts must be 0 to"):
        load_agent(run, mcts=-1)
    arena = run_cli("rlkit.arena", "env=tictactoe", f"agents=[{run},minimax]", "games=2", "mcts=8")
    assert arena.returncode == 0 and "ttt+mcts8 vs minimax: " in arena.stdout, arena.stderr
