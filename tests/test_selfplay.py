"""Baselines, the opponent pool (sampling, Elo, checkpointing), rlkit.play through stdin,
rlkit.arena, and a tiny self-play training run that resumes with its pool."""
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlkit import elo
from rlkit.config import UsageError, load_config
from rlkit.games.connect_four import landing, wins
from rlkit.nets import Memoryless
from rlkit.players import AlphaBeta, Minimax, Player, RandomPlayer
from rlkit.pool import OpponentPool
from rlkit.search import MCTS, Lookahead
from tests.conftest import run_cli


class LowestFree(Player):
    """Always the lowest free cell: a deterministic, weak player."""

    def choose(self, observation, mask):
        return int(np.flatnonzero(mask)[0])


def board(cells_mine, cells_theirs, shape=(3, 3)):
    obs = np.zeros((*shape, 2), np.int8)
    for c in cells_mine:
        obs[c // shape[1], c % shape[1], 0] = 1
    for c in cells_theirs:
        obs[c // shape[1], c % shape[1], 1] = 1
    mask = np.ones(shape[0] * shape[1], bool) if shape == (3, 3) else (obs[0].sum(-1) == 0)
    if shape == (3, 3):
        mask[list(cells_mine) + list(cells_theirs)] = False
    return obs, mask


def test_minimax_values_and_moves():
    m = Minimax(0)
    assert m.value(0, 0) == 0  # tic-tac-toe is a draw
    obs, mask = board([0, 1], [3, 4])
    assert m.act(obs, mask) == 2  # win at once rather than block
    obs, mask = board([4], [0, 8])  # O to move after X 0, O 4, X 8: an edge draws, a corner loses
    values = m.move_values(obs)
    assert {a for a, v in values.items() if v == 0} == {1, 3, 5, 7}
    assert m.act(obs, mask) in (1, 3, 5, 7)
    obs, mask = board([4], [0, 1])
    assert m.act(obs, mask) == 2  # the only move that does not lose
    assert m.move_values(obs)[2] == 0 and all(v < 0 for a, v in m.move_values(obs).items() if a != 2)


def test_alphabeta_wins_and_blocks_in_connect_four():
    ab = AlphaBeta(depth=2, seed=0)
    # bottom row (row 5): mine at columns 0, 1, 2 -> play 3 to win
    obs, mask = board([35, 36, 37], [28, 29, 30], (6, 7))
    assert ab.act(obs, mask) == 3
    # theirs threatens 4 in column 6 (rows 5, 4, 3): block at the top of the stack
    obs, mask = board([35, 36], [41, 34, 27], (6, 7))
    assert ab.act(obs, mask) == 6


def test_alphabeta_values_equal_plain_minimax():
    """Pruning and the batched last ply change no value: a plain minimax over the same evaluation."""

    def minimax(ab, mine, theirs, depth):
        filled = mine | theirs
        if filled.all():
            return 0.0
        if depth == 0:
            return ab.evaluate(mine, theirs)
        values = []
        for col in range(7):
            cell = landing(filled, col)
            if cell is None:
                continue
            mine[cell] = True
            values.append(ab.WIN + depth if wins(mine, cell) else -minimax(ab, theirs, mine, depth - 1))
            mine[cell] = False
        return max(values)

    rng = np.random.default_rng(0)
    for depth in (1, 2, 3):
        ab = AlphaBeta(depth)
        for _ in range(4):
            mine, theirs = np.zeros(42, bool), np.zeros(42, bool)
            for _ in range(int(rng.integers(0, 12))):  # a random position, no line of four yet
                open_columns = [c for c in range(7) if landing(mine | theirs, c) is not None]
                cell = landing(mine | theirs, int(rng.choice(open_columns)))
                mine[cell] = True
                if wins(mine, cell):
                    mine[cell] = False
                    break
                mine, theirs = theirs, mine
            obs = np.stack([mine, theirs], -1).reshape(6, 7, 2).astype(np.int8)
            expect = {}
            for col in range(7):
                cell = landing(mine | theirs, col)
                if cell is not None:
                    m = mine.copy()
                    m[cell] = True
                    expect[col] = ab.WIN + depth if wins(m, cell) else -minimax(ab, theirs.copy(), m, depth - 1)
            assert ab.move_values(obs) == expect


class CellValue(Memoryless, torch.nn.Module):
    """Connect Four logits all 0 (ties go to the lowest column); value for the side to move: -1
    when the other side holds `cell`, else 0 (cell None: always 0)."""

    def __init__(self, cell=None):
        super().__init__()
        self.cell = cell

    def forward(self, obs, action_mask=None):
        flat = obs.reshape(len(obs), 42, 2).float()
        logits = torch.zeros(len(obs), 7)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask.bool(), -1e9)
        return logits, -flat[:, self.cell, 1] if self.cell is not None else torch.zeros(len(obs))


class RandomNet(Memoryless, torch.nn.Module):
    """Connect Four logits and a value in (-1, 1), each a fixed random linear function of the
    board: every position gets its own value, so a search that mixes up games shows it."""

    def __init__(self, seed=0):
        super().__init__()
        self.w = torch.randn(84, 8, generator=torch.Generator().manual_seed(seed))

    def forward(self, obs, action_mask=None):
        out = obs.reshape(len(obs), 84).float() @ self.w
        logits = out[:, :7] if action_mask is None else out[:, :7].masked_fill(~action_mask.bool(), -1e9)
        return logits, torch.tanh(out[:, 7])


class Scaled(Memoryless, torch.nn.Module):
    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, obs, action_mask=None):
        logits, value = self.net(obs, action_mask)
        return logits, self.scale * value


