"""Configs read from files (a checkpoint's header, an agent folder, a run folder's config.yaml),
taken as data: `stored_config` is the one way in, and it applies the command line's rules
(rlkit.schema) plus those for files."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlkit.config import GROUPS, load_config, options
from rlkit.envs import check_game
from rlkit.errors import UsageError
from rlkit.peers import PEERS
from rlkit.schema import check_ranges, check_types, groups, leaves

# Keys rlkit no longer has (where today's config for the same choices lacks them), dropped from
# a saved config: `algo.gamma` of algo=alphazero, whose target is the game's result.
RETIRED = ("algo.gamma",)
LEGACY = {"env.selfplay.opening_moves": 0, "env.selfplay.opponent_explore": 0.0, "env.backend": "gymnasium"}


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
    known, known_groups = set(leaves(current)), set(groups(current))
    unknown = [k for k in leaves(stored) if k not in known] + [k for k in groups(stored) if k not in known_groups]
    if unknown:
        kind = "a group" if unknown[0] in known_groups else "a value" if unknown[0] in known else None
        raise UsageError(f"{source}: its config has the key {unknown[0]!r}, which rlkit does not know"
                         + (f" as a {'value' if kind == 'a group' else 'group'} (it is {kind})" if kind else ""))
    have = set(leaves(stored))
    filled = [k for k in leaves(current) if k not in have]
    if current.env.family != stored.env.get("family", current.env.family):
        raise UsageError(f"{source}: env {stored.env.name} is a {current.env.family} game, not "
                         f"{str(stored.env.family)[:40]!r}")
    merged = OmegaConf.merge(current, stored)
    for key in filled:
        if key in LEGACY:
            OmegaConf.update(merged, key, LEGACY[key])
    try:
        check_types(merged, current)
        check_ranges(merged)
        check_game(merged.env)
    except UsageError as e:
        raise UsageError(f"{source}: {e}") from None
    OmegaConf.set_struct(merged, True)
    return merged, [f"{k}={OmegaConf.select(merged, k)}" for k in filled]


def run_config(run_dir: Path):
    """A run folder's config.yaml read as data (plain YAML, validated by `stored_config`:
    no interpolation is ever resolved), and the peer that wrote it, if one did; (None, None) without one."""
    import yaml

    file = run_dir / "config.yaml"
    if not file.is_file():
        return None, None
    if file.stat().st_size > 1 << 20:
        raise UsageError(f"{file} is larger than any config rlkit writes")
    try:
        raw = yaml.safe_load(file.read_text(errors="replace"))
    except (yaml.YAMLError, RecursionError, ValueError) as e:  # deep nesting, a 5,000-digit integer
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UsageError(f"{file} is not valid YAML ({why})") from None
    peer = raw.pop("peer", None) if isinstance(raw, dict) else None
    if peer is not None and peer not in PEERS:
        raise UsageError(f"{file}: peer {str(peer)[:40]!r} is not one of: {', '.join(PEERS)}")
    return stored_config(raw, str(file))[0], peer
