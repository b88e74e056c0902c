"""Algorithms, one module each, all listed in ALGOS. The training loop (rlkit/train.py) knows an
algorithm only through the `Algorithm` protocol and its batches' source only through `Collector`;
it never asks an algorithm's name. Adding an algorithm is one module here, one line in ALGOS and
one YAML file in configs/algo/."""
from __future__ import annotations

from typing import Any, Protocol

import torch

from rlkit.algos import alphazero, ppo, reinforce


class Collector(Protocol):
    """Where an algorithm's batches come from: rlkit.rollout.Rollout (on-policy games in this
    process), rlkit.distributed.RayCollector (the same on Ray actors), rlkit.async_rollout.AsyncCollector
    (either, one rollout ahead), rlkit.algos.alphazero.SearchSelfPlay (searched self-play),
    rlkit.algos.reinforce.EpisodeBatches (rollouts gathered into batches of whole episodes)."""

    num_envs: int          # games stepped at once: a batch covers num_steps * num_envs agent steps
    restarts: int          # envs or workers that failed and were replaced so far
    observation_space: Any
    action_space: Any
    pool: Any              # self-play's opponent pool (rlkit.pool.OpponentPool), or None

    def collect(self, policy: torch.nn.Module) -> tuple[dict, list[tuple[float, int]]]:
        """One batch for the update, and the episodes that ended meanwhile as (return, length). A
        batch that did not cost num_steps * num_envs agent steps says what it cost: batch["steps"]."""

    def state(self) -> dict | None:
        """What a checkpoint must keep for a resumed run to go on ({"tensors", "meta"}), or None."""

    def load_state(self, state: dict) -> None:
        """Take back what `state()` gave."""

    def close(self) -> None:
        """Stop the games (and worker processes or actors)."""


class Algorithm(Protocol):
    """What an algorithm module provides."""

    ASYNC_ROLLOUT: bool    # its update corrects async_rollout's one rollout of lag
    AUGMENT: bool          # its update can learn from a batch's images under the board's symmetries

    def make_collector(self, cfg, device: torch.device, seed: int) -> Collector:
        """Its collector for this run (refusing settings it cannot run with, in one line)."""

    def update(self, policy: torch.nn.Module, optimizer, batch: dict, cfg) -> dict:
        """Learn from one batch; returns the scalars to log (`loss/...`, `stats/...`)."""


ALGOS: dict[str, Algorithm] = {"ppo": ppo, "reinforce": reinforce, "alphazero": alphazero}