def test_lookahead_values_lines_of_play_with_the_network_from_the_movers_side():
    obs, mask = board([], [], (6, 7))
    want_centre = CellValue(38)  # bottom of column 3: bad for whoever sees the other side there
    assert Lookahead(want_centre, depth=0).act(obs, mask) == 0  # the policy alone: the lowest column
    assert Lookahead(want_centre, depth=1).act(obs, mask) == 3  # take it ...
    assert Lookahead(want_centre, depth=2).act(obs, mask) == 3  # ... or the reply takes it
    assert Lookahead(want_centre, depth=2).name == "policy+lookahead2"
    flat = CellValue()
    assert Lookahead(flat, depth=1).act(*board([35, 36, 37], [28, 29, 30], (6, 7))) == 3  # win at once
    threat = board([35, 36], [41, 34, 27], (6, 7))  # three of theirs in column 6
    assert Lookahead(flat, depth=1).act(*threat) == 0   # one ply does not see their win ...
    assert Lookahead(flat, depth=2).act(*threat) == 6   # ... two plies block it
    assert Lookahead(flat, depth=3).act(*threat) == 6
    assert Lookahead(flat, depth=3).act(*board([35, 36, 37], [28, 29, 30], (6, 7))) == 3  # a win now first
    obs, mask = board([35, 36, 37], [28, 29, 30], (6, 7))
    mask[:] = False
    mask[5] = True  # only column 5 allowed: the search keeps to the mask even past a win
    assert Lookahead(flat, depth=2).act(obs, mask) == 5
    # An unbounded value head never outranks a proven win.
    assert Lookahead(CellValue(39), depth=1).act(*board([35, 36, 37], [28, 29, 30], (6, 7))) == 3
    assert Lookahead(Scaled(CellValue(39), 5.0), depth=1).act(*board([35, 36, 37], [28, 29, 30], (6, 7))) == 3


