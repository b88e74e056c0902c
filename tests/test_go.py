"""Go's rules in arrays (rlkit.games.go) against PettingZoo's go_v5, move for move, and
algo=alphazero on Go from the command line."""
import numpy as np
import pytest
import torch

from rlkit.games import rules
from tests.conftest import run_cli


def pettingzoo_go(size, komi):
    from pettingzoo.classic import go_v5

    return go_v5.env(board_size=size, komi=komi)  # it sets the board size for the whole module: one size at a time


@pytest.mark.parametrize("size,komi,games", [(4, 0.0, 40), (5, 0.5, 25), (9, 7.5, 3)])
def test_go_rules_follow_pettingzoo_move_for_move(size, komi, games):
    """Random games (a pass one move in 30, so that boards fill up and stones are taken): the
    position is PettingZoo's observation, the legal moves its mask, and the result its reward,
    through captures, ko, suicide, passes and the final score with komi."""
    env, go = pettingzoo_go(size, komi), rules("go", size, komi)
    rng = np.random.default_rng(size)
    seen = {"moves": 0, "ko": 0, "suicide": 0, "taken": 0, "results": set()}
    for game in range(games):
        env.reset(seed=game)
        pos = np.zeros((1, *go.SHAPE), bool)
        while True:
            obs, _, done, _, _ = env.last()
            assert not done
            assert (pos[0] == obs["observation"]).all()
            want = obs["action_mask"].astype(bool)
            assert (go.legal(pos)[0] == want).all()
            empty = ~pos[0, ..., :2].any(-1).flatten()
            forbidden = empty & ~want[:-1]
            seen["ko"] += int(go._passed_and_ko(pos)[1].any())
            seen["suicide"] += int(forbidden.sum())
            points = np.flatnonzero(want[:-1])
            move = int(rng.choice(points)) if len(points) and rng.random() > 1 / 30 else size * size
            stones = pos[0, ..., :2].sum()
            env.step(move)
            pos, end = go.play(pos, np.array([move]))
            seen["moves"] += 1
            seen["taken"] += int(move < size * size and pos[0, ..., :2].sum() <= stones)
            if env.terminations[env.agents[0]]:
                assert end[0] == env.rewards[env.agent_selection]  # the side to move next's result
                seen["results"].add(float(end[0]))
                break
            assert np.isnan(end[0])
    assert seen["ko"] and seen["suicide"] and seen["taken"] and seen["moves"] > games * 20
    assert seen["results"] == {1.0, -1.0} or size == 9


def test_a_tie_is_whites_and_two_passes_end_the_game():
    env, go = pettingzoo_go(5, 0.0), rules("go", 5, 0.0)
    env.reset()
    pos = np.zeros((1, *go.SHAPE), bool)
    env.step(25)
    pos, end = go.play(pos, np.array([25]))
    assert np.isnan(end[0]) and go.legal(pos)[0].all()  # one pass: White may play anywhere
    env.step(25)
    pos, end = go.play(pos, np.array([25]))
    assert env.terminations[env.agents[0]] and env.rewards == {"black_0": -1, "white_0": 1}
    assert go.score(pos)[0] == 0.0 and end[0] == -1.0  # Black to move (next) lost the tie


def test_a_move_takes_the_group_it_leaves_without_liberties():
    go = rules("go", 5, 0.5)
    pos = np.zeros((1, *go.SHAPE), bool)
    # Black (moved last: plane 0) on row 1, columns 0-3, its one liberty (2, 0); White (plane 1)
    # around it, to move (plane 16).
    for r, c in [(1, 0), (1, 1), (1, 2), (1, 3)]:
        pos[0, r, c, 0] = True
    for r, c in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 1), (2, 2), (2, 3)]:
        pos[0, r, c, 1] = True
    pos[0, ..., 16] = True
    assert go.legal(pos)[0, 10]
    after, end = go.play(pos, np.array([10]))
    assert np.isnan(end[0]) and not after[0, ..., 1].any() and after[0, ..., 0].sum() == 9
    assert (after[0, ..., 2:4] == pos[0, ..., 0:2]).all() and not after[0, ..., 16].any()  # history, Black to move


