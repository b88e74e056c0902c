"""Gymnasium's classic and Box2D games (CartPole, LunarLander): quick sanity checks."""
from __future__ import annotations

import gymnasium as gym

from rlkit.envs.wrappers import keep_features, scale_reward, stats_and_limit
from rlkit.errors import UsageError


def check_id(env_id: str) -> None:
    """An id from a loaded file: only one registered in this process already (Gymnasium's own, or
    one the program loading the file registered), never `module:Id`, which would import `module`."""
    if ":" in env_id or env_id not in gym.registry:
        own = [k for k, spec in gym.registry.items() if isinstance(spec.entry_point, str)
               and spec.entry_point.startswith("gymnasium.envs.") and "/" not in k][:12]
        raise UsageError(f"env.id {env_id[:60]!r} in a loaded file is not a registered Gymnasium id (a file may "
                         f"not name a module); choose from: {', '.join(own)}, or ids your program registers")


def make(cfg, render_mode=None) -> gym.Env:
    try:
        env = gym.make(cfg.id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as e:
        raise UsageError(f"{cfg.id} needs an optional package: pip install -e '.[box2d]' ({e})") from None
    except gym.error.Error as e:
        raise UsageError(f"unknown Gymnasium id {cfg.id!r} ({e})") from None
    env = keep_features(env, cfg.get("keep"), cfg.get("obs_scale"))
    return scale_reward(stats_and_limit(env, cfg.max_episode_steps), cfg.reward_scale)
