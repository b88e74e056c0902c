"""ViZDoom as a Gymnasium env, driven through DoomGame directly (no window, low resolution,
frame skip inside the engine). Observations are uint8 [C, H, W] (C = 1 gray or 3 RGB)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from rlkit.envs.wrappers import scale_reward, stats_and_limit
from rlkit.errors import UsageError

ENVS_DIR = Path(__file__).resolve().parents[2] / "envs" / "doom"


# ViZDoom's .cfg keys (lower case, underscores dropped, as ViZDoom reads them) that start a
# program, pass arguments to the engine or give it an engine config (whose AutoExec section runs
# console scripts from anywhere), and those that name data files for it to read.
PROGRAM_KEYS = ("vizdoompath", "gameargs", "doomconfigpath")
FILE_KEYS = ("doomgamepath", "doomscenariopath")
NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def _shipped() -> Path:
    import vizdoom

    return Path(vizdoom.scenarios_path)


def scenario_names() -> list[str]:
    return sorted({p.stem for d in (_shipped(), ENVS_DIR) if d.is_dir() for p in d.glob("*.cfg")
                   if NAME.fullmatch(p.stem)})


def check_scenario_name(scenario: str) -> None:
    """A scenario from a loaded file: a name shipped with vizdoom or in `envs/doom/`, never a path."""
    if not NAME.fullmatch(scenario) or scenario not in scenario_names():
        raise UsageError(f"doom scenario {scenario[:60]!r} in a loaded file is not a scenario name (a file may not "
                         f"name a .cfg by path); choose from: {', '.join(scenario_names())}")


def check_resolution(resolution: str) -> None:
    import vizdoom as vzd

    valid = [r for r in dir(vzd.ScreenResolution) if r.startswith("RES_")]
    if resolution not in valid:
        raise UsageError(f"unknown doom resolution {resolution[:40]!r}; choose from: {', '.join(valid)}")


def check_cfg(path: Path) -> None:
    """A .cfg that is not vizdoom's own may not start a program (`vizdoom_path`), pass arguments to
    the engine (`game_args`), give it an engine config (`doom_config_path`), or name a file outside
    its own folder (absolute, `../` or a symlink out, for the WAD and IWAD it may name). Lines are
    read as ViZDoom reads them (split at newlines only); a control character other than a tab or
    a line end is refused outright, as no scenario needs one."""
    real = path.resolve()
    folder = real.parent
    try:
        # As bytes: read_text would turn a lone \r into a line end, which ViZDoom does not.
        text = real.read_bytes().decode("utf-8", errors="replace") if real.stat().st_size <= 1 << 20 else None
    except OSError as e:
        raise UsageError(f"cannot read doom scenario {path}: {e.strerror}") from None
    if text is None:
        raise UsageError(f"doom scenario {path} is larger than any scenario file (1 MiB)")
    odd = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if odd:
        raise UsageError(f"doom scenario {path} line {text.count(chr(10), 0, odd.start()) + 1} holds the control "
                         f"character {odd.group()!r}; refused")
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r")
        if not line or line.startswith("#") or "=" not in line:
            continue
        raw_key, _, value = line.partition("=")
        key = re.sub(r"[^a-z0-9]", "", raw_key.lower())
        value = value.strip()
        if key in PROGRAM_KEYS:
            raise UsageError(f"doom scenario {path} line {number} sets {raw_key.strip().rstrip('+').strip()!r}, "
                             f"which makes ViZDoom start a program, run an engine config or pass engine "
                             f"arguments; refused")
        if key in FILE_KEYS and value:
            target = (folder / value).resolve()
            if Path(value).is_absolute() or ".." in Path(value).parts or folder not in target.parents:
                raise UsageError(f"doom scenario {path} line {number} names {value[:60]!r}, outside its own folder; "
                                 f"a scenario's files must sit beside its .cfg")


def scenario_path(scenario: str) -> Path:
    """A scenario name shipped with vizdoom or with rlkit (`envs/doom/`), or a path to a .cfg
    (given on the command line; checked by `check_cfg` unless it is vizdoom's own)."""
    shipped = _shipped()
    for candidate in (Path(scenario), ENVS_DIR / f"{scenario}.cfg", shipped / f"{scenario}.cfg"):
        if candidate.suffix == ".cfg" and candidate.is_file():
            real = candidate.resolve()  # ViZDoom reads the names in a .cfg relative to where it lies
            if real.parent != shipped.resolve():
                check_cfg(real)
            return real
    raise UsageError(f"unknown doom scenario {scenario[:60]!r}; choose from: {', '.join(scenario_names())}, "
                     f"or a path to a .cfg")


class DoomEnv(gym.Env):
    """One ViZDoom game. Actions: one button pressed at a time (Discrete(len(buttons))).
    The scenario's timeout ends an episode as a truncation (the agent cannot see the clock)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 35}

    def __init__(self, scenario="basic", resolution="RES_160X120", grayscale=True, size=(64, 64),
                 frame_skip=4, render_mode=None):
        import vizdoom as vzd

        self.game = vzd.DoomGame()
        check_resolution(resolution)
        self.game.load_config(str(scenario_path(scenario)))
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
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = DoomEnv(cfg.scenario, cfg.resolution, cfg.grayscale, tuple(cfg.size), cfg.frame_skip, render_mode)
    env = scale_reward(stats_and_limit(env, cfg.max_episode_steps), cfg.reward_scale)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack) if cfg.frame_stack > 1 else env
