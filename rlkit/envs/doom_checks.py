"""What a config or a loaded file may say about a Doom game, checked before any game starts: a
scenario by name (from vizdoom's and `envs/doom`'s), a .cfg that starts no program and names no
file outside its folder, a screen resolution, buttons and game variables by ViZDoom's names, and
the `VARIABLE:number` terms of `env.shaping` and `env.variables`."""
from __future__ import annotations

import math
import re
from pathlib import Path

from rlkit.errors import UsageError

ENVS_DIR = Path(__file__).resolve().parents[2] / "envs" / "doom"


# ViZDoom's .cfg keys (lower case, underscores dropped, as ViZDoom reads them) that start a
# program, pass arguments to the engine or give it an engine config (whose AutoExec section runs
# console scripts from anywhere), and those that name data files for it to read.
PROGRAM_KEYS = ("vizdoompath", "gameargs", "doomconfigpath")
FILE_KEYS = ("doomgamepath", "doomscenariopath")
NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
SHAPING = re.compile(r"([A-Z0-9_]{1,40}):(-?[0-9]+(?:\.[0-9]*)?(?:e-?[0-9]+)?)")


def shipped_folder() -> Path:
    import vizdoom

    return Path(vizdoom.scenarios_path)


def scenario_names() -> list[str]:
    return sorted({p.stem for d in (shipped_folder(), ENVS_DIR) if d.is_dir() for p in d.glob("*.cfg")
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
