"""Continuing a run from its folder (`python -m rlkit.train resume=RUN`): which settings may
change, what the folder must be (writable, no symbolic links), and the checkpoint's parts put
back into a new run's network, optimizer, RNG streams, opponent pool and collector, each checked
first, since a run folder may come from anyone."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from rlkit import checkpoint
from rlkit.config import load_config
from rlkit.errors import UsageError

# What a resumed run may change; everything else comes from its checkpoint.
# `runner` and its keys too: a run may move between this machine and a Ray cluster.
RESUMABLE = ("total_steps", "minutes", "device", "progress", "checkpoint_every", "keep_checkpoints", "torch_threads",
             "log_every", "video_every", "video_length", "runner", "overlap", "async_rollout", "compile")
# What only the command line may turn on, never a checkpoint: Ray starts processes and reads
# RAY_ADDRESS; torch.compile runs a C++ compiler. A resumed run goes on without them unless asked.
NOT_FROM_FILES = ("runner", "compile")


def check_run_folder(run_dir: Path) -> None:
    """A resumed run writes checkpoints and logs into its folder: find out before any work that it
    can, and that nothing in it is a symbolic link (a shared run folder could otherwise point its
    config.yaml or checkpoints at any file of the user's, for the resumed run to overwrite)."""
    if not (run_dir / "checkpoints").is_dir():
        raise UsageError(f"{run_dir} is no run folder to resume (it has no checkpoints/ folder; an agent folder "
                         f"has no optimizer state to go on with)")
    entries = [run_dir / "checkpoints", *run_dir.iterdir(), *(run_dir / "checkpoints").iterdir()]
    link = next((p for p in entries if p.is_symlink()), None)
    if link is not None:
        raise UsageError(f"{link} is a symbolic link; a run folder to resume may hold none (copy the run "
                         f"without links and resume the copy)")
    probe = run_dir / "checkpoints" / f".rlkit-write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW))
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to {run_dir} ({e.strerror}); copy the run folder somewhere writable "
                         f"and resume it there") from None


def resume_config(run: str, overrides: list[str]):
    """The checkpoint's config, with the few keys a resumed run may change."""
    keys = [o.split("=", 1)[0] for o in overrides]
    fixed = [k for k in keys if k.split(".")[0] not in RESUMABLE]
    if fixed:
        raise UsageError(f"cannot change {fixed[0]!r} when resuming; allowed: {', '.join(RESUMABLE)}, runner.*")
    checkpoint.latest(run)  # a clear error for a folder that holds no checkpoint
    check_run_folder(Path(run))
    _, ckpt = checkpoint.load_latest(run, note=lambda line: print(f"note: {line}", file=sys.stderr), set_aside=True)
    if ckpt["filled"]:
        print(f"{run} was saved before these settings existed; it goes on with: {', '.join(ckpt['filled'])}",
              file=sys.stderr)
    new = load_config(overrides)  # validates names, types and ranges
    stored = ckpt["config"]
    dropped = [f"runner={stored.runner.name}" if k == "runner" else f"{k}=true" for k in NOT_FROM_FILES
               if not any(o.split(".")[0] == k for o in keys) and new[k] != stored[k]]
    if dropped:
        print(f"note: {run} ran with {', '.join(dropped)}, which a checkpoint cannot turn on; give "
              f"{' '.join(dropped)} to go on with it", file=sys.stderr)
    cfg = OmegaConf.merge(stored, {k: new[k] for k in {*keys, *NOT_FROM_FILES} if "." not in k}, {"resume": str(run)})
    cfg.runner = new.runner
    if cfg.total_steps <= ckpt["counters"]["step"]:
        raise UsageError(f"{run} has already run {ckpt['counters']['step']} of total_steps={cfg.total_steps}; "
                         f"give a larger total_steps to go on")
    if cfg.minutes and ckpt["counters"].get("seconds", 0) >= 60 * cfg.minutes:
        raise UsageError(f"{run} has trained for {ckpt['counters']['seconds'] / 60:.1f} minutes of its budget, "
                         f"minutes={cfg.minutes:g}; give a larger minutes (or minutes=0: no budget) to go on")
    return cfg, ckpt


def restore(ckpt: dict, policy, optimizer, pool, collector, run: str) -> None:
    """A resumed run's weights, optimizer, RNG streams, opponent pool and collector state. What the
    checkpoint's loader could not check alone (that they fit this run's network and optimizer) is
    found here: one line, exit 2."""
    try:
        policy.load_state_dict(ckpt["model"])
        check_adam(optimizer, ckpt["optim"])
        optimizer.load_state_dict(ckpt["optim"])
        checkpoint.restore_rng(ckpt["rng"])
        if pool is not None:
            pool.load_state(ckpt["pool"] or {"meta": None, "tensors": {}})
        if ckpt.get("collector") is not None:
            collector.load_state(ckpt["collector"])
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, ArithmeticError, AssertionError) as e:
        raise UsageError(f"cannot resume {run}: its checkpoint does not fit this run "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no detail'})") from None


def check_adam(optimizer, saved: dict) -> None:
    """The optimizer state in a checkpoint is Adam's as rlkit writes it: the same groups with this
    run's flags and numbers in range, and per parameter `step`, `exp_avg`, `exp_avg_sq` of its
    shape. Anything else is a ValueError, before it reaches torch.optim, which trusts what it loads."""
    ours, groups, state = optimizer.state_dict()["param_groups"], saved["param_groups"], saved["state"]
    if not (isinstance(groups, list) and len(groups) == len(ours)
            and all(isinstance(g, dict) and set(g) == set(o) for g, o in zip(groups, ours))):
        raise ValueError("its optimizer groups are not this run's Adam's")
    for group, own in zip(groups, ours):
        for key, value in own.items():
            got = group[key]
            if isinstance(value, bool) or value is None or key == "params":
                ok = got == value
            elif isinstance(value, (tuple, list)):  # betas
                ok = isinstance(got, (tuple, list)) and len(got) == len(value) and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1 for x in got)
            else:  # lr, eps, weight_decay
                ok = isinstance(got, (int, float)) and not isinstance(got, bool) and 0 <= got < 1e6
            if not ok:
                raise ValueError(f"its optimizer's {key} is {str(got)[:40]}")
    shapes = {i: p.shape for own, group in zip(ours, optimizer.param_groups)
              for i, p in zip(own["params"], group["params"])}
    for i, entry in state.items():
        if i not in shapes or set(entry) != {"step", "exp_avg", "exp_avg_sq"} or entry["step"].shape != () \
                or entry["exp_avg"].shape != shapes[i] or entry["exp_avg_sq"].shape != shapes[i]:
            raise ValueError(f"its optimizer state for parameter {i} is not shaped as the parameter")
