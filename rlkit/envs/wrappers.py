"""The wrappers every single-player game shares: the game's own score recorded below any reward
scaling (so `episode/return` is always what the game says), and an optional time limit."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlkit.errors import UsageError


def keep_features(env: gym.Env, keep, scale=None) -> gym.Env:
    """Only the observation features at these indices (a Box observation of one dimension), each
    times its `scale` (one factor per feature kept; null: as they are)."""
    space = env.observation_space
    if keep is None and scale is None:
        return env
    if len(space.shape) != 1 or (keep is not None and max(keep) >= space.shape[0]):
        what = f"env.keep={list(keep)} picks" if keep is not None else "env.obs_scale scales"
        raise UsageError(f"{what} features of a flat observation; this one is {space.shape}")
    index = np.asarray(list(keep) if keep is not None else range(space.shape[0]))
    if scale is None:  # features picked, nothing multiplied on each step
        kept = gym.spaces.Box(space.low[index], space.high[index], (len(index),), space.dtype)
        return gym.wrappers.TransformObservation(env, lambda obs: obs[index], kept)
    factor = np.asarray(list(scale), space.dtype)
    if factor.shape != index.shape:
        raise UsageError(f"env.obs_scale has {len(factor)} factors for {len(index)} observation features: "
                         f"give one per feature kept")
    kept = gym.spaces.Box(space.low[index] * factor, space.high[index] * factor, (len(index),), space.dtype)
    return gym.wrappers.TransformObservation(env, lambda obs: obs[index] * factor, kept)


def stats_and_limit(env: gym.Env, max_episode_steps) -> gym.Env:
    """Optional time limit (a truncation), then the episode statistics of the game's own score."""
    if max_episode_steps:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return gym.wrappers.RecordEpisodeStatistics(env)


def scale_reward(env: gym.Env, scale: float) -> gym.Env:
    return env if scale == 1.0 else gym.wrappers.TransformReward(env, lambda r: r * scale)