def test_mcts_wins_blocks_and_follows_the_value_head_within_the_mask():
    flat = CellValue()
    win_now = board([35, 36, 37], [28, 29, 30], (6, 7))
    threat = board([35, 36], [41, 34, 27], (6, 7))  # three of theirs in column 6
    assert MCTS(flat, sims=30).act(*win_now) == 3
    assert MCTS(flat, sims=200).act(*threat) == 6
    assert MCTS(flat, sims=1).act(*threat) != 6  # one simulation cannot see the reply: the search is what blocks
    assert MCTS(CellValue(38), sims=50).act(*board([], [], (6, 7))) == 3  # take the cell the value head wants
    only_5 = np.zeros(7, bool)
    only_5[5] = True
    assert MCTS(flat, sims=50).act(win_now[0], only_5) == 5
    # A batch searches each game on its own: the same moves as one at a time, with a value head
    # that rates every position differently, and the tactics still found.
    net = RandomNet()
    games = [win_now, threat, board([], [], (6, 7)), board([38], [39], (6, 7)), board([35, 38], [36, 31], (6, 7)),
             board([40, 33], [41, 34], (6, 7))]
    batched = MCTS(net, sims=100).act_batch(np.stack([g[0] for g in games]), np.stack([g[1] for g in games]))
    alone = [MCTS(net, sims=100).act(*g) for g in games]
    assert list(batched) == alone and alone[:2] == [3, 6] and len(set(alone[2:])) > 1
    assert MCTS(flat, sims=7).name == "policy+mcts7"
    # An unbounded value head never outranks a proven win.
    assert MCTS(Scaled(CellValue(39), 5.0), sims=50).act(*win_now) == 3


def test_search_options_are_checked():
    from rlkit.agent import load_player

    c4, ttt = load_config(["env=connect_four"]).env, load_config(["env=tictactoe"]).env
    with pytest.raises(UsageError, match="choose one search"):
        load_player("random", c4, lookahead=2, mcts=50)
    from rlkit.agent import check_mcts

    with pytest.raises(UsageError, match=r"mcts=5: the tree search needs a game's rules in arrays \(connect_four, "
                                         r"tictactoe, go\); for pong use mcts=0"):
        check_mcts(5, "pong")
    assert load_player("random", ttt, mcts=5).name == "random"  # a baseline plays as it is
    with pytest.raises(UsageError, match="mcts must be 0 to"):
        load_player("random", c4, mcts=-1)


def test_alphabeta_beats_random_and_minimax_never_loses():
    from rlkit.envs.selfplay import play_match

    c4 = load_config(["env=connect_four"]).env
    assert np.mean(play_match(c4, AlphaBeta(2, 0), RandomPlayer(1), 10)) >= 0.9
    ttt = load_config(["env=tictactoe"]).env
    assert min(play_match(ttt, Minimax(0), RandomPlayer(1), 60)) >= 0.5


def test_alphabeta_depth_in_its_name_and_its_cache_changes_no_move():
    from rlkit.envs.selfplay import play_match
    from rlkit.players import baselines, make_baseline

    made = baselines("connect_four", depth=3)
    assert made["alphabeta"]().depth == 3 and made["alphabeta2"]().depth == 2 and made["alphabeta6"]().depth == 6
    with pytest.raises(UsageError, match=r"choose from: random, alphabeta, openspiel, alphabeta1..alphabeta6$"):
        make_baseline("connect_four", "alphabeta7")
    with pytest.raises(UsageError,
                       match="no baseline 'alphabeta2' for tictactoe; choose from: random, minimax, openspiel$"):
        make_baseline("tictactoe", "alphabeta2")
    # Cached values are the values: the same games whether each position is searched afresh or not.
    c4 = load_config(["env=connect_four"]).env
    fresh = AlphaBeta(2, seed=5)
    fresh.CACHE = 0  # cleared before every store: nothing is reused
    cached = AlphaBeta(2, seed=5)
    assert play_match(c4, fresh, RandomPlayer(1), 6, seed=3) == play_match(c4, cached, RandomPlayer(1), 6, seed=3)
    assert len(cached.cache) > 20 and len(fresh.cache) <= 1
    obs, mask = board([35, 36], [41, 34, 27], (6, 7))
    assert cached.move_values(obs) == fresh.move_values(obs) and cached.act(obs, mask) == 6
    # A pool can hold one as a fixed member.
    pool = OpponentPool(OmegaConf.merge(pool_cfg(), {"baselines": ["random", "alphabeta2"]}), "connect_four",
                        None, None, seed=0)
    assert pool.player("alphabeta2").depth == 2 and list(pool.members) == ["random", "alphabeta2"]


