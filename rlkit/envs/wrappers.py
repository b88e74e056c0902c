"""The wrappers every single-player game shares: the game's own score recorded below any reward
scaling (so `episode/return` is always what the game says), and an optional time limit."""
from __future__ import annotations

import gymnasium as gym


def stats_and_limit(env: gym.Env, max_episode_steps) -> gym.Env:
    """Optional time limit (a truncation), then the episode statistics of the game's own score."""
    if max_episode_steps:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return gym.wrappers.RecordEpisodeStatistics(env)


def scale_reward(env: gym.Env, scale: float) -> gym.Env:
    return env if scale == 1.0 else gym.wrappers.TransformReward(env, lambda r: r * scale)