@pytest.mark.parametrize("white_to_move", [True, False])
def test_the_search_passes_when_passing_wins_and_only_then(white_to_move):
    """After a pass, passing again ends the game. One white stone on an empty 5x5 board: all the
    area is White's, so White to move ends the game and wins; Black to move must play on."""
    from rlkit.search import search
    from tests.test_gumbel import Fixed

    go = rules("go", 5, 0.5)
    pos = np.zeros((1, *go.SHAPE), bool)
    # The white stone: plane 1 when White is to move (the mover's), else plane 0 (the last
    # mover's); the board a move earlier, seen by that move's mover, the same: a pass.
    pos[0, 2, 2, [1, 2] if white_to_move else [0, 3]] = True
    pos[0, ..., 16] = white_to_move
    assert go._passed_and_ko(pos)[0][0]
    trees = search(Fixed(np.zeros(26)), pos, go.legal(pos), 50, game=go)  # no preference, value 0
    assert (trees.best()[0] == 25) == white_to_move


def test_openspiel_bot_sees_the_go_position_pettingzoo_shows():
    """The bot's rebuilt state (rlkit.openspiel_bot.go_moves): the same side to move, legal moves
    (ko included) and stones, and a pass that answers a pass ends its game, as in PettingZoo's."""
    from rlkit.openspiel_bot import OpenSpielMCTS

    bot, env = OpenSpielMCTS("go", seed=0, sims=10, komi=0.5), pettingzoo_go(5, 0.5)
    rng, checked, answered = np.random.default_rng(2), 0, 0
    for game in range(15):
        env.reset(seed=game)
        while not any(env.terminations.values()):
            obs = env.last()[0]
            state = bot.position(obs["observation"])
            assert state.legal_actions() == np.flatnonzero(obs["action_mask"]).tolist()
            assert state.current_player() == env.agents.index(env.agent_selection)
            # OpenSpiel prints its row 4 first; its move numbers run from the other edge than
            # PettingZoo's, a mirror image that changes no move's number.
            board = np.array([list(row[-5:]) for row in str(state).split("\n")[2:7]])[::-1]
            mover, other = "XO"[state.current_player()], "OX"[state.current_player()]
            assert (obs["observation"][..., 1] == (board == mover)).all()
            assert (obs["observation"][..., 0] == (board == other)).all()
            if go_over_after_pass(obs["observation"]):
                state.apply_action(25)
                assert state.is_terminal()
                answered += 1
            checked += 1
            points = np.flatnonzero(obs["action_mask"][:-1])
            env.step(int(rng.choice(points)) if len(points) and rng.random() > 0.1 else 25)
    assert checked > 300 and answered
    assert bot.act(*start(5)) in range(26)


def go_over_after_pass(observation) -> bool:
    """Whether the last move was a pass (so that a pass now ends the game)."""
    return bool(rules("go", observation.shape[0])._passed_and_ko(observation[None].astype(bool))[0][0])


def start(size):
    return np.zeros((size, size, 17), np.int8), np.ones(size * size + 1, bool)


def test_alphazero_plays_go_from_the_command_line(tmp_path):
    run = tmp_path / "go"
    done = run_cli("rlkit.train", "env=go", "env.board_size=5", "algo=alphazero", "algo.root=gumbel", "algo.sims=4",
                   "num_envs=8", "algo.num_steps=8", "algo.batch_size=32", "total_steps=256", "progress=false",
                   "env.selfplay.eval_games=2", f"run_dir={run}")
    assert done.returncode == 0, done.stderr
    out = run_cli("rlkit.arena", "env=go", "env.board_size=5", f"agents=[{run},random]", "games=2", "mcts=4")
    assert out.returncode == 0 and "go+mcts4 vs random: " in out.stdout, out.stderr