def test_elo_update_matches_hand_computed_values():
    assert elo.expected(1200, 1000) == pytest.approx(1 / (1 + 10 ** (-0.5)))  # 0.7597
    ra, rb = elo.update(1200, 1000, 0.0, 32)  # the favourite loses
    assert ra == pytest.approx(1200 - 32 * 0.759747, abs=1e-3) and rb == pytest.approx(1000 + 32 * 0.759747, abs=1e-3)
    ra, rb = elo.update(1000, 1000, 0.5, 16)
    assert (ra, rb) == (1000, 1000)


def test_elo_fit_recovers_a_known_gap():
    # A scores 75% against B: the maximum-likelihood gap is 400 log10(3) = 190.8 (plus one virtual draw)
    games = [(0, 1, 1.0)] * 300 + [(0, 1, 0.0)] * 100
    r = elo.fit(2, games, anchor=1)
    wins, n = 300 + 0.5, 400 + 1
    assert r[1] == 0 and r[0] == pytest.approx(400 * np.log10(wins / (n - wins)), abs=0.5)
    low, high = elo.interval(2, games, anchor=1, reps=100)
    assert low[0] < r[0] < high[0] and high[0] - low[0] < 150


def pool_cfg(**kw):
    base = load_config(["env=tictactoe"]).env.selfplay
    return OmegaConf.merge(base, kw)


def make_pool(match=None, **kw):
    import gymnasium as gym

    from rlkit.envs.board import Game
    from rlkit.nets import make_policy

    cfg = load_config(["env=tictactoe", "model=mlp"])
    g = Game(cfg.env)

    def make_net():
        return make_policy(cfg.model, g.observation_space, gym.spaces.Discrete(9), board=True)
    pool = OpponentPool(pool_cfg(**kw), "tictactoe", make_net, match or (lambda a, b, n, s: [0.5] * n), seed=0)
    return pool, make_net


def test_pool_priorities_and_sampling_match_hand_computed_values():
    pool, make_net = make_pool(priority_power=2.0, latest_prob=0.25, score_rate=0.5)
    pool.add_snapshot(make_net(), 0)
    pool.add_snapshot(make_net(), 100)
    pool.record("random", 1.0)     # score 0.5 -> 0.75
    pool.record("step_0", 0.0)     # 0.5 -> 0.25
    pool.record("step_100", 0.5)   # stays 0.5
    w = np.array([0.25 ** 2, 0.75 ** 2, 0.5 ** 2])
    np.testing.assert_allclose(pool.probabilities(), w / w.sum())
    draws = [pool.sample() for _ in range(20000)]
    expect = {n: 0.75 * p for n, p in zip(pool.members, w / w.sum())}
    expect["step_100"] += 0.25
    for name, p in expect.items():
        assert draws.count(name) / len(draws) == pytest.approx(p, abs=0.015)
    assert pool.scalars()["selfplay/score_vs/random"] == 0.75


def test_the_pool_logs_running_scores_only_against_members_played_in_training():
    pool, make_net = make_pool(match=lambda a, b, n, s: [1.0] * n, eval_games=2)
    pool.add_snapshot(make_net(), 0)  # rated by evaluation games: no training game yet (algo=alphazero's case)
    assert not [k for k in pool.scalars() if k.startswith("selfplay/score_vs/")]
    pool.record("step_0", 1.0)
    assert [k for k in pool.scalars() if k.startswith("selfplay/score_vs/")] == ["selfplay/score_vs/step_0"]


