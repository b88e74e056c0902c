"""Hydra glue: compose `configs/`, apply each env's tuned values, and turn every bad input
into one line that names the problem and the valid choices (exit code 2, no traceback).

We call Hydra's compose API instead of `@hydra.main`, so runs never change the working
directory or write Hydra's `outputs/` folders; run folders are ours (see `train.py`)."""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlkit.errors import RunError, UsageError  # noqa: F401  (re-exported: rlkit.config.UsageError)
from rlkit.schema import SCHEMA, check_ranges, check_types, describe, is_a, leaves, number, type_name

GROUPS = ("env", "algo", "model", "runner")
PARSER = OverridesParser.create()  # Hydra's override grammar, for every command's arguments


def config_dir() -> Path:
    """`$RLKIT_CONFIGS`, else the repository's `configs/` (editable install), else ./configs."""
    for candidate in (os.environ.get("RLKIT_CONFIGS"),
                      Path(__file__).resolve().parent.parent / "configs",
                      Path.cwd() / "configs"):
        if candidate and (Path(candidate) / "config.yaml").is_file():
            return Path(candidate)
    raise UsageError("cannot find configs/config.yaml; run from the rlkit checkout or set RLKIT_CONFIGS")


def cli(main: Callable[[list[str]], Any]) -> None:
    """Run a command's `main(argv)`; bad input becomes `error: ...` and exit code 2, a run that had
    to stop exit code 1, and a file or folder the system refused (a path given or named by a
    command, a full disk) one line naming it, exit code 2."""
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:  # the command's own text: `help_text(argv)`, else its docstring
        module = sys.modules[main.__module__]
        text = getattr(module, "help_text", None)
        try:
            print(text([a for a in argv if a not in ("--help", "-h")]) if text else (module.__doc__ or "").strip())
        except UsageError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return
    try:
        main(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _compose(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise UsageError(str(e).strip().splitlines()[0]) from None


def read(text: str) -> tuple[str, Any]:
    """One `key=value` argument, as every command reads it (Hydra's override grammar: `seed=3`,
    `algos=[ppo,reinforce]`, `env.size=[64,64]`): its key and its value."""
    try:
        (o,) = PARSER.parse_overrides([text])
        value = o.value()
    except HydraException:
        raise UsageError(f"cannot read {text!r}: expected key=value, e.g. env=pong seed=3") from None
    if o.package is not None or o.type.name != "CHANGE":
        raise UsageError(f"cannot read {text!r}: only key=value is supported (no +, ~ or @)")
    return o.key_or_group, value


def _parse(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Split command-line overrides into group choices and `key=value` settings."""
    groups, values = [], {}
    for text in overrides:
        key, choice = read(text)
        if key in GROUPS:
            if not isinstance(choice, str) or choice not in options(key):
                raise UsageError(f"unknown {key} {choice!r}; choose from: {', '.join(options(key))}")
            groups.append(f"{key}={choice}")
        else:
            values[key] = text
    return groups, values


def _check_key(base: DictConfig, key: str) -> None:
    node: Any = base
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            where = ".".join(parts[:i])
            valid = ", ".join(sorted(str(k) for k in node.keys())) if isinstance(node, DictConfig) else "none"
            scope = f" in {where}" if where else ""
            raise UsageError(f"unknown key {key!r}; valid keys{scope}: {valid}")
        node = node[part]


def _apply_tuned(cfg: DictConfig, explicit: set[str]) -> None:
    """An env file's own settings (`tuned:`), as key=value overrides in blocks: `all`, then the chosen
    model's, then the chosen algo's, then the chosen memory core's (`+lstm`, `+transformer`), each
    later one winning; a key set on the command line keeps its value."""
    tuned = cfg.env.pop("tuned", None) or {}
    cores = [f"+{c}" for c in SCHEMA["model.core"].choices if c != "none"]
    blocks = ("all", *options("model"), *options("algo"), *cores)
    for block in tuned:
        if block not in blocks:
            raise UsageError(f"env {cfg.env.name}: unknown tuned block {block!r}; valid: {', '.join(blocks)}")
    for block in ("all", cfg.model.name, cfg.algo.name, "+core"):
        block = f"+{cfg.model.core}" if block == "+core" else block  # as the blocks before left it
        for path, value in (tuned.get(block) or {}).items():
            if path.split(".")[0] in GROUPS and "." not in path or path not in set(leaves(cfg)):
                raise UsageError(f"env {cfg.env.name}: tuned {block}: {path!r} is not a key; valid: the keys "
                                 f"python -m rlkit.train --help lists")
            if path not in explicit:
                OmegaConf.update(cfg, path, value)


def help_text(argv: list[str]) -> str:
    """Every key of the config these group choices compose (e.g. env=pong algo=reinforce), with its
    value, its range and its meaning (rlkit.schema)."""
    chosen, _ = _parse([a for a in argv if a.partition("=")[0] in GROUPS])
    cfg = load_config(chosen)
    names = " ".join(f"{g}={cfg[g].name}" for g in GROUPS)
    return (f"Every key for {names} (choose others with env=, algo=, model=, runner=; override any key with "
            f"key=value):\n{describe(cfg)}")


def run_label(cfg) -> str:
    return cfg.env.game.lower() if cfg.env.family == "atari" and cfg.env.name == "atari" else cfg.env.name


def default_run_dir(cfg, algo: str) -> Path:
    """runs/{env}__{algo}__{seed}__{time}, or `run_dir` when given."""
    name = f"{run_label(cfg)}__{algo}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.run_dir) if cfg.run_dir else Path(cfg.runs_root) / name


def load_config(overrides: list[str]) -> DictConfig:
    """Compose the config for these command-line overrides, validated before any work starts."""
    groups, values = _parse(overrides)
    base = _compose(groups)
    for key in values:
        _check_key(base, key)
    cfg = _compose(groups + list(values.values()))
    OmegaConf.set_struct(cfg, False)
    _apply_tuned(cfg, set(values))
    OmegaConf.set_struct(base, False)
    base.env.pop("tuned", None)
    check_types(cfg, base)
    check_ranges(cfg)
    OmegaConf.set_struct(cfg, True)
    return cfg


# Keys added after runs were first saved, whose default is not what a run without them did: a run
# saved before the key existed goes on (resume, watch, play, arena) as it was trained.
SEED = (0, 2**31 - 1)
RENAMED = {"search": "lookahead"}  # command options' old spellings, refused with their new name


def command_options(argv: list[str], defaults: dict[str, Any], choices: dict[str, tuple] | None = None,
                    passthrough: bool = False,
                    ranges: dict[str, tuple] | None = None) -> tuple[dict[str, Any], list[str]]:
    """A command's own `key=value` options (watch, compare, bench), typed by their defaults:
    bool, int, float, str, list, or None (any value; a number or null if the key has a range).
    `ranges`: {key: (lowest, highest)}, inclusive, for numbers. With `passthrough`, other
    arguments are returned as training overrides for `load_config`; without, they are an error."""
    opts, rest, choices = dict(defaults), [], choices or {}
    for text in argv:
        key = text.partition("=")[0]
        if key in RENAMED and key not in defaults:
            raise UsageError(f"{key}= is now called {RENAMED[key]}=: {RENAMED[key]}={text.partition('=')[2]}")
        if key not in defaults:
            if passthrough:
                rest.append(text)
                continue
            raise UsageError(f"unknown option {key!r}; valid: {', '.join(defaults)}")
        _, value = read(text)
        opts[key] = _typed(key, value, defaults[key])
        if key in choices and opts[key] not in choices[key]:
            raise UsageError(f"{key} must be one of: {', '.join(map(str, choices[key]))}; got {value!r}")
        if key in (ranges or {}) and opts[key] is not None:
            low, high = ranges[key]
            if not is_a(opts[key], float) or not math.isfinite(opts[key]) or not low <= opts[key] <= high:
                raise UsageError(f"{key} must be a number from {number(low)} to {number(high)}, got {value!r}")
    return opts, rest


def _typed(key: str, value: Any, ref: Any) -> Any:
    """`value` as the type of the default `ref`; one line naming the expected type if it is not."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ref is None:
        return value
    if isinstance(ref, str) and (isinstance(value, str) or number):
        return str(value)
    if isinstance(ref, list):
        return value if isinstance(value, list) else [value]  # `seeds=3`: a one-element list
    if isinstance(ref, float) and number or isinstance(ref, bool) and isinstance(value, bool) \
            or is_a(ref, int) and is_a(value, int):
        return float(value) if isinstance(ref, float) else value
    raise UsageError(f"{key} must be {type_name(ref)}, got {value!r}")


def command_args(argv: list[str], defaults: dict[str, Any],
                 ranges: dict[str, tuple] | None = None) -> tuple[dict[str, Any], list[str]]:
    """`key=value` arguments of a board-game command (play, arena), typed by `command_options`;
    `env.*` overrides are passed through for `load_config`. Returns (values, env overrides)."""
    values, rest = command_options(argv, defaults, passthrough=True, ranges=ranges)
    bad = [a for a in rest if not a.startswith("env.")]
    if bad:
        raise UsageError(f"unknown key {bad[0].partition('=')[0]!r}; valid keys: {', '.join(defaults)}, env.*")
    return values, rest


def board_env(name: str, overrides: list[str]) -> DictConfig:
    """The env config of a board game, by name (`env=...`)."""
    def is_board(n: str) -> bool:
        c = OmegaConf.load(config_dir() / "env" / f"{n}.yaml")
        return c.get("family") == "board" or "board" in (c.get("defaults") or [])

    boards = [n for n in options("env") if is_board(n)]
    if name not in boards:
        raise UsageError(f"env={name!r} is not a board game; choose from: {', '.join(boards)}")
    return load_config([f"env={name}", *overrides]).env
