"""Gumbel AlphaZero's root (rlkit.gumbel, rlkit.search with root="gumbel"): the move it plays
with one simulation, sequential halving's phases, completed Q-values and the improved policy
against values worked out by hand, and the searched self-play that trains on them."""
import numpy as np
import pytest
import torch

from rlkit import gumbel as gz
from rlkit import search
from rlkit.games import connect_four as c4
from rlkit.nets import Memoryless


class Fixed(Memoryless, torch.nn.Module):
    """The given logits for every position, and a value of 0."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.as_tensor(logits, dtype=torch.float32)

    def forward(self, obs, action_mask=None):
        logits = self.logits.expand(len(obs), -1)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask.bool(), -1e9)
        return logits, torch.zeros(len(obs))


def empty(b):
    pos = np.zeros((b, *c4.SHAPE), bool)
    return pos, c4.legal(pos)


LOGITS = np.log([0.05, 0.1, 0.3, 0.2, 0.15, 0.12, 0.08])


def test_one_simulation_plays_the_argmax_of_logits_plus_gumbel_noise():
    pos, mask = empty(200)
    draws = np.random.default_rng(0).gumbel(size=(200, 7))
    trees = search.search(Fixed(LOGITS), pos, mask, 1, gumbel=draws, considered=4)
    want = np.argmax(LOGITS + draws, 1)
    assert (trees.best() == want).all()
    assert (trees.root_visits.argmax(1) == want).all() and (trees.root_visits.sum(1) == 1).all()
    assert len(set(want.tolist())) == 7  # the noise did move the choice about
    # One simulation per move, the values all equal: every move visited once, the same choice.
    trees = search.search(Fixed(LOGITS), pos, mask, 7, gumbel=draws, considered=7)
    assert (trees.root_visits == 1).all() and (trees.best() == want).all()


def test_sequential_halving_keeps_the_better_half_each_phase():
    # 8 moves, 32 simulations: 3 phases; one round of 8, two of 4, then rounds of 2.
    visits = np.zeros(8, int)
    for due in gz.halving(8, 32):
        visits[np.flatnonzero(visits == due)[0]] += 1  # the best-scored move with that count: the lowest index
    assert visits.tolist() == [11, 11, 3, 3, 1, 1, 1, 1]
    assert gz.halving(1, 3).tolist() == [0, 1, 2]
    # In the search: 4 moves considered of 7, 16 simulations; equal values, so the ranking is
    # logits + noise throughout: 2 rounds of the 4 drawn, then 4 of the best two.
    pos, mask = empty(50)
    draws = np.random.default_rng(1).gumbel(size=(50, 7))
    trees = search.search(Fixed(LOGITS), pos, mask, 16, gumbel=draws, considered=4)
    order = np.argsort(-(LOGITS + draws), 1, kind="stable")
    got = np.take_along_axis(trees.root_visits, order, 1)
    assert (got == [6, 6, 2, 2, 0, 0, 0]).all()
    assert (trees.best() == order[:, 0]).all()


def test_completed_q_and_the_improved_policy_by_hand():
    prior = np.array([0.5, 0.3, 0.2, 0.0])
    legal = np.array([True, True, True, False])
    visits = np.array([2.0, 1.0, 0.0, 0.0])
    total = np.array([1.0, -0.5, 0.0, 0.0])
    # q: 0.5 and -0.5; the mean weighted by prior (0.25 - 0.15) / 0.8 = 0.125; the unvisited
    # moves get (0.2 + 3 * 0.125) / (1 + 3) = 0.14375.
    completed = gz.completed_q(visits, total, prior, np.array(0.2))
    assert completed.tolist() == pytest.approx([0.5, -0.5, 0.14375, 0.14375])
    # Rescaled over the legal moves to 1, 0, 0.64375; times (50 + 2 visits) * 0.1 = 5.2.
    assert gz.sigma(completed, visits, legal).tolist() == pytest.approx([5.2, 0.0, 3.3475, 0.0])
    want = np.array([0.5 * np.exp(5.2), 0.3, 0.2 * np.exp(3.3475), 0.0])
    assert gz.improved(prior, legal, visits, total, np.array(0.2)).tolist() == pytest.approx(want / want.sum())
    # Before any visit the completed Q is the network's value everywhere: the prior comes back.
    none = np.zeros(4)
    assert gz.improved(prior, legal, none, none, np.array(0.7)).tolist() == pytest.approx(prior.tolist())


def test_the_gumbel_search_finds_the_win_and_teaches_it():
    # The mover holds 35, 36, 37 (the bottom row's first three): column 3 wins at once, though
    # the fixed logits favour column 2.
    pos, mask = empty(1)
    pos[0, 5, 0:3, 0], pos[0, 4, 0:3, 1] = True, True  # cells 35-37 the mover's, 28-30 the other side's
    draws = np.zeros((1, 7))
    trees = search.search(Fixed(LOGITS), pos, mask, 16, gumbel=draws, considered=4)
    assert trees.best().tolist() == [3]
    target = trees.targets()[0]
    assert target.sum() == pytest.approx(1) and target.argmax() == 3 and target[3] > 0.9


def test_gumbel_self_play_on_tictactoe_keeps_improved_targets():
    from rlkit.algos import alphazero
    from rlkit.config import load_config

    cfg = load_config(["env=tictactoe", "algo=alphazero", "algo.root=gumbel", "algo.sims=8", "algo.num_steps=9",
                       "num_envs=4", "env.selfplay.opening_moves=0"])
    collector = alphazero.SearchSelfPlay(cfg, torch.device("cpu"), seed=0)
    net = Fixed(np.zeros(9))  # logits for 9 moves

    batch, episodes = collector.collect(net)
    assert batch["game"] == "tictactoe" and batch["new"] == 36 and episodes
    n = collector.filled
    assert n == sum(length for _, length in episodes)  # every finished game's positions, no opening moves
    pi, masks = batch["pi"][:n], batch["masks"][:n]
    assert torch.allclose(pi.sum(1), torch.ones(n)) and (pi[~masks] == 0).all()
    choices = masks.sum(1) > 1
    assert choices.any() and (pi[choices].max(1).values < 1).all()  # the improved policy, not the move played
    assert set(batch["z"][:n].tolist()) <= {-1.0, 0.0, 1.0} and batch["obs"].shape[1:] == (3, 3, 2)
