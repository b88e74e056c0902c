"""Gymnasium's classic and Box2D games (CartPole, LunarLander): quick sanity checks."""
from __future__ import annotations

import gymnasium as gym

from rlkit.config import UsageError


def make(cfg, render_mode=None) -> gym.Env:
    from rlkit.envs import scale_reward, stats_and_limit

    try:
        env = gym.make(cfg.id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as e:
        raise UsageError(f"{cfg.id} needs an optional package: pip install -e '.[box2d]' ({e})") from None
    except gym.error.Error as e:
        raise UsageError(f"unknown Gymnasium id {cfg.id!r} ({e})") from None
    return scale_reward(stats_and_limit(env, cfg.max_episode_steps), cfg.reward_scale)
