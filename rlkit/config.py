"""Hydra glue: compose `configs/`, apply each env's tuned values, and turn every bad input
into one line that names the problem and the valid choices (exit code 2, no traceback).

We call Hydra's compose API instead of `@hydra.main`, so runs never change the working
directory or write Hydra's `outputs/` folders; run folders are ours (see `train.py`)."""
from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlkit.envs import check_game
from rlkit.errors import RunError, UsageError  # noqa: F401  (re-exported: rlkit.config.UsageError)

GROUPS = ("env", "algo", "model", "runner")
DEVICE = re.compile(r"auto|cpu|cuda|mps|cuda:[0-9]{1,2}")  # ASCII digits: '²'.isdigit() is True


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
    try:
        main(sys.argv[1:])
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
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise UsageError(str(e).strip().splitlines()[0]) from None


def _parse(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Split command-line overrides into group choices and `key=value` settings."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    groups, values = [], {}
    parser = OverridesParser.create()
    for text in overrides:
        try:
            (o,) = parser.parse_overrides([text])
        except HydraException:
            raise UsageError(f"cannot read {text!r}: expected key=value, e.g. env=pong seed=3") from None
        key = o.key_or_group
        if o.package is not None or o.type.name != "CHANGE":
            raise UsageError(f"cannot read {text!r}: only key=value is supported (no +, ~ or @)")
        if key in GROUPS:
            choice = o.value()
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


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(type(value), "a list")


# Keys whose default is null, and the type a value must have when it is not.
NULLABLE = {"run_dir": str, "resume": str, "algo.target_kl": float, "env.max_episode_steps": int}
# Lists: (element type, fewest, most elements, (lowest, highest) element for numbers).
LISTS = {"env.size": (int, 2, 2, (8, 1024)), "model.channels": (int, 1, 8, (1, 1024)),
         "env.selfplay.baselines": (str, 1, 16, None)}


def _is(value: Any, kind: type) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number if kind is float else isinstance(value, int) and not isinstance(value, bool) if kind is int \
        else isinstance(value, kind)


def _check_types(cfg: DictConfig, base: DictConfig, prefix: str = "") -> None:
    """Every value must have the type of its default (ints pass for floats; null defaults take
    their NULLABLE type or null), lists their LISTS element type and length."""
    for key in base:
        ref, value, path = base[key], cfg[key], f"{prefix}{key}"
        if isinstance(ref, DictConfig):
            if not isinstance(value, DictConfig):
                raise UsageError(f"{path} must be a group of keys ({', '.join(map(str, ref.keys()))}), got {value!r}")
            _check_types(value, ref, path + ".")
            continue
        if ref is None:
            kind = NULLABLE.get(path)
            if kind is None and value is not None:
                raise UsageError(f"{path} must be null, got {value!r}")
            if value is not None and not _is(value, kind):
                raise UsageError(f"{path} must be {_type_name(kind())} or null, got {value!r}")
            if kind is float and value is not None:
                cfg[key] = float(value)
            continue
        ok = (isinstance(value, bool) if isinstance(ref, bool)
              else _is(value, float) if isinstance(ref, float)
              else isinstance(value, ListConfig) if isinstance(ref, ListConfig)
              else type(value) is type(ref))
        if not ok:
            raise UsageError(f"{path} must be {_type_name(ref if not isinstance(ref, ListConfig) else [])}, "
                             f"got {value!r}")
        if isinstance(ref, float):
            cfg[key] = float(value)
        if isinstance(ref, ListConfig) and path in LISTS:
            kind, fewest, most, bounds = LISTS[path]
            if not fewest <= len(value) <= most or not all(_is(v, kind) for v in value) or bounds and not all(
                    bounds[0] <= v <= bounds[1] for v in value):
                count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
                within = f" from {bounds[0]} to {bounds[1]}" if bounds else ""
                raise UsageError(f"{path} must be a list of {count} {kind.__name__}s{within}, got {list(value)!r}")


# Every number's range, inclusive, as (lowest, highest); a key in OPEN must be above its lowest.
# Sizes have upper bounds far beyond any agent rlkit trains, so that no value (a typo, or a file
# made to do harm) can ask for a network or a game that cannot fit in memory.
BIG = 10**12
RANGES = {
    "total_steps": (0, BIG), "num_envs": (0, 4096), "seed": (0, 2**31 - 1), "torch_threads": (0, 1024),
    "checkpoint_every": (0, BIG), "keep_checkpoints": (0, 10**6), "log_every": (0, BIG), "video_every": (0, BIG),
    "video_length": (0, 10**7),
    "env.frame_skip": (0, 64), "env.frame_stack": (0, 64), "env.max_episode_steps": (0, 10**9),
    "env.reward_scale": (-1e6, 1e6), "env.noop_max": (0, 10**4), "env.size": (8, 1024),
    "env.repeat_action_probability": (0, 1), "env.board_size": (2, 19), "env.komi": (-1000, 1000),
    "env.selfplay.snapshot_every": (0, BIG), "env.selfplay.max_snapshots": (0, 1000),
    "env.selfplay.latest_prob": (0, 1), "env.selfplay.priority_power": (0, 100), "env.selfplay.score_rate": (0, 1),
    "env.selfplay.eval_games": (0, 10**4), "env.selfplay.eval_opponents": (0, 100), "env.selfplay.elo_k": (0, 1000),
    "env.selfplay.opening_moves": (0, 400), "env.selfplay.opponent_explore": (0, 1),
    "algo.lr": (0, 10), "algo.num_steps": (0, 10**6), "algo.gamma": (0, 1), "algo.gae_lambda": (0, 1),
    "algo.epochs": (0, 10**4), "algo.minibatches": (0, 10**6), "algo.clip_coef": (0, 10), "algo.ent_coef": (0, 100),
    "algo.vf_coef": (0, 100), "algo.max_grad_norm": (0, 1e6), "algo.target_kl": (0, 100),
    "algo.sims": (0, 10**5), "algo.c_puct": (0, 100), "algo.dirichlet_alpha": (0, 100),
    "algo.temperature_moves": (0, 10**4), "algo.replay_size": (0, 10**7), "algo.batch_size": (0, 10**6),
    "algo.replay_ratio": (0, 10**4),
    "model.hidden": (0, 16384), "model.layers": (0, 64), "model.dim": (0, 4096), "model.heads": (0, 64),
    "model.patch": (0, 256), "model.dropout": (0, 0.99),
    "runner.workers": (0, 4096), "runner.cpus_per_worker": (0, 1024), "runner.max_restarts": (0, 10**6),
    "runner.start_timeout": (0, 10**6),
}
OPEN = {"total_steps", "num_envs", "log_every", "video_length", "env.frame_skip", "env.frame_stack",
        "env.max_episode_steps", "env.selfplay.snapshot_every", "env.selfplay.max_snapshots",
        "env.selfplay.score_rate", "algo.lr", "algo.num_steps", "algo.epochs", "algo.minibatches", "algo.clip_coef",
        "algo.max_grad_norm", "algo.target_kl", "algo.sims", "algo.c_puct", "algo.dirichlet_alpha",
        "algo.replay_size", "algo.batch_size", "algo.replay_ratio", "model.hidden", "model.layers", "model.dim",
        "model.heads", "model.patch", "runner.workers", "runner.cpus_per_worker", "runner.start_timeout"}
CHOICES = {"vector": ("sync", "async"), "env.backend": ("auto", "envpool", "gymnasium"),
           "env.game": None}  # env.game: the family's own list (rlkit.envs.check_game)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_ranges(cfg: DictConfig) -> None:
    """Every number within RANGES (and finite), every choice from its list, device by its pattern."""
    for key, (low, high) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if value is None or isinstance(value, ListConfig):
            continue
        if not math.isfinite(value):
            raise UsageError(f"{key} must be a finite number, got {value}")
        if key in OPEN and value <= low or value < low:
            raise UsageError(f"{key} must be {'>' if key in OPEN else '>='} {_num(low)}, got {value}")
        if value > high:
            raise UsageError(f"{key} must be in {'(' if key in OPEN else '['}{_num(low)}, {_num(high)}], got {value}")
    for key, valid in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if valid and value is not None and value not in valid:
            raise UsageError(f"{key} must be one of: {', '.join(valid)}; got {value!r}")
    device = str(cfg.device)
    if not DEVICE.fullmatch(device):
        raise UsageError(f"device must be one of: auto, cpu, cuda, cuda:N, mps; got {device!r}")
    model = cfg.model
    if "heads" in model and model.dim % model.heads:
        raise UsageError(f"model.dim ({model.dim}) must be a multiple of model.heads ({model.heads})")


def _apply_tuned(cfg: DictConfig, explicit: set[str]) -> None:
    """Merge `env.tuned` into the config, except keys the user set on the command line. A block
    named after the chosen algo or model tunes its group's keys, and may also tune top-level keys
    for that choice alone (e.g. `alphazero: {num_envs: 256}`), which win over the plain ones."""
    tuned = cfg.env.pop("tuned", None) or {}
    chosen = []
    for key, value in tuned.items():
        if key in (cfg.algo.name, cfg.model.name):
            chosen.append((key, value))
        elif key in options("algo") + options("model"):
            continue  # tuned values for an algorithm or model not chosen in this run
        elif key in GROUPS or key not in cfg:
            raise UsageError(f"env {cfg.env.name}: unknown tuned key {key!r}; valid: top-level keys, "
                             f"or an algo/model name")
        elif key not in explicit:
            cfg[key] = value
    for key, value in chosen:
        group = "algo" if key == cfg.algo.name else "model"
        for sub, v in value.items():
            top = sub not in cfg[group] and sub in cfg and sub not in GROUPS
            if sub not in cfg[group] and not top:
                raise UsageError(f"env {cfg.env.name}: tuned {key}.{sub} is not a key of {group} {key} "
                                 f"nor a top-level setting; valid: {', '.join(cfg[group].keys())}, "
                                 f"or a top-level key other than {', '.join(GROUPS)}")
            path = sub if top else f"{group}.{sub}"
            if path not in explicit:
                OmegaConf.update(cfg, path, v)


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
    _check_types(cfg, base)
    _check_ranges(cfg)
    OmegaConf.set_struct(cfg, True)
    return cfg


# Keys added after runs were first saved, whose default is not what a run without them did: a run
# saved before the key existed goes on (resume, watch, play, arena) as it was trained.
# Keys rlkit no longer has (where today's config for the same choices lacks them), dropped from
# a saved config: `algo.gamma` of algo=alphazero, whose target is the game's result.
RETIRED = ("algo.gamma",)
LEGACY = {"env.selfplay.opening_moves": 0, "env.selfplay.opponent_explore": 0.0, "env.backend": "gymnasium"}


def _leaves(cfg: DictConfig, prefix: str = ""):
    for key, value in cfg.items():
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _groups(cfg: DictConfig, prefix: str = ""):
    for key, value in cfg.items():
        if isinstance(value, DictConfig):
            yield f"{prefix}{key}"
            yield from _groups(value, f"{prefix}{key}.")


MAX_DEPTH, MAX_ITEMS, MAX_TEXT = 4, 2000, 1000  # what any config rlkit writes stays far within
KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _plain(value: Any, where: str, source: str, depth: int = 0, count: list | None = None) -> None:
    """A loaded config must be plain data of the shape rlkit writes: nested mappings of string keys,
    with numbers, strings, booleans, nulls and flat lists of those as values; no string with `${`
    (an OmegaConf interpolation would run a resolver: read the environment, or fail later)."""
    count = count if count is not None else [0]
    count[0] += 1
    if depth == 0 and not isinstance(value, dict):
        raise UsageError(f"{source}: its config must be a mapping of keys, got {type(value).__name__}")
    if count[0] > MAX_ITEMS or depth > MAX_DEPTH:
        raise UsageError(f"{source}: its config is larger or deeper than any config rlkit writes")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not KEY.fullmatch(key):
                raise UsageError(f"{source}: its config has the key {str(key)[:40]!r}{where and f' in {where}'}, "
                                 f"which is not a name")
            _plain(item, f"{where}.{key}" if where else key, source, depth + 1, count)
    elif isinstance(value, list):
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
            raise UsageError(f"{source}: its config's {where or 'top level'} must be a flat list of values")
        for v in value:
            _plain(v, where, source, depth + 1, count)
    elif isinstance(value, str):
        if "${" in value or len(value) > MAX_TEXT or value == "???":
            raise UsageError(f"{source}: {where} holds {value[:40]!r}: a loaded config is data, and "
                             f"interpolations (${{...}}), missing values (???) and texts over {MAX_TEXT} "
                             f"characters are refused")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise UsageError(f"{source}: {where} holds an integer beyond 64 bits")
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise UsageError(f"{source}: its config holds {type(value).__name__} at {where}, which is not a value")


@functools.lru_cache(maxsize=64)
def _today(choices: tuple[str, ...]) -> str:
    """Today's full config for these group choices, as JSON (composing is slow; loads repeat it)."""
    return json.dumps(OmegaConf.to_container(load_config(list(choices))))


def stored_config(raw: Any, source: str) -> tuple[DictConfig, list[str]]:
    """A config read from a file (a checkpoint, an agent folder, a run folder), validated as data
    before anything uses it: plain values only (`_plain`), group names from `configs/`, no key
    that today's config lacks, types and ranges by the command line's rules, and the game only
    from rlkit's own catalogue (rlkit.envs.check_game: no module, path or program a file names).
    Keys rlkit gained since the file was written are filled with today's defaults for the same
    choices, or the old behaviour from LEGACY; every stored value is kept. Returns the config and
    the filled keys as `key=value`."""
    _plain(raw, "", source)
    choices = []
    for group in GROUPS:
        name = raw[group].get("name") if isinstance(raw.get(group), dict) else None
        if group == "runner" and group not in raw:
            name = "local"  # saved before runners existed: this machine
        if not isinstance(name, str) or name not in options(group):
            said = f"has no {group}.name" if name is None else f"names {group} {str(name)[:40]!r}"
            raise UsageError(f"{source}: its config {said}; a loaded config must name one of: "
                             f"{', '.join(options(group))}")
        choices.append(f"{group}={name}")
    current = OmegaConf.create(json.loads(_today(tuple(choices))))
    stored = OmegaConf.create(raw)
    for key in RETIRED:  # removed since the file was written, where today's config lacks them
        group, _, name = key.rpartition(".")
        if OmegaConf.select(current, key) is None and isinstance(OmegaConf.select(stored, group), DictConfig):
            OmegaConf.select(stored, group).pop(name, None)
    leaves, groups = set(_leaves(current)), set(_groups(current))
    unknown = [k for k in _leaves(stored) if k not in leaves] + [k for k in _groups(stored) if k not in groups]
    if unknown:
        kind = "a group" if unknown[0] in groups else "a value" if unknown[0] in leaves else None
        raise UsageError(f"{source}: its config has the key {unknown[0]!r}, which rlkit does not know"
                         + (f" as a {'value' if kind == 'a group' else 'group'} (it is {kind})" if kind else ""))
    have = set(_leaves(stored))
    filled = [k for k in _leaves(current) if k not in have]
    if current.env.family != stored.env.get("family", current.env.family):
        raise UsageError(f"{source}: env {stored.env.name} is a {current.env.family} game, not "
                         f"{str(stored.env.family)[:40]!r}")
    merged = OmegaConf.merge(current, stored)
    for key in filled:
        if key in LEGACY:
            OmegaConf.update(merged, key, LEGACY[key])
    try:
        _check_types(merged, current)
        _check_ranges(merged)
        check_game(merged.env)
    except UsageError as e:
        raise UsageError(f"{source}: {e}") from None
    OmegaConf.set_struct(merged, True)
    return merged, [f"{k}={OmegaConf.select(merged, k)}" for k in filled]


SEED = (0, 2**31 - 1)
RENAMED = {"search": "lookahead"}  # command options' old spellings, refused with their new name


def command_options(argv: list[str], defaults: dict[str, Any], choices: dict[str, tuple] | None = None,
                    passthrough: bool = False,
                    ranges: dict[str, tuple] | None = None) -> tuple[dict[str, Any], list[str]]:
    """A command's own `key=value` options (watch, compare, bench), typed by their defaults:
    bool, int, float, str, list, or None (any value; a number or null if the key has a range).
    `ranges`: {key: (lowest, highest)}, inclusive, for numbers. With `passthrough`, other
    arguments are returned as training overrides for `load_config`; without, they are an error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    opts, rest, choices = dict(defaults), [], choices or {}
    parser = OverridesParser.create()
    for text in argv:
        key = text.partition("=")[0]
        if key in RENAMED and key not in defaults:
            raise UsageError(f"{key}= is now called {RENAMED[key]}=: {RENAMED[key]}={text.partition('=')[2]}")
        if key not in defaults:
            if passthrough:
                rest.append(text)
                continue
            raise UsageError(f"unknown option {key!r}; valid: {', '.join(defaults)}")
        try:
            (o,) = parser.parse_overrides([text])
            value = o.value()
        except HydraException:
            raise UsageError(f"cannot read {text!r}: expected {key}=value") from None
        opts[key] = _typed(key, value, defaults[key])
        if key in choices and opts[key] not in choices[key]:
            raise UsageError(f"{key} must be one of: {', '.join(map(str, choices[key]))}; got {value!r}")
        if key in (ranges or {}) and opts[key] is not None:
            low, high = ranges[key]
            if not _is(opts[key], float) or not math.isfinite(opts[key]) or not low <= opts[key] <= high:
                raise UsageError(f"{key} must be a number from {_num(low)} to {_num(high)}, got {value!r}")
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
            or _is(ref, int) and _is(value, int):
        return float(value) if isinstance(ref, float) else value
    raise UsageError(f"{key} must be {_type_name(ref)}, got {value!r}")


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
