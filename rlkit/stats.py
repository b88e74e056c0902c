"""The numbers behind `rlkit.compare` and `rlkit.bench`: learning curves on a common grid,
bootstrap confidence intervals over seeds, the interquartile mean, threshold crossings.
Episodes are (step, return, seconds) tuples in the order they finished."""
from __future__ import annotations

import warnings

import numpy as np


def crossing(episodes, threshold, window):
    """First (step, seconds) at which the mean return of the last `window` episodes >= threshold."""
    returns = np.array([r for _, r, _ in episodes], dtype=float)
    if threshold is None or len(returns) < window:
        return None
    means = np.convolve(returns, np.ones(window) / window, mode="valid")
    hit = np.nonzero(means >= threshold)[0]
    if not len(hit):
        return None
    step, _, t = episodes[hit[0] + window - 1]
    return step, t


def window_of(means, window: int) -> int:
    """The logged returns a mean over `window` episodes takes: 1 where each is already a mean of
    `means` episodes (a peer that logs only such means: Sample Factory), else `window`."""
    return 1 if means else window


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle half (a quarter trimmed from each end)."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    cut = len(x) // 4
    return float(x[cut: len(x) - cut].mean()) if len(x) else float("nan")


def bootstrap_ci(values, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean over runs and its percentile-bootstrap confidence interval (runs resampled)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(x.mean()), float(lo), float(hi)


def curve(episodes, grid, smooth: int = 20, axis: int = 0) -> np.ndarray:
    """At each grid point: the mean return of the last `smooth` episodes finished by then (NaN
    before the first). `axis` 0 reads the grid as agent steps, 2 as seconds."""
    if not episodes:
        return np.full(len(grid), np.nan)
    when = np.array([e[axis] for e in episodes], dtype=float)
    returns = np.array([e[1] for e in episodes], dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(returns)])
    done = np.searchsorted(when, grid, side="right")  # episodes finished by each grid point
    start = np.maximum(done - smooth, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (cumulative[done] - cumulative[start]) / (done - start)
    return np.where(done > 0, out, np.nan)


def band(curves: np.ndarray, resamples: int = 1000, level: float = 0.95, seed: int = 0):
    """Mean over runs (rows) at each grid point and its bootstrap band; points where fewer than
    half the runs have a value are NaN."""
    curves = np.asarray(curves, dtype=float)
    n = curves.shape[0]
    rng = np.random.default_rng(seed)
    picks = curves[rng.integers(0, n, (resamples, n))]  # [resamples, runs, points]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points: no run has a value yet
        mean = np.nanmean(curves, axis=0)
        boot = np.nanmean(picks, axis=1)
        lo, hi = np.nanpercentile(boot, [50 * (1 - level), 50 * (1 + level)], axis=0)
    enough = np.sum(~np.isnan(curves), axis=0) * 2 >= n
    return (np.where(enough, v, np.nan) for v in (mean, lo, hi))