def test_a_self_play_go_game_stops_at_the_move_cap_scored_as_it_stands(monkeypatch):
    """algo=alphazero on 4x4: every searched move the first legal point (never a pass while
    there is one), so no game ends by passes; each stops at 2 * 16 moves, its result the board's."""
    from rlkit.algos import alphazero
    from rlkit.config import load_config

    go = rules("go", 4, 0.5)

    def first_point(policy, pos, mask, *args, **kwargs):
        trees = type("Trees", (), {})()
        moves = np.where(mask[:, :-1].any(1), mask[:, :-1].argmax(1), 16)
        trees.targets, trees.best = lambda: mask / mask.sum(1, keepdims=True), lambda: moves
        return trees

    monkeypatch.setattr(alphazero.search, "search", first_point)
    cfg = load_config(["env=go", "env.board_size=4", "env.komi=0.5", "algo=alphazero", "num_envs=2",
                       "algo.num_steps=40", "env.selfplay.opening_moves=0"])
    c = alphazero.SearchSelfPlay(cfg, torch.device("cpu"), seed=0)
    played = []
    real_play = go.play
    monkeypatch.setattr(c.game, "play", lambda pos, moves: played.append(pos.copy()) or real_play(pos, moves))
    _, episodes = c.collect(policy=None)
    assert [length for _, length in episodes] == [32, 32]
    last = played[31][:1]  # game 0 before its 32nd move (both games are the same game)
    final, _ = real_play(last, first_point(None, last, go.legal(last)).best())
    black_score = go.score(final)[0]
    assert black_score != 0 and episodes[0][0] == (1.0 if black_score > 0 else -1.0)  # the first player's result
    assert c.filled == 64
    # The search could not pass while points were open, so the targets give the pass nothing;
    # the network still learns over every legal move (the pass among them), so that its pass
    # is pushed down, not left untrained.
    window = {k: v[:64] for k, v in c.window.items()}
    assert window["masks"][:, 16].all() and (window["pi"][:, 16] == 0).sum() > 48


def test_self_play_passes_only_when_nothing_but_its_own_eyes_is_left():
    go = rules("go", 3, 0.5)
    pos = np.zeros((2, *go.SHAPE), bool)
    pos[0, ..., 1] = True  # game 0: the mover's stones everywhere but two eyes, at 0 and 8
    pos[0, 0, 0, 1] = pos[0, 2, 2, 1] = False
    legal = go.legal(pos)
    assert legal[0].tolist() == [True] + [False] * 7 + [True, True] and legal[1].all()
    assert go.play_on(pos, legal)[:, 9].tolist() == [True, False]  # game 1 (empty board) plays on
    assert (go.play_on(pos, legal)[:, :9] == legal[:, :9]).all()



def test_a_go_match_stops_at_the_move_cap_scored_as_it_stands():
    """PettingZoo's Go has no move limit: two players that never pass would play for ever. The
    game `Game` wraps (arena, play, watch) ends after 2 * N * N moves, each seat scored as
    PettingZoo scores the board as it stands (two passes there end the game without a change)."""
    from omegaconf import OmegaConf

    from rlkit.envs.board import Game

    cfg = OmegaConf.create({"game": "go", "board_size": 4, "komi": 0.5})
    rng, results, game = np.random.default_rng(0), set(), Game(cfg)
    for seed in range(30):
        game.reset(seed)
        while not game.over:
            points = np.flatnonzero(game.observe()[1][:-1])
            game.step(int(rng.choice(points)) if len(points) else 16)  # a pass only when no point is legal
        if game.capped is None:
            continue  # ended by two passes: no point was left to either side
        assert game.moves == 32
        mine = [game.score(seat) for seat in (0, 1)]
        env = game.env
        while not any(env.terminations.values()):
            env.step(16)
        assert mine == [env.rewards[agent] for agent in game.seats]
        results.add(mine[0])
    assert results == {1.0, -1.0}
