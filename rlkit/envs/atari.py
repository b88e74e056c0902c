"""Atari through ale-py with the standard DeepMind preprocessing: no-op reset, frame skip 4
with max-pool, episodic life, fire reset, reward clipping, 84x84 gray, 4 stacked frames.
`episode/return` is recorded below the life and clipping wrappers: the whole game's score."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from rlkit.envs.wrappers import stats_and_limit
from rlkit.errors import UsageError


def games() -> list[str]:
    """ALE's games, from the ROM files ale-py ships (listed without importing ale_py, which must
    not share a process with EnvPool)."""
    import importlib.util

    spec = importlib.util.find_spec("ale_py")
    if spec is None or spec.origin is None:
        raise UsageError("Atari games need ale-py: pip install ale-py")
    return sorted(p.stem for p in (Path(spec.origin).parent / "roms").glob("*.bin"))


def check_game(game: str) -> None:
    """A game name from a loaded file: one of ALE's ROMs ('Pong', 'pong' or 'space_invaders')."""
    if game.replace("_", "").lower() not in {g.replace("_", "") for g in games()}:
        raise UsageError(f"unknown Atari game {game[:60]!r}; choose from: {', '.join(games())}")


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
    from stable_baselines3.common.atari_wrappers import (
        ClipRewardEnv,
        EpisodicLifeEnv,
        FireResetEnv,
    )

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
    env = gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
    env.metadata = {**env.metadata, "render_fps": 60}  # the console's rate (ALE says 30)
    return env


def envpool_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("envpool") is not None


class EnvPoolAtari(gym.vector.VectorEnv):
    """EnvPool's C++ Atari (threads, no Python per env) behind the same interface as the
    Gymnasium path: [N, stack, H, W] uint8 frames, SAME_STEP autoreset with `final_obs`, and
    `final_info["episode"]` holding the whole game's unclipped score and length across lives."""

    def __init__(self, cfg, num_envs: int, seed: int):
        import os

        import envpool

        # EnvPool draws 0..noop_max-1 no-ops (and crashes on 0); Gymnasium draws 1..noop_max.
        # ale_py must not be loaded in this process: its ALE and EnvPool's crash each other.
        tasks = [t for t in envpool.list_all_envs() if t.endswith("-v5") and t[0].isupper()]
        task = next((t for t in tasks if t.lower() == cfg.game.replace("_", "").lower() + "-v5"), None)
        if task is None:
            raise UsageError(f"unknown Atari game {cfg.game!r} for EnvPool; choose from: "
                             f"{', '.join(t[:-3] for t in tasks)}, or env.backend=gymnasium")
        self.envpool = envpool.make(task, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs,
                                 num_threads=min(num_envs, os.cpu_count() or 1), seed=seed,
                                 max_episode_steps=cfg.max_episode_steps or 10**9, stack_num=cfg.frame_stack,
                                 frame_skip=cfg.frame_skip, noop_max=cfg.noop_max + 1, episodic_life=cfg.episodic_life,
                                 reward_clip=cfg.clip_rewards, use_fire_reset=cfg.fire_reset,
                                 img_height=cfg.size, img_width=cfg.size, full_action_space=False,
                                 repeat_action_probability=cfg.repeat_action_probability)
        self.num_envs = num_envs
        self.single_observation_space = self.envpool.observation_space
        self.single_action_space = self.envpool.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.score = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        obs, _ = self.envpool.reset()  # seeded when made: EnvPool takes its seed at construction
        self.score[:], self.length[:] = 0, 0
        return obs, {}

    def step(self, actions):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions) -> None:
        """Start a step; EnvPool's threads run it while this thread does other work."""
        self.envpool.send(np.asarray(actions))

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.envpool.recv()
        self.score += info["reward"]  # before clipping
        self.length += 1
        done = terminated | truncated
        out = {}
        if done.any():
            ids = np.nonzero(done)[0]
            final_obs = np.empty(self.num_envs, dtype=object)
            final_obs[ids] = list(obs[ids])
            obs = obs.copy()
            obs[ids] = self.envpool.reset(np.asarray(ids, dtype=np.int32))[0]  # a life lost: the game goes on
            game_over = done & ((info["terminated"] == 1) | truncated)
            out = {"final_obs": final_obs, "_final_obs": done, "final_info": {
                "episode": {"r": self.score.copy(), "l": self.length.copy()}, "_episode": game_over}}
            self.score[game_over], self.length[game_over] = 0, 0
        return obs, reward.astype(np.float32), terminated.astype(bool), truncated.astype(bool), out

    def close(self, **kwargs):
        self.envpool.close() if hasattr(self.envpool, "close") else None


class EnvPoolSingle(gym.Env):
    """One EnvPool game as a plain Gymnasium env, for evaluation videos in a process that
    trains on EnvPool (ale_py cannot be loaded there). It draws what the agent sees: the newest
    84x84 gray frame."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}  # noqa: RUF012 - Gymnasium's convention

    def __init__(self, cfg, seed: int = 0, render_mode=None):
        self.pool = EnvPoolAtari(cfg, 1, seed)
        self.observation_space, self.action_space = self.pool.single_observation_space, self.pool.single_action_space
        self.render_mode, self.frame_skip, self._obs, self._next = render_mode, cfg.frame_skip, None, None

    def reset(self, *, seed=None, options=None):
        # After an episode (or a life) ended, the pool has already started the next one.
        first = self._next if self._next is not None else self.pool.reset()[0][0]
        self._obs, self._next = first, None
        return first, {}

    def step(self, action):
        obs, reward, terminated, truncated, out = self.pool.step(np.array([action]))
        done = bool(terminated[0] or truncated[0])
        self._obs, self._next = (out["final_obs"][0], obs[0]) if done else (obs[0], None)
        info = {}
        if done and out["final_info"]["_episode"][0]:
            info["episode"] = {k: v[0] for k, v in out["final_info"]["episode"].items()}
        return self._obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        return np.repeat(self._obs[-1][..., None], 3, axis=2)

    def close(self):
        self.pool.close()
