"""ViZDoom as a Gymnasium env, driven through DoomGame directly (no window, low resolution,
frame skip inside the engine). Observations are uint8 [C, H, W]: 1 gray or 3 RGB channels, then
one constant channel per game variable of `env.variables`."""
from __future__ import annotations

import itertools
import math
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
# Buttons a player never presses together: each pair is one choice of three (neither, one, the other)
# in `env.actions=combos`. Every other button is a choice of two; a delta button (an angle or a
# speed per tic) one of 1 + 2 * len(env.deltas).
EXCLUSIVE = (("MOVE_FORWARD", "MOVE_BACKWARD"), ("MOVE_LEFT", "MOVE_RIGHT"), ("TURN_LEFT", "TURN_RIGHT"),
             ("LOOK_UP", "LOOK_DOWN"), ("SELECT_NEXT_WEAPON", "SELECT_PREV_WEAPON"))
MAX_COMBOS = 512
SHAPING = re.compile(r"([A-Z0-9_]{1,40}):(-?[0-9]+(?:\.[0-9]*)?(?:e-?[0-9]+)?)")


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


def check_names(kind: str, names) -> None:
    """Button or game-variable names (`env.buttons`, `env.shaping`) from ViZDoom's own lists."""
    import vizdoom as vzd

    valid = [n for n in getattr(vzd, kind).__members__]
    bad = [str(n)[:40] for n in names or () if n not in valid]
    if bad:
        raise UsageError(f"unknown doom {kind.lower().replace('gamevariable', 'game variable')} {bad[0]!r}; "
                         f"choose from: {', '.join(valid)}")


def parse_shaping(terms) -> list[tuple[str, float]]:
    """`env.shaping`: ["VARIABLE:weight", ...], a game variable's change times its weight."""
    return _variable_terms("env.shaping", terms, "VARIABLE:weight, e.g. HEALTH:0.01")


def parse_variables(terms) -> list[tuple[str, float]]:
    """`env.variables`: ["VARIABLE:full", ...], a game variable seen as a channel, `full` its white."""
    pairs = _variable_terms("env.variables", terms, "VARIABLE:full, e.g. HEALTH:100")
    bad = [f"{name}:{full:g}" for name, full in pairs if full <= 0]
    if bad:
        raise UsageError(f"env.variables term {bad[0]!r}: the value drawn as full white must be > 0")
    return pairs


def _variable_terms(key: str, terms, form: str) -> list[tuple[str, float]]:
    pairs = []
    for term in terms or ():
        match = SHAPING.fullmatch(str(term))
        if not match or not math.isfinite(float(match.group(2))):  # 1e400 reads as infinity
            raise UsageError(f"{key} term {str(term)[:40]!r} must be {form}, with a finite number")
        pairs.append((match.group(1), float(match.group(2))))
    check_names("GameVariable", [name for name, _ in pairs])
    return pairs


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