def test_pool_elo_updates_and_eviction():
    # Every new snapshot wins all its games: Elo of game-by-game updates, anchor fixed at 0.
    pool, make_net = make_pool(match=lambda a, b, n, s: [1.0] * n, eval_games=2, eval_opponents=4,
                               elo_k=16.0, max_snapshots=2)
    pool.add_snapshot(make_net(), 0)  # vs random only
    r = 0.0
    for _ in range(2):
        r += 16 * (1 - elo.expected(r, 0.0))
    assert pool.members["step_0"]["elo"] == pytest.approx(r)
    assert pool.members["random"]["elo"] == 0
    pool.add_snapshot(make_net(), 10)  # starts at step_0's rating; plays step_0, then random
    a, b = r, r
    for _ in range(2):
        a, b = elo.update(a, b, 1.0, 16)
    for _ in range(2):
        a += 16 * (1 - elo.expected(a, 0.0))
    assert pool.members["step_10"]["elo"] == pytest.approx(a)
    assert pool.members["step_0"]["elo"] == pytest.approx(b)
    pool.add_snapshot(make_net(), 20)
    assert pool.snapshots == ["step_10", "step_20"]  # max_snapshots=2: the oldest left
    assert pool.maybe_snapshot(make_net(), 25) == {}  # not due (snapshot_every)
    assert "elo/latest" in pool.maybe_snapshot(make_net(), 20 + pool.cfg.snapshot_every)


def test_pool_state_round_trips_through_a_checkpoint(tmp_path):
    from rlkit import checkpoint

    pool, make_net = make_pool()
    net = make_net()
    pool.add_snapshot(net, 0)
    pool.record("step_0", 1.0)
    cfg = load_config(["env=tictactoe", "model=mlp"])
    opt = torch.optim.Adam(net.parameters())
    spaces = {"obs_shape": [3, 3, 2], "obs_dtype": "int8", "num_actions": 9}  # tic-tac-toe's, as train saves them
    path = checkpoint.save(tmp_path / "c.safetensors", net, opt, cfg, spaces, {"step": 0, "update": 0}, pool.state())
    loaded = checkpoint.load(path)
    other, _ = make_pool()
    other.load_state(loaded["pool"])
    assert other.members == pool.members and other.last_snapshot == 0
    assert other.sample() == pool.sample()  # the sampling stream goes on where it was
    obs = torch.zeros(1, 3, 3, 2)
    assert torch.equal(other.player("step_0").policy(obs)[0], net(obs)[0])


@pytest.mark.slow
def test_play_through_stdin_with_illegal_input():
    # The person (X) types junk, an off-board cell, a fair move, the same cell again, then
    # cells in order; illegal inputs are refused with the legal moves and the game goes on.
    moves = "x\n9\n4\n4\n0\n1\n2\n3\n5\n6\n7\n8\n"
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "rlkit.play", "env=tictactoe", "agent=minimax", "seed=0"],
                         input=moves, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "illegal move 'x'; legal moves: 0 1 2 3 4 5 6 7 8" in text
    assert "illegal move '9'" in text
    assert text.count("illegal move '4'") == 1  # 4 was legal once, then taken
    assert "agent plays" in text and " X | " in text
    assert text.rstrip().endswith(("you lose", "draw"))  # never "you win" against perfect play
    assert text.count("agent plays") >= 3


@pytest.mark.slow
def test_play_as_second_and_bad_input():
    out = run_cli("rlkit.play", "env=tictactoe", "agent=random", "seat=second", "seed=1", timeout=120)
    # stdin is empty: the agent opens, then the game is abandoned with a message
    assert "agent plays" in out.stdout and "input ended" in out.stdout and out.returncode == 1
    bad = run_cli("rlkit.play", "env=tictactoe", "agent=random", "seat=middle")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: seat must be one of: first, second; got 'middle'"
    bad = run_cli("rlkit.play", "env=cartpole", "agent=random")
    assert bad.returncode == 2 and "not a board game; choose from: board, connect_four, go, tictactoe" in bad.stderr
    bad = run_cli("rlkit.arena", "env=connect_four", "agents=[random,minimax]")
    assert bad.returncode == 2
    assert "nor a baseline for connect_four (random, alphabeta, openspiel, alphabeta1..alphabeta6)" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_arena_table():
    from rlkit.arena import main

    out = main(["env=tictactoe", "agents=[random,minimax]", "games=20"])
    assert "random vs minimax: 0 won" in out
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[1].splitlines()[1:]}
    minimax_row, random_row = rows["minimax"], rows["random"]
    assert int(minimax_row[3]) == 0 and int(minimax_row[1]) + int(minimax_row[2]) == 20
    assert float(random_row[5]) == 0 and float(minimax_row[5]) > 100


