"""ViZDoom as a Gymnasium env, driven through DoomGame directly (no window, low resolution,
frame skip inside the engine). Observations are uint8 [C, H, W]: 1 gray or 3 RGB channels, then
one constant channel per game variable of `env.variables`."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from rlkit.envs.doom_checks import (
    ENVS_DIR,
    check_cfg,
    check_names,
    check_resolution,
    parse_shaping,
    parse_variables,
    scenario_names,
    shipped_folder,
)
from rlkit.envs.wrappers import scale_reward, stats_and_limit
from rlkit.errors import UsageError

# Buttons a player never presses together: each pair is one choice of three (neither, one, the other)
# in `env.actions=combos`. Every other button is a choice of two; a delta button (an angle or a
# speed per tic) one of 1 + 2 * len(env.deltas).
EXCLUSIVE = (("MOVE_FORWARD", "MOVE_BACKWARD"), ("MOVE_LEFT", "MOVE_RIGHT"), ("TURN_LEFT", "TURN_RIGHT"),
             ("LOOK_UP", "LOOK_DOWN"), ("SELECT_NEXT_WEAPON", "SELECT_PREV_WEAPON"))
MAX_COMBOS = 512


def action_table(buttons: list[str], mode: str, deltas) -> tuple[list[list[float]], list[str]]:
    """The value of every button for each action, and each action's name. `buttons`: one button
    per action (a delta button at its largest `deltas` value); `combos`: every combination of one
    choice per group of buttons (`EXCLUSIVE` pairs, each delta button, each other button), the
    first being no button at all."""
    if mode == "buttons":
        top = max(deltas or [1])
        rows = [[(top if b.endswith("_DELTA") else 1.0) * (i == j) for j, b in enumerate(buttons)]
                for i in range(len(buttons))]
        return rows, list(buttons)
    groups, placed = [], set()
    for i, button in enumerate(buttons):
        if i in placed:
            continue
        pair = next((p for p in EXCLUSIVE if button in p), (button,))
        members = [j for j, b in enumerate(buttons) if b in pair]
        placed.update(members)
        if button.endswith("_DELTA"):
            choices = [(f"{button}{v:+g}", i, float(v)) for d in deltas for v in (-d, d)]
        else:
            choices = [(buttons[j], j, 1.0) for j in members]
        groups.append([None, *choices])
    count = int(np.prod([len(g) for g in groups]))
    if count > MAX_COMBOS:
        raise UsageError(f"env.actions=combos: {len(buttons)} buttons make {count} combinations (at most "
                         f"{MAX_COMBOS}); pick fewer with env.buttons=[...] or use env.actions=buttons")
    rows, names = [], []
    for combo in itertools.product(*groups):
        row = [0.0] * len(buttons)
        for choice in filter(None, combo):
            row[choice[1]] = choice[2]
        rows.append(row)
        names.append("+".join(c[0] for c in combo if c) or "NOOP")
    return rows, names


def scenario_path(scenario: str) -> Path:
    """A scenario name shipped with vizdoom or with rlkit (`envs/doom/`), or a path to a .cfg
    (given on the command line; checked by `check_cfg` unless it is vizdoom's own)."""
    shipped = shipped_folder()
    for candidate in (Path(scenario), ENVS_DIR / f"{scenario}.cfg", shipped / f"{scenario}.cfg"):
        if candidate.suffix == ".cfg" and candidate.is_file():
            real = candidate.resolve()  # ViZDoom reads the names in a .cfg relative to where it lies
            if real.parent != shipped.resolve():
                check_cfg(real)
            return real
    raise UsageError(f"unknown doom scenario {scenario[:60]!r}; choose from: {', '.join(scenario_names())}, "
                     f"or a path to a .cfg")


class DoomEnv(gym.Env):
    """One ViZDoom game. Actions: the rows of `action_table` (`actions`: buttons or combos) over
    the scenario's buttons, or `buttons` in their place. `variables` [(name, full), ...]: each game
    variable as one more channel, all of it the variable's value / full in [0, 255] (the way
    AlphaZero's input shows the side to move), so any encoder reads health or ammo beside the
    frame. The scenario's timeout ends an episode as a truncation (the agent cannot see the clock)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 35}

    def __init__(self, scenario="basic", resolution="RES_160X120", grayscale=True, size=(64, 64),
                 frame_skip=4, render_mode=None, actions="buttons", buttons=None, deltas=(5,), variables=()):
        import vizdoom as vzd

        self.game = vzd.DoomGame()
        check_resolution(resolution)
        self.game.load_config(str(scenario_path(scenario)))
        if buttons:
            check_names("Button", buttons)
            self.game.set_available_buttons([getattr(vzd.Button, b) for b in buttons])
        self.game.set_screen_resolution(getattr(vzd.ScreenResolution, resolution))
        self.grayscale = grayscale
        self.game.set_screen_format(vzd.ScreenFormat.GRAY8 if grayscale else vzd.ScreenFormat.RGB24)
        self.game.set_window_visible(render_mode == "human")
        self.game.set_sound_enabled(False)
        self.game.set_mode(vzd.Mode.PLAYER)
        self.game.init()
        self.frame_skip = int(frame_skip)
        self.size = (int(size[0]), int(size[1]))
        self.render_mode = render_mode
        self.buttons = [b.name for b in self.game.get_available_buttons()]
        self._actions, self.action_names = action_table(self.buttons, actions, list(deltas))
        self.variables = [(getattr(vzd.GameVariable, name), float(full)) for name, full in variables]
        channels = (1 if grayscale else 3) + len(self.variables)
        self.observation_space = gym.spaces.Box(0, 255, (channels, *self.size), np.uint8)
        self.action_space = gym.spaces.Discrete(len(self._actions))
        self._last = np.zeros(self.observation_space.shape, np.uint8)
        self._screen = None

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is None:  # episode over: ViZDoom gives no screen; repeat the last one
            return self._last.copy()
        screen = state.screen_buffer  # [H, W] gray or [H, W, 3] RGB
        self._screen = screen
        frame = cv2.resize(screen, self.size[::-1], interpolation=cv2.INTER_AREA)
        frame = frame[None] if self.grayscale else frame.transpose(2, 0, 1)
        if self.variables:
            levels = [np.clip(self.game.get_game_variable(v) / full, 0, 1) * 255 for v, full in self.variables]
            planes = np.broadcast_to(np.round(levels).astype(np.uint8)[:, None, None], (len(levels), *self.size))
            frame = np.concatenate([frame, planes])
        self._last = np.ascontiguousarray(frame)
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


class Shaping(gym.Wrapper):
    """Adds each named game variable's change over a step, times its weight, to the reward. It
    sits above the episode statistics, so `episode/return` stays the scenario's own score."""

    def __init__(self, env: gym.Env, terms: list[tuple[str, float]]):
        import vizdoom as vzd

        super().__init__(env)
        self.terms = [(getattr(vzd.GameVariable, name), weight) for name, weight in terms]
        self._last = None

    def _read(self) -> np.ndarray:
        game = self.env.unwrapped.game
        return np.array([game.get_game_variable(v) for v, _ in self.terms])

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        self._last = self._read()
        return result

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        now = self._read()
        reward += float(sum(w * d for (_, w), d in zip(self.terms, now - self._last)))
        self._last = now
        return obs, reward, terminated, truncated, info


def make(cfg, render_mode=None) -> gym.Env:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = DoomEnv(cfg.scenario, cfg.resolution, cfg.grayscale, tuple(cfg.size), cfg.frame_skip, render_mode,
                  cfg.get("actions", "buttons"), cfg.get("buttons"), cfg.get("deltas", [5]),
                  parse_variables(cfg.get("variables")))
    env = stats_and_limit(env, cfg.max_episode_steps)
    terms = parse_shaping(cfg.get("shaping"))
    env = scale_reward(Shaping(env, terms) if terms else env, cfg.reward_scale)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack) if cfg.frame_stack > 1 else env
