"""Self-describing checkpoints in one safetensors file: weights, optimizer state and RNG
states as tensors; the resolved config, spaces and step counters as JSON in the header. A
self-play run adds its opponent pool (snapshot weights as `pool.*` tensors, the rest as JSON),
and a collector with state of its own (algo=alphazero's window of positions) adds it the same
way, as `collector.*`.

A checkpoint is data. Loading parses tensors and JSON only, so it can never run code; the
header's SHA-256 digest of every tensor and every other header entry is checked (damage of any
byte is refused), non-finite weights are refused, and the config and spaces pass the same
validation as the command line plus the rules for files (rlkit.stored.stored_config): no
interpolation, bounded sizes, and games only from rlkit's own catalogue."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rlkit.errors import RunError, UsageError
from rlkit.stored import stored_config

FORMAT = "rlkit-checkpoint-2"  # -2 added the digest; -1 files (no digest) still load
FORMATS = ("rlkit-checkpoint-1", FORMAT)
STEP_FILE = re.compile(r"step_(\d{1,15})\.safetensors")  # the only periodic names written (and read)
MAX_OBS_DIMS, MAX_OBS_SIZE, MAX_OBS_VALUES, MAX_ACTIONS = 4, 4096, 1 << 24, 65536
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.bool)  # what checkpoints hold (weights, optimizer, RNG, windows)
OBS_DTYPES = ("uint8", "int8", "bool", "float32", "float64", "int32", "int64")


PARTS = ("pool", "collector")  # optional states a run may add, each {"tensors": {name: tensor}, "meta": JSON-able}


def digest(tensors: dict, meta: dict) -> str:
    """SHA-256 over every header entry but the digest itself and every tensor's name, dtype,
    shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(meta):
        if key != "digest":
            h.update(f"{key}\0{meta[key]}\0".encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        if t.numel():  # an empty tensor (a window with no finished game yet) has no bytes, and no byte view
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def write(path, tensors: dict, meta: dict) -> Path:
    """Write atomically (a temporary file, fsync, then rename over the target), with the format
    and digest in the header. A full disk or a read-only folder is a one-line RunError, and the
    file that was there before is untouched."""
    meta = {**meta, "format": FORMAT}
    meta["digest"] = digest(tensors, meta)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        why = e.strerror or os.strerror(e.errno or errno.EIO)
        raise RunError(f"cannot write {path}: {why}; the checkpoints written before it are intact") from None
    return path


def save(path, policy, optimizer, cfg, spaces: dict, counters: dict, pool: dict | None = None,
         collector: dict | None = None) -> Path:
    """Write a checkpoint (atomically, see `write`). `pool` (see rlkit.pool) and `collector`
    (e.g. rlkit.algos.alphazero): {"tensors": {name: tensor}, "meta": JSON-able}."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
    parts = {name: part for name, part in (("pool", pool), ("collector", collector)) if part is not None}
    for name, part in parts.items():
        tensors.update({f"{name}.{k}": torch.as_tensor(v).contiguous().cpu() for k, v in part["tensors"].items()})
    opt = optimizer.state_dict()
    for i, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optim.{i}.{name}"] = torch.as_tensor(value).contiguous().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    np_state = np.random.get_state()
    meta = {
        "config": json.dumps(OmegaConf.to_container(cfg, resolve=True)),
        "spaces": json.dumps(spaces),
        "counters": json.dumps(counters),
        "optim_groups": json.dumps(opt["param_groups"]),
        "rng": json.dumps({"python": _jsonable(random.getstate()),
                           "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}),
    }
    for name, part in parts.items():
        meta[name] = json.dumps(part["meta"])
    return write(path, tensors, meta)


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


COUNTERS = {"step", "update", "seconds"}  # agent steps, updates, seconds trained (the minutes= budget)


def load(path, device="cpu") -> dict:
    """Read a checkpoint: {'config', 'filled', 'spaces', 'counters', 'model', 'optim', 'rng', 'pool',
    'collector'} ('pool' is None unless the run was self-play, 'collector' unless its collector
    saved state; 'filled' lists the keys rlkit gained since the file was written, as `key=value`).
    Anything that is not an intact, sane rlkit checkpoint gets a one-line UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") not in FORMATS:
            raise ValueError(f"format is {str(meta.get('format'))[:40]!r}, expected {FORMAT!r}")
        tensors = load_file(str(path))
        odd = next((k for k, v in tensors.items() if v.dtype not in DTYPES), None)
        if odd is not None:
            raise ValueError(f"tensor {odd[:80]} is {tensors[odd].dtype}, which rlkit never writes")
        if meta["format"] != FORMATS[0] and meta.get("digest") != digest(tensors, meta):
            raise ValueError("its contents do not match the digest in its header: the file is damaged")
        parsed = {k: json.loads(meta[k]) for k in ("config", "spaces", "counters", "optim_groups", "rng")}
        parts = {name: None if name not in meta else {
            "meta": json.loads(meta[name]),
            "tensors": {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}}
            for name in PARTS}
    except Exception as e:  # safetensors and json raise several types for damaged files
        raise UsageError(f"{path} is not a valid rlkit checkpoint ({str(e).splitlines()[0][:200]})") from None
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise UsageError(f"{path} is damaged: tensor {bad} holds non-finite values (NaN or infinity)")
    config, filled = stored_config(parsed["config"], str(path))
    spaces = check_spaces(parsed["spaces"], path)
    counters, optim = parsed["counters"], {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            slot = re.fullmatch(r"optim\.(\d{1,6})\.(\w{1,64})", k)
            if slot is None:
                raise UsageError(f"{path} is not a valid rlkit checkpoint (unexpected tensor {k[:80]!r})")
            optim.setdefault(int(slot.group(1)), {})[slot.group(2)] = v.to(device)
    if not (isinstance(counters, dict) and "step" in counters and set(counters) <= COUNTERS and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**15 for v in counters.values())
            and isinstance(parsed["rng"], dict) and isinstance(parsed["optim_groups"], list)):
        raise UsageError(f"{path} is not a valid rlkit checkpoint (its counters, RNG or optimizer entries are "
                         f"not what rlkit writes)")
    model = {k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")}
    for part in parts.values():
        if part is not None:
            part["tensors"] = {k: v.to(device) for k, v in part["tensors"].items()}
    return {"config": config, "filled": filled, "spaces": spaces, "counters": counters, "model": model,
            "optim": {"state": optim, "param_groups": parsed["optim_groups"]},
            "rng": {**parsed["rng"], "torch": tensors.get("rng.torch")}, **parts}


def check_spaces(spaces, path) -> dict:
    """The observation and action spaces a file describes, within what any real agent has."""
    def fail(why):
        raise UsageError(f"{path} is not a valid rlkit checkpoint (its spaces {why})")

    if not isinstance(spaces, dict) or set(spaces) != {"obs_shape", "obs_dtype", "num_actions"}:
        fail("are not {obs_shape, obs_dtype, num_actions}")
    shape, dtype, n = spaces["obs_shape"], spaces["obs_dtype"], spaces["num_actions"]
    if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_OBS_DIMS and all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_OBS_SIZE for d in shape)
            and int(np.prod(shape)) <= MAX_OBS_VALUES):
        fail(f"give an observation shape that is not 1 to {MAX_OBS_DIMS} sizes of 1 to {MAX_OBS_SIZE} "
             f"with at most {MAX_OBS_VALUES} values")
    if dtype not in OBS_DTYPES:
        fail(f"give the observation dtype {str(dtype)[:40]!r}; valid: {', '.join(OBS_DTYPES)}")
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_ACTIONS):
        fail(f"give {str(n)[:40]} actions; valid: 1 to {MAX_ACTIONS}")
    return spaces