def test_selfplay_training_logs_elo_and_resumes_with_its_pool(train, tmp_path):
    from rlkit import checkpoint
    from rlkit.train import main

    run = train("env=tictactoe", "model=mlp", "num_envs=8", "algo.num_steps=16", "total_steps=512",
                "env.selfplay.snapshot_every=256", "env.selfplay.eval_games=4", "checkpoint_every=256")
    ckpt = checkpoint.load(run / "checkpoints" / "final.safetensors")
    members = ckpt["pool"]["meta"]["members"]
    assert list(members) == ["random", "step_0", "step_256", "step_512"]
    assert sum(m["games"] for m in members.values()) > 20
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    assert len(ea.Scalars("elo/latest")) == 3
    # RUN@NAME loads a snapshot of the pool: the run's history, in arena or from code.
    import rlkit
    from rlkit.arena import main as arena

    final, last = rlkit.load_agent(run).policy.state_dict(), rlkit.load_agent(f"{run}@step_512").policy.state_dict()
    first = rlkit.load_agent(f"{run}@step_0").policy.state_dict()
    assert all(torch.equal(final[k], last[k]) for k in final)
    assert not all(torch.equal(final[k], first[k]) for k in final)
    out = arena(["env=tictactoe", f"agents=[{run}@step_0,{run}@step_256,random]", "games=4"])
    assert f"{run}@step_0 vs {run}@step_256: " in out and f"{run}@step_256 vs random: " in out
    with pytest.raises(UsageError, match=r"final.safetensors has no snapshot 'step_9'; it has: step_0, step_256, "
                                         r"step_512$"):
        rlkit.load_agent(f"{run}@step_9")
    main([f"resume={run}", "total_steps=768", "progress=false"])
    resumed = checkpoint.load(run / "checkpoints" / "final.safetensors")
    assert list(resumed["pool"]["meta"]["members"]) == ["random", "step_0", "step_256", "step_512", "step_768"]
    assert resumed["pool"]["meta"]["members"]["step_256"]["games"] >= members["step_256"]["games"]
    # rlkit.compare draws the Elo curve of self-play runs from the same TensorBoard data.
    from PIL import Image

    from rlkit.compare import load_run
    from rlkit.compare import main as compare

    ea.Reload()
    assert load_run(run)["elo"] == [(e.step, e.value) for e in ea.Scalars("elo/latest")]
    assert [step for step, _ in load_run(run)["elo"]] == [0, 256, 512, 768]
    out = compare([f"runs=[{run}]", f"out={tmp_path / 'cmp'}"])
    assert Image.open(out / "elo.png").size[0] > 600 and "![elo](elo.png)" in (out / "results.md").read_text()


def test_a_snapshot_dropped_from_the_pool_finishes_its_games():
    from rlkit.envs.selfplay import SelfPlay

    pool, make_net = make_pool(max_snapshots=1, latest_prob=1.0)
    pool.add_snapshot(make_net(), 0)
    envs = SelfPlay(load_config(["env=tictactoe"]).env, 8, pool)
    _, info = envs.reset(seed=0)
    assert set(envs.opponent) == {"step_0"}
    pool.add_snapshot(make_net(), 1)  # step_0 leaves the pool while its games go on
    rng = np.random.default_rng(0)
    for _ in range(12):
        info = envs.step([rng.choice(np.flatnonzero(m)) for m in info["action_mask"]])[4]
    assert "step_0" not in envs.opponent and "step_0" not in pool.members


