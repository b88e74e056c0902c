"""The arithmetic of Gumbel AlphaZero (Danihelka, Guez, Schrittwieser and Silver, "Policy
improvement by planning with Gumbel", ICLR 2022), used by rlkit.search's `root="gumbel"`:

- the root considers the `k` legal moves with the highest logit + Gumbel noise (Gumbel-top-k: a
  sample without replacement from the policy) and shares the simulations out among them by
  sequential halving (`halving`), so that a handful of simulations still finds the better move;
- a move's worth is its completed Q-value (`completed_q`): the mean value of its visits, or for
  a move not visited, the network's value of the position mixed with the visited moves' values;
- `sigma` turns completed Q-values into logit bonuses, growing with the visits. The improved
  policy, softmax(logits + sigma), is the training target, and below the root the search visits
  the move whose visit share lags it the most.

Everything is batched: arrays [..., A] over the moves, with the positions' leading axes."""
from __future__ import annotations

import math

import numpy as np

C_VISIT, C_SCALE = 50.0, 0.1  # the paper's constants for sigma


def halving(considered: int, sims: int) -> np.ndarray:
    """Sequential halving as a sequence: for each of `sims` simulations, the number of visits
    the root move it takes must already have. The `considered` moves get one visit per round;
    each phase has sims / (log2(considered) * moves left) rounds (at least one), and then the
    better half goes on (never fewer than two), until the simulations are spent."""
    if considered <= 1:
        return np.arange(sims)
    phases, alive, count, order = math.ceil(math.log2(considered)), considered, 0, []
    while len(order) < sims:
        for _ in range(max(1, sims // (phases * alive))):
            order += [count] * alive
            count += 1
        alive = max(2, alive // 2)
    return np.array(order[:sims])


def completed_q(visits: np.ndarray, total: np.ndarray, prior: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Each move's Q-value for the mover: total / visits where visited; elsewhere the position's
    mixed value, (value + n * the prior-weighted mean Q of the visited moves) / (1 + n), with n
    the position's visits (the network's `value` alone before any)."""
    seen = visits > 0
    n = visits.sum(-1)
    q = np.where(seen, total / np.maximum(visits, 1), 0.0)
    weight = np.where(seen, np.maximum(prior, 1e-30), 0.0)
    mean = (weight * q).sum(-1) / np.maximum(weight.sum(-1), 1e-30)
    mixed = (value + n * mean) / (1 + n)
    return np.where(seen, q, mixed[..., None])


def sigma(completed: np.ndarray, visits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """(C_VISIT + the most visits of any move) * C_SCALE * the completed Q-values rescaled to
    [0, 1] over the legal moves (all 0 when they are equal)."""
    low = np.where(legal, completed, np.inf).min(-1, keepdims=True)
    high = np.where(legal, completed, -np.inf).max(-1, keepdims=True)
    scaled = (completed - low) / np.maximum(high - low, 1e-8)
    return (C_VISIT + visits.max(-1, keepdims=True)) * C_SCALE * np.where(legal, scaled, 0.0)


def logits_of(prior: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Log-priors, -inf for illegal moves (softmax of them gives the priors back)."""
    return np.where(legal, np.log(np.maximum(prior, 1e-30)), -np.inf)


def improved(prior, legal, visits, total, value) -> np.ndarray:
    """The improved policy softmax(logits + sigma(completed Q)), zero on illegal moves."""
    scores = logits_of(prior, legal) + sigma(completed_q(visits, total, prior, value), visits, legal)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return scores / scores.sum(-1, keepdims=True)