def restore_rng(rng: dict) -> None:
    random.setstate(_tuples(rng["python"]))
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"].cpu())


def candidates(run_dir) -> list[Path]:
    """A run folder's checkpoints, newest first: final.safetensors, then step_N by N (only names
    that rlkit writes; a stray `step_1536 (copy).safetensors` is ignored). An agent shipped in
    agents/ has its one file."""
    if (Path(run_dir) / "agent.safetensors").is_file():
        return [Path(run_dir) / "agent.safetensors"]
    folder = Path(run_dir) / "checkpoints"
    final = [folder / "final.safetensors"] if (folder / "final.safetensors").is_file() else []
    return final + sorted(_steps(folder), key=_step, reverse=True)


def _steps(folder: Path) -> list[Path]:
    return [p for p in folder.glob("step_*.safetensors") if STEP_FILE.fullmatch(p.name) and p.is_file()]


def _step(path: Path) -> int:
    return int(STEP_FILE.fullmatch(path.name).group(1))


def latest(run_dir) -> Path:
    """The newest checkpoint of a run folder (see `candidates`)."""
    found = candidates(run_dir)
    if not found:
        raise UsageError(f"{run_dir} holds no checkpoint (looked in {Path(run_dir) / 'checkpoints'})")
    return found[0]


def load_latest(run_dir, device="cpu", note=None, set_aside: bool = False) -> tuple[Path, dict]:
    """The newest checkpoint of a run folder that loads intact. Each newer one that does not is
    named in one line to `note` (e.g. print to stderr), and with `set_aside` (a resumed run, which
    will write new checkpoints) renamed to NAME.damaged, kept but out of the run's way. None
    loads: one UsageError naming why each was refused, and nothing renamed."""
    found, skipped = candidates(run_dir), []
    if not found:
        raise UsageError(f"{run_dir} holds no checkpoint (looked in {Path(run_dir) / 'checkpoints'})")
    for path in found:
        try:
            ckpt = load(path, device)
        except UsageError as e:
            skipped.append((path, str(e)))
            continue
        if skipped and set_aside:
            for bad, _ in skipped:
                try:
                    bad.rename(bad.with_name(bad.name + ".damaged"))
                except OSError:
                    pass
        if skipped and note:
            aside = " (renamed to *.damaged)" if set_aside else ""
            note(f"skipped {len(skipped)} damaged checkpoint(s){aside}, using {path.name}: "
                 + "; ".join(why for _, why in skipped))
        return path, ckpt
    raise UsageError(f"no intact checkpoint in {run_dir}: " + "; ".join(why for _, why in skipped))


def export(src, dst) -> Path:
    """An agent to ship (agents/NAME/agent.safetensors): the checkpoint without its optimizer
    state, its self-play opponent pool and its collector's state (a much smaller file); it loads
    and plays the same, and cannot resume training."""
    load(src)  # refuse anything that is not an intact checkpoint
    with safe_open(str(src), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in (*PARTS, "digest")}
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(("optim.", *(f"{p}." for p in PARTS)))}
    return write(dst, tensors, {**meta, "optim_groups": "[]"})


def prune(run_dir, keep: int) -> None:
    """Keep the `keep` newest periodic checkpoints."""
    steps = sorted(_steps(Path(run_dir) / "checkpoints"), key=_step)
    for old in steps[:-keep] if keep > 0 else steps:
        old.unlink()
