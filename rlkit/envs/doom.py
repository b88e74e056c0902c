"""ViZDoom as a Gymnasium env, driven through DoomGame directly (no window, low resolution,
frame skip inside the engine). Observations are uint8 [C, H, W] (C = 1 gray or 3 RGB)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from rlkit.config import UsageError

ENVS_DIR = Path(__file__).resolve().parents[2] / "envs" / "doom"


def scenario_path(scenario: str) -> Path:
    """A scenario name shipped with vizdoom or with rlkit (`envs/doom/`), or a path to a .cfg."""
    import vizdoom

    shipped = Path(vizdoom.scenarios_path)
    for candidate in (Path(scenario), ENVS_DIR / f"{scenario}.cfg", shipped / f"{scenario}.cfg"):
        if candidate.suffix == ".cfg" and candidate.is_file():
            return candidate
    names = sorted({p.stem for d in (shipped, ENVS_DIR) if d.is_dir() for p in d.glob("*.cfg")})
    raise UsageError(f"unknown doom scenario {scenario!r}; choose from: {', '.join(names)}, or a path to a .cfg")


class DoomEnv(gym.Env):
    """One ViZDoom game. Actions: one button pressed at a time (Discrete(len(buttons))).
    The scenario's timeout ends an episode as a truncation (the agent cannot see the clock)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 35}

    def __init__(self, scenario="basic", resolution="RES_160X120", grayscale=True, size=(64, 64),
                 frame_skip=4, render_mode=None):
        import vizdoom as vzd

        self.game = vzd.DoomGame()
        self.game.load_config(str(scenario_path(scenario)))
        try:
            self.game.set_screen_resolution(getattr(vzd.ScreenResolution, resolution))
        except AttributeError:
            valid = [r for r in dir(vzd.ScreenResolution) if r.startswith("RES_")]
            raise UsageError(f"unknown doom resolution {resolution!r}; choose from: {', '.join(valid)}") from None
        self.grayscale = grayscale
        self.game.set_screen_format(vzd.ScreenFormat.GRAY8 if grayscale else vzd.ScreenFormat.RGB24)
        self.game.set_window_visible(render_mode == "human")
        self.game.set_sound_enabled(False)
        self.game.set_mode(vzd.Mode.PLAYER)
        self.game.init()
        self.frame_skip = int(frame_skip)
        self.size = (int(size[0]), int(size[1]))
        self.render_mode = render_mode
        n = self.game.get_available_buttons_size()
        self._actions = np.eye(n, dtype=np.float64).tolist()
        self.buttons = [str(b).split(".")[-1] for b in self.game.get_available_buttons()]
        channels = 1 if grayscale else 3
        self.observation_space = gym.spaces.Box(0, 255, (channels, *self.size), np.uint8)
        self.action_space = gym.spaces.Discrete(n)
        self._last = np.zeros(self.observation_space.shape, np.uint8)
        self._screen = None

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is None:  # episode over: ViZDoom gives no screen; repeat the last one
            return self._last.copy()
        screen = state.screen_buffer  # [H, W] gray or [H, W, 3] RGB
        self._screen = screen
        frame = cv2.resize(screen, self.size[::-1], interpolation=cv2.INTER_AREA)
        self._last = frame[None] if self.grayscale else np.ascontiguousarray(frame.transpose(2, 0, 1))
        return self._last

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.game.set_seed(int(seed) % (2**31))
        self.game.new_episode()
        return self._observe(), {}

    def step(self, action):
        reward = self.game.make_action(self._actions[int(action)], self.frame_skip)
        done = self.game.is_episode_finished()
        timeout = done and self.game.is_episode_timeout_reached()
        terminated = done and not timeout
        return self._observe(), float(reward), terminated, timeout, {}

    def render(self):
        if self._screen is None:
            return None
        screen = self._screen
        return np.repeat(screen[..., None], 3, axis=2) if screen.ndim == 2 else screen

    def close(self):
        self.game.close()


def make(cfg, render_mode=None) -> gym.Env:
    from rlkit.envs import scale_reward, stats_and_limit

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = DoomEnv(cfg.scenario, cfg.resolution, cfg.grayscale, tuple(cfg.size), cfg.frame_skip, render_mode)
    env = scale_reward(stats_and_limit(env, cfg.max_episode_steps), cfg.reward_scale)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack) if cfg.frame_stack > 1 else env
