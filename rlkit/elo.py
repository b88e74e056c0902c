"""Elo ratings. Online updates (`update`, for the opponent pool during training) and a batch
fit of all games at once (`fit`, the Bradley-Terry maximum-likelihood ratings, for the arena)
with bootstrap confidence intervals (`interval`). Scores: 1 win, 0.5 draw, 0 loss."""
from __future__ import annotations

import numpy as np


def expected(ra: float, rb: float) -> float:
    """A's expected score against B."""
    return 1.0 / (1.0 + 10.0 ** ((rb - ra) / 400.0))


def update(ra: float, rb: float, score_a: float, k: float) -> tuple[float, float]:
    """Ratings after one game in which A scored `score_a`."""
    delta = k * (score_a - expected(ra, rb))
    return ra + delta, rb - delta


def fit(n: int, games, anchor: int | None = None, iters: int = 5000) -> np.ndarray:
    """Maximum-likelihood ratings of `n` players from games (i, j, score of i). One virtual draw
    per pair that played keeps perfect records finite. Shifted so that player `anchor` is at 0
    (default: the mean is 0)."""
    wins = np.zeros((n, n))
    for i, j, s in games:
        wins[i, j] += s
        wins[j, i] += 1 - s
    played = (wins + wins.T) > 0
    wins += 0.5 * played
    count = wins + wins.T
    gamma = np.ones(n)
    for _ in range(iters):  # minorization-maximization (Hunter 2004)
        denom = (count / (gamma[:, None] + gamma[None, :])).sum(1)
        new = np.where(denom > 0, wins.sum(1) / np.maximum(denom, 1e-300), gamma)
        new /= np.exp(np.log(new).mean())
        if np.allclose(new, gamma, rtol=1e-10, atol=0):
            gamma = new
            break
        gamma = new
    ratings = 400.0 * np.log10(gamma)
    return ratings - (ratings[anchor] if anchor is not None else ratings.mean())


def interval(n: int, games, anchor: int | None = None, reps: int = 200, seed: int = 0,
             level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap confidence interval of `fit`: games resampled with replacement within each pair."""
    rng = np.random.default_rng(seed)
    by_pair: dict[tuple[int, int], list] = {}
    for g in games:
        by_pair.setdefault((g[0], g[1]), []).append(g)
    samples = []
    for _ in range(reps):
        resampled = [g for pair in by_pair.values() for g in (pair[k] for k in rng.integers(len(pair), size=len(pair)))]
        samples.append(fit(n, resampled, anchor, iters=500))
    tail = 100 * (1 - level) / 2
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0)
