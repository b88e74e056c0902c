"""Self-describing checkpoints in one safetensors file: weights, optimizer state and RNG
states as tensors; the resolved config, spaces and step counters as JSON in the header. A
self-play run adds its opponent pool (snapshot weights as `pool.*` tensors, the rest as JSON),
and a collector with state of its own (algo=alphazero's window of positions) adds it the same
way, as `collector.*`. Loading parses tensors and JSON only, so a checkpoint can never run code."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from rlkit.config import UsageError

FORMAT = "rlkit-checkpoint-1"


PARTS = ("pool", "collector")  # optional states a run may add, each {"tensors": {name: tensor}, "meta": JSON-able}


def save(path, policy, optimizer, cfg, spaces: dict, counters: dict, pool: dict | None = None,
         collector: dict | None = None) -> Path:
    """Write atomically: a temporary file, fsync, then rename over the target. `pool` (see
    rlkit.pool) and `collector` (e.g. rlkit.algos.alphazero): {"tensors": {name: tensor}, "meta": JSON-able}."""
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
        "format": FORMAT,
        "config": json.dumps(OmegaConf.to_container(cfg, resolve=True)),
        "spaces": json.dumps(spaces),
        "counters": json.dumps(counters),
        "optim_groups": json.dumps(opt["param_groups"]),
        "rng": json.dumps({"python": _jsonable(random.getstate()),
                           "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}),
    }
    for name, part in parts.items():
        meta[name] = json.dumps(part["meta"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def load(path, device="cpu") -> dict:
    """Read a checkpoint: {'config', 'spaces', 'counters', 'model', 'optim', 'rng', 'pool', 'collector'}
    ('pool' is None unless the run was self-play, 'collector' unless its collector saved state).
    Anything that is not an intact rlkit checkpoint gets a one-line UsageError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        tensors = load_file(str(path), device=str(device))
        parsed = {k: json.loads(meta[k]) for k in ("config", "spaces", "counters", "optim_groups", "rng")}
        parts = {name: None if name not in meta else {
            "meta": json.loads(meta[name]),
            "tensors": {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}}
            for name in PARTS}
    except Exception as e:  # safetensors and json raise several types for damaged files
        raise UsageError(f"{path} is not a valid rlkit checkpoint ({str(e).splitlines()[0][:200]})") from None
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    return {"config": OmegaConf.create(parsed["config"]), "spaces": parsed["spaces"],
            "counters": parsed["counters"], "model": model,
            "optim": {"state": state, "param_groups": parsed["optim_groups"]},
            "rng": {**parsed["rng"], "torch": tensors.get("rng.torch")}, **parts}


def restore_rng(rng: dict) -> None:
    random.setstate(_tuples(rng["python"]))
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    if rng.get("torch") is not None:
        torch.set_rng_state(rng["torch"].cpu())


def latest(run_dir) -> Path:
    """The newest checkpoint of a run folder: final.safetensors, else the highest step
    (or the one file of an agent shipped in agents/)."""
    if (Path(run_dir) / "agent.safetensors").is_file():
        return Path(run_dir) / "agent.safetensors"
    folder = Path(run_dir) / "checkpoints"
    final = folder / "final.safetensors"
    if final.is_file():
        return final
    steps = sorted(folder.glob("step_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
    if not steps:
        raise UsageError(f"{run_dir} holds no checkpoint (looked in {folder})")
    return steps[-1]


def export(src, dst) -> Path:
    """An agent to ship (agents/NAME/agent.safetensors): the checkpoint without its optimizer
    state, its self-play opponent pool and its collector's state (a third of the size, far less for self-play runs); it
    loads and plays the same, and cannot resume training."""
    from safetensors import safe_open

    load(src)  # refuse anything that is not an intact checkpoint
    with safe_open(str(src), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in PARTS}
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(("optim.", *(f"{p}." for p in PARTS)))}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst), metadata={**meta, "optim_groups": "[]"})
    return dst


def prune(run_dir, keep: int) -> None:
    """Keep the `keep` newest periodic checkpoints."""
    steps = sorted((Path(run_dir) / "checkpoints").glob("step_*.safetensors"),
                   key=lambda p: int(p.stem.split("_")[1]))
    for old in steps[:-keep] if keep > 0 else steps:
        old.unlink()
