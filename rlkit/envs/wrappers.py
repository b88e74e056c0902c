"""The wrappers every single-player game shares: the game's own score recorded below any reward
scaling (so `episode/return` is always what the game says), and an optional time limit."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlkit.errors import UsageError


def keep_features(env: gym.Env, keep) -> gym.Env:
    """Only the observation features at these indices (a Box observation of one dimension)."""
    space = env.observation_space
    if keep is None:
        return env
    if len(space.shape) != 1 or max(keep) >= space.shape[0]:
        raise UsageError(f"env.keep={list(keep)} picks features of a flat observation; this one is {space.shape}")
    index = np.asarray(list(keep))
    kept = gym.spaces.Box(space.low[index], space.high[index], (len(index),), space.dtype)
    return gym.wrappers.TransformObservation(env, lambda obs: obs[index], kept)


def stats_and_limit(env: gym.Env, max_episode_steps) -> gym.Env:
    """Optional time limit (a truncation), then the episode statistics of the game's own score."""
    if max_episode_steps:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return gym.wrappers.RecordEpisodeStatistics(env)


def scale_reward(env: gym.Env, scale: float) -> gym.Env:
    return env if scale == 1.0 else gym.wrappers.TransformReward(env, lambda r: r * scale)
