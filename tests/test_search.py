"""rlkit.search: the games' rules in arrays, checked move for move against PettingZoo, and the
array tree search checked visit for visit against a plain one-node-at-a-time search."""
import numpy as np
import pytest
import torch

from rlkit import search
from rlkit.games import connect_four as c4
from rlkit.games import position
from rlkit.games import rules as games_rules
from tests.test_selfplay import CellValue, RandomNet, board


@pytest.mark.parametrize("name,games", [("connect_four", 100), ("tictactoe", 1000)])
def test_rules_follow_pettingzoo_move_for_move(name, games):
    import importlib

    from rlkit.envs.board import GAMES

    rules = games_rules(name)
    env = importlib.import_module(GAMES[name][0]).env()
    rng = np.random.default_rng(0)
    endings, moves = {}, 0
    for game in range(games):
        env.reset(seed=game)
        pos = np.zeros((1, *rules.SHAPE), bool)  # the empty board
        while True:
            obs, _, done, _, _ = env.last()
            assert not done
            assert (pos[0] == obs["observation"]).all()
            assert (rules.legal(pos)[0] == obs["action_mask"].astype(bool)).all()
            move = int(rng.choice(np.flatnonzero(obs["action_mask"])))
            env.step(move)
            moves += 1
            pos, end = rules.play(pos, np.array([move]))
            if env.terminations[env.agents[0]]:
                mover = env.agent_selection  # PettingZoo leaves the turn with the side to move next
                assert end[0] == env.rewards[mover] and end[0] in (-1.0, 0.0)
                endings[float(end[0])] = endings.get(float(end[0]), 0) + 1
                break
            assert np.isnan(end[0])
    assert set(endings) == {-1.0, 0.0} or name == "connect_four" and -1.0 in endings  # won games, and drawn ones
    assert moves > games * 5


def test_a_full_board_without_four_is_a_draw():
    owner = np.array([[0, 1, 1, 0, 1, 1, 0],  # a full board, 21 stones each, no line of four
                      [0, 0, 0, 1, 1, 0, 0],
                      [1, 1, 0, 1, 0, 0, 1],
                      [1, 0, 0, 1, 1, 1, 0],
                      [1, 0, 1, 0, 0, 0, 1],
                      [0, 1, 1, 0, 0, 1, 1]]).flatten()
    mine, theirs = owner == 0, owner == 1
    mine[0] = False  # the top of column 0: the last stone
    after, end = c4.drop(position(mine[None], theirs[None], (6, 7)), np.array([0]))
    assert after[0, ..., 1].sum() == 21 and end[0] == 0.0
    # A mover holding the top row's cells 0 to 2 completes four by the last drop, in column 3.
    mover = theirs.copy()
    mover[[0, 1, 2]] = True
    other = ~mover
    other[3] = False
    _, end = c4.drop(position(mover[None], other[None], (6, 7)), np.array([3]))
    assert end[0] == -1.0


class Node:
    """The plain reference: one object per position, PUCT walked one game at a time."""

    def __init__(self, pos, end=np.nan):
        self.pos, self.end = pos, end
        self.prior = None
        self.children = [None] * 7


def reference_visits(net, pos, mask, sims, c_puct=1.5):
    rate = search.rater(net, torch.device("cpu"))

    def expand(node):
        prior, value = rate(node.pos[None], c4.legal(node.pos[None]))
        node.prior, node.legal = prior[0], c4.legal(node.pos[None])[0]
        node.visits, node.total = np.zeros(7), np.zeros(7)
        return float(value[0])

    root = Node(pos)
    expand(root)
    root.legal = root.legal & mask
    for _ in range(sims):
        path, node = [], root
        while np.isnan(node.end) and node.prior is not None:
            q = np.where(node.visits > 0, node.total / np.maximum(node.visits, 1), 0.0)
            u = c_puct * node.prior * np.sqrt(node.visits.sum() + 1) / (1 + node.visits)
            col = int(np.argmax(np.where(node.legal, q + u, -np.inf)))
            if node.children[col] is None:
                after, end = c4.drop(node.pos[None], np.array([col]))
                node.children[col] = Node(after[0], end[0])
            path.append((node, col))
            node = node.children[col]
        value = node.end if not np.isnan(node.end) else expand(node)
        for parent, col in reversed(path):
            value = -value
            parent.visits[col] += 1
            parent.total[col] += value
    return root.visits


def test_array_search_visits_equal_the_plain_search():
    games = [board([35, 36, 37], [28, 29, 30], (6, 7)), board([35, 36], [41, 34, 27], (6, 7)),
             board([], [], (6, 7)), board([38], [39], (6, 7)), board([35, 38, 31], [36, 32, 24], (6, 7))]
    obs = np.stack([g[0] for g in games]).astype(bool)
    masks = np.stack([g[1] for g in games])
    masks[4, 3] = False  # a root mask narrower than the rules
    net = RandomNet(seed=0)
    trees = search.search(net, obs, masks, 100)
    for i in range(len(games)):
        assert (trees.root_visits[i] == reference_visits(net, obs[i], masks[i], 100)).all()
    assert trees.root_visits.sum(1).tolist() == [100] * len(games) and trees.root_visits[4, 3] == 0
    assert trees.best()[:2].tolist() == [3, 6]  # the win in one, and the block
    assert trees.used.max() == 101  # the empty board: every simulation a new node, all 101 places used


def test_root_noise_steers_the_search():
    pos = np.zeros((2, *c4.SHAPE), bool)
    mask = c4.legal(pos)
    noise = np.zeros((2, 7))
    noise[0, 5] = noise[1, 1] = 1.0
    trees = search.search(CellValue(), pos, mask, 20, noise=noise)
    plain = search.search(CellValue(), pos, mask, 20)
    assert trees.best().tolist() == [5, 1]
    assert plain.best().tolist() == [0, 0]  # equal priors and values: ties go to the lowest column
    assert trees.prior[0, 0, 5] == pytest.approx(0.75 / 7 + 0.25)


@pytest.mark.parametrize("name", ["connect_four", "tictactoe"])
def test_openspiel_bot_sees_the_position_pettingzoo_shows(name):
    import importlib

    from rlkit.envs.board import GAMES
    from rlkit.openspiel_bot import OpenSpielMCTS

    bot = OpenSpielMCTS(name, seed=0, sims=20)
    env = importlib.import_module(GAMES[name][0]).env()
    rng = np.random.default_rng(1)
    checked = 0
    for game in range(40):
        env.reset(seed=game)
        while not any(env.terminations.values()):
            obs = env.last()[0]
            state = bot.position(obs["observation"])
            # The rebuilt state: the same side to move, the same legal moves, the same stones.
            assert state.legal_actions() == np.flatnonzero(obs["action_mask"]).tolist()
            cells = np.array([list(row) for row in str(state).split()])  # the top row first; x moved first
            me = state.current_player()
            assert (obs["observation"][..., 0] == (cells == "xo"[me])).all()
            assert (obs["observation"][..., 1] == (cells == "xo"[1 - me])).all()
            checked += 1
            env.step(int(rng.choice(np.flatnonzero(obs["action_mask"]))))
    assert checked > 200
    win_now = board([35, 36, 37], [28, 29, 30], (6, 7)) if name == "connect_four" else board([0, 1], [3, 4])
    assert bot.act(*win_now) == (3 if name == "connect_four" else 2)  # it takes a win in one
