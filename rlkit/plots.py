"""rlkit.compare's figures: learning curves with confidence bands, and self-play Elo."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rlkit import stats


def plot(groups, path: Path, title: str, smooth: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for algo, runs in groups.items():
        for ax, axis, label in ((axes[0], 0, "agent steps"), (axes[1], 2, "wall-clock seconds")):
            end = max((run["episodes"][-1][axis] for run in runs if run["episodes"]), default=1)
            grid = np.linspace(0, end, 200)
            curves = [stats.curve(run["episodes"], grid, stats.window_of(run["summary"].get("episode_means"), smooth),
                                  axis) for run in runs]  # a peer's logged means are drawn as they are
            mean, lo, hi = stats.band(np.stack(curves))
            line, = ax.plot(grid, mean, label=f"{algo} ({len(runs)} runs)")
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            ax.set_xlabel(label)
    axes[0].set_ylabel(f"episode return (mean of last {smooth}; Sample Factory: of its last 100)")
    axes[0].legend(loc="best")
    fig.suptitle(f"{title}: mean and 95% bootstrap confidence band over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_elo(groups, path: Path, title: str) -> None:
    """Self-play runs: the Elo of each new snapshot (random = 0) against the agent steps it was taken at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo, runs in groups.items():
        for run in runs:
            if run["elo"]:
                steps, elo = zip(*run["elo"])
                ax.plot(steps, elo, marker=".", label=algo if run["seed"] is None else f"{algo} seed {run['seed']}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("Elo of the latest snapshot (random = 0)")
    ax.legend(loc="best")
    ax.set_title(f"{title}: self-play Elo over training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