def test_random_openings_and_exploring_opponents_vary_training_games_only():
    from rlkit.envs.selfplay import Fixed, SelfPlay, play_match

    env_cfg = load_config(["env=tictactoe"]).env
    plain = SelfPlay(env_cfg, 64, Fixed(LowestFree()), seats="first")
    obs, _ = plain.reset(seed=0)
    assert obs.sum() == 0  # the learner moves first on an empty board
    opened = SelfPlay(env_cfg, 64, Fixed(LowestFree()), seats="first", opening_moves=3)
    obs, info = opened.reset(seed=0)
    stones = obs.reshape(64, -1).sum(1)
    assert set(stones) == {0, 2, 4}  # 0..3 random moves, the opponent's reply if it is its turn, then the learner
    assert (info["action_mask"].sum(1) == 9 - stones).all()
    # The opponent answers the learner's move in cell 4: always cell 0, or any cell when exploring.
    for explore, replies in ((0.0, {0}), (1.0, {0, 1, 2, 3, 5, 6, 7, 8})):
        envs = SelfPlay(env_cfg, 64, Fixed(LowestFree()), seats="first", opponent_explore=explore)
        envs.reset(seed=1)
        obs = envs.step(np.full(64, 4))[0]
        assert set(np.nonzero(obs.reshape(64, 9, 2)[:, :, 1])[1]) == replies
    # Matches (Elo ratings, arena) never use either: the corner player's games are the same every time.
    assert play_match(env_cfg, LowestFree(), LowestFree(), 4) == [1.0, 0.0, 1.0, 0.0]
    # ... unless asked for openings (arena's openings=N): then the same players' games vary.
    assert len(set(play_match(env_cfg, LowestFree(), LowestFree(), 64, openings=3)[::2])) > 1
    plain, opened = [], []  # every game's line: 2 distinct ones (a seat each) without openings
    play_match(env_cfg, LowestFree(), LowestFree(), 64, lines=plain)
    play_match(env_cfg, LowestFree(), LowestFree(), 64, openings=3, lines=opened)
    assert len(plain) == len(opened) == 64 and len(set(plain)) == 2 and len(set(opened)) > 10


def test_games_over_before_the_learners_first_move_are_replaced():
    """Long random openings often leave the opponent a winning reply (or end the game): such a
    game never reaches the learner, which always gets a live game to move in."""
    from rlkit.envs.selfplay import Fixed, SelfPlay, play_match

    env_cfg = load_config(["env=tictactoe"]).env
    envs = SelfPlay(env_cfg, 64, Fixed(Minimax(0)), seats="second", opening_moves=8)
    _, info = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert not any(g.over for g in envs.games) and info["action_mask"].any(1).all()
        info = envs.step([rng.choice(np.flatnonzero(m)) for m in info["action_mask"]])[4]
    scores = play_match(env_cfg, RandomPlayer(0), Minimax(0), 50, openings=8)
    assert len(scores) == 50 and set(scores) <= {0.0, 0.5, 1.0}


def test_arena_openings_option():
    from rlkit.arena import main

    out = main(["env=tictactoe", "agents=[random,minimax]", "games=20", "openings=2"])
    won, drawn, lost = (int(w) for w in re.findall(r"random vs minimax: (\d+) won, (\d+) drawn, (\d+) lost", out)[0])
    assert won + drawn + lost == 20 and lost > won
    assert re.search(r"random vs minimax: .* lost \((\d+) distinct games\)", out)
    with pytest.raises(UsageError, match="openings must be >= 0 random moves, got -1"):
        main(["env=tictactoe", "agents=[random,minimax]", "openings=-1"])


def test_against_minimax_walks_every_line_of_perfect_play():
    from rlkit.players import against_minimax

    class Perfect(Player):  # the lowest of minimax's best moves: deterministic and perfect
        def choose(self, observation, mask):
            values = Minimax().move_values(observation)
            return min(a for a, v in values.items() if v == max(values.values()))

    # X plays 0; the only reply that does not lose is 4; X 1; O must block at 2; X 3; O wins at 6.
    assert against_minimax(LowestFree(), 0) == {"won": 0, "drawn": 0, "lost": 1}
    second = against_minimax(LowestFree(), 1)
    assert second["won"] == second["drawn"] == 0 and second["lost"] >= 9  # minimax opens anywhere: all draw
    for seat in (0, 1):
        counts = against_minimax(Perfect(), seat)
        assert counts["lost"] == counts["won"] == 0 and counts["drawn"] >= (1 if seat == 0 else 9)


