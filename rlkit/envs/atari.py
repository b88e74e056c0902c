"""Atari through ale-py with the standard DeepMind preprocessing: no-op reset, frame skip 4
with max-pool, episodic life, fire reset, reward clipping, 84x84 gray, 4 stacked frames.
`episode/return` is recorded below the life and clipping wrappers: the whole game's score."""
from __future__ import annotations

import gymnasium as gym

from rlkit.config import UsageError


def games() -> list[str]:
    import ale_py.roms

    return sorted(ale_py.roms.get_all_rom_ids())


def _to_id(game: str) -> str:
    """'Pong', 'pong' or 'space_invaders' -> 'ALE/Pong-v5', 'ALE/SpaceInvaders-v5'."""
    import ale_py

    gym.register_envs(ale_py)
    key = game.replace("_", "").lower()
    for env_id in gym.registry:
        if env_id.startswith("ALE/") and env_id.endswith("-v5") and env_id[4:-3].lower() == key:
            return env_id
    raise UsageError(f"unknown Atari game {game!r}; choose from: {', '.join(games())}")


def make(cfg, render_mode=None) -> gym.Env:
    from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv, FireResetEnv

    from rlkit.envs import stats_and_limit

    env = gym.make(_to_id(cfg.game), frameskip=1, repeat_action_probability=cfg.repeat_action_probability,
                   full_action_space=False, render_mode=render_mode)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                                          screen_size=cfg.size, terminal_on_life_loss=False, grayscale_obs=True)
    env = stats_and_limit(env, cfg.max_episode_steps)
    if cfg.episodic_life:
        env = EpisodicLifeEnv(env)
    if cfg.fire_reset and "FIRE" in env.unwrapped.get_action_meanings():
        env = FireResetEnv(env)
    if cfg.clip_rewards:
        env = ClipRewardEnv(env)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