def test_arena_checks_tictactoe_agents_against_every_line_of_perfect_play(train):
    from rlkit.arena import main

    run = train("env=tictactoe", "model=mlp", "num_envs=4", "algo.num_steps=8", "total_steps=32")
    out = main(["env=tictactoe", f"agents=[{run},minimax]", "games=4"])
    line = next(x for x in out.splitlines() if x.startswith(f"{run} against every line of perfect play"))
    import re

    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+) won, (\d+) drawn, (\d+) lost", line)]
    assert len(counts) == 2 and sum(counts[1]) >= 9  # as O: at least one line per opening
    lost = counts[0][2] + counts[1][2]
    assert line.endswith("never loses" if lost == 0 else f"loses {lost} lines")


@pytest.mark.parametrize("game", ["tictactoe", "connect_four", "go"])
def test_a_trained_agent_of_every_board_game_loads_and_plays(game, train, tmp_path, capsys):
    """Go's planes are bool: the agent's observation space must be rebuilt from them too."""
    import rlkit
    from rlkit.arena import main

    size = ["env.board_size=5"] if game == "go" else []
    run = train(f"env={game}", *size, "num_envs=2", "algo.num_steps=4", "total_steps=8",
                "env.selfplay.eval_games=2", name=game)
    agent = rlkit.load_agent(run)
    env = agent.make_env()
    env.reset(seed=0)
    obs = env.last()[0]
    assert obs["action_mask"][agent.act(obs["observation"], action_mask=obs["action_mask"])]
    out = main([f"env={game}", *size, f"agents=[{run},random]", "games=2"])
    assert f"{run} vs random: " in out
    out = main([f"env={game}", *size, f"agents=[{run},random]", "games=2", "symmetric=true"])
    assert f"{run}+sym vs random: " in out  # averaged over the board's symmetries, on any board size
    if game == "connect_four":  # the same agent looking two plies ahead
        out = main([f"env={game}", f"agents=[{run},random]", "games=2", "lookahead=2"])
        assert f"{run}+lookahead2 vs random: " in out
        with pytest.raises(UsageError, match="search= is now called lookahead=: lookahead=2"):
            main([f"env={game}", f"agents=[{run},random]", "search=2"])
        out = main([f"env={game}", f"agents=[{run},random]", "games=2", "mcts=8", "symmetric=true"])
        assert f"{run}+sym+mcts8 vs random: " in out
        check_exported_board_agent(run, tmp_path, capsys)
    else:
        with pytest.raises(UsageError, match="looking ahead needs Connect Four's rules"):
            main([f"env={game}", *size, f"agents=[{run},random]", "lookahead=2"])


def check_exported_board_agent(run, tmp_path, capsys):
    """Exported without optimizer or opponent pool, it still plays; watch scores each game from
    the agent's seat, whichever seat it had."""
    import re

    from safetensors import safe_open

    from rlkit import checkpoint
    from rlkit.watch import main as watch

    shipped = checkpoint.export(checkpoint.latest(run), tmp_path / "agents" / "c4" / "agent.safetensors")
    with safe_open(str(shipped), framework="pt") as f:
        assert not [k for k in f.keys() if k.startswith(("optim.", "pool."))] and "pool" not in f.metadata()
    capsys.readouterr()
    results = watch([f"agent={shipped.parent}", "episodes=6", "opponent=random"])
    out = capsys.readouterr().out
    seats = re.findall(r"game \d+: X = (\S+), O = (\S+)", out)
    ends = re.findall(r"^(X wins|O wins|draw)$", out, re.M)
    assert len(results) == len(seats) == len(ends) == 6
    for (x, _), end, result in zip(seats, ends, results):
        x_score = {"X wins": 1.0, "draw": 0.0, "O wins": -1.0}[end]
        assert result == (x_score if x == "agent" else -x_score)
    assert f"mean return {np.mean(results):g} over 6 game(s)" in out
