"""Train an agent:  python -m rlkit.train env=doom algo=ppo model=cnn seed=1 ...
Continue one:      python -m rlkit.train resume=runs/doom__ppo__1__20261123-120000 [total_steps=...]
On a budget:       python -m rlkit.train env=defend_the_center minutes=30   (ends at 30 minutes or total_steps)

The whole loop, top to bottom: collect a rollout, update, log, maybe checkpoint.
Ctrl-C (or SIGTERM) stops at the end of the current update with a checkpoint; a second
Ctrl-C stops at once (checkpoints are written atomically, so the last one stays intact)."""
from __future__ import annotations

import math
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from rlkit import checkpoint, precision, video
from rlkit.agent import check_fits, pick_device, spaces_of
from rlkit.algos import ALGOS
from rlkit.async_rollout import AsyncCollector
from rlkit.config import RunError, UsageError, cli, default_run_dir, load_config
from rlkit.config import help_text as config_help
from rlkit.logger import Logger
from rlkit.nets import make_policy
from rlkit.resume import restore, resume_config
from rlkit.symmetry import BoardSymmetries


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_run_dir(cfg) -> tuple[Path, set[Path] | None]:
    """The new run's folder, and what it held before (None: it is new), so that a run that fails
    before its first checkpoint can take away what it made (`discard`)."""
    run_dir = default_run_dir(cfg, cfg.algo.name)
    if (run_dir / "checkpoints").exists():
        raise UsageError(f"run_dir {run_dir} already holds a run; choose another run_dir, "
                         f"or continue it with resume={run_dir}")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run_dir {run_dir} is a file; choose a folder")
    before = set(run_dir.iterdir()) if run_dir.is_dir() else None
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    return run_dir, before


def discard(run_dir: Path, before: set[Path] | None) -> None:
    """Take away what a run that saved nothing made in its folder (all of it, if the folder is new)."""
    for path in [run_dir] if before is None else set(run_dir.iterdir()) - before:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


class StopRequest:
    """First SIGINT/SIGTERM: finish the current update, checkpoint, stop. Second: stop at once."""

    def __init__(self):
        self.requested = False
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this update (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def check_choices(cfg, algo) -> None:
    """Options an algorithm must declare that it can run with."""
    if cfg.get("async_rollout", False):
        if not algo.ASYNC_ROLLOUT:
            able = ", ".join(name for name, a in ALGOS.items() if a.ASYNC_ROLLOUT)
            raise UsageError(f"async_rollout=true needs an algorithm whose update corrects one rollout of lag "
                             f"({able}); {cfg.algo.name} has no such correction")
        if cfg.env.family == "board":
            raise UsageError("async_rollout=true does not run self-play board games: their opponent pool changes "
                             "between updates; use async_rollout=false")
    if cfg.env.family == "board" and cfg.env.selfplay.get("augment", False) and not algo.AUGMENT:
        able = ", ".join(name for name, a in ALGOS.items() if a.AUGMENT)
        raise UsageError(f"env.selfplay.augment=true needs an algorithm whose update can weight the images as "
                         f"samples the acting policy did not play ({able}); {cfg.algo.name} cannot")


def augmenter(cfg, collector):
    """`env.selfplay.augment=true`: the board's symmetries, to train on each batch's image too."""
    if cfg.env.family != "board" or not cfg.env.selfplay.get("augment", False):
        return None

    return BoardSymmetries(cfg.env.game, collector.observation_space.shape, int(collector.action_space.n))


def check_finite(policy, stats: dict, step: int, run_dir: Path) -> None:
    bad = [k for k, v in stats.items() if k.startswith("loss/") and not math.isfinite(v)]
    bad += [f"weight {n}" for n, p in policy.named_parameters() if not torch.isfinite(p).all()][:1]
    if bad:
        try:
            last = f"the last good checkpoint is {checkpoint.load_latest(run_dir)[0]}"
        except UsageError:
            last = "no intact checkpoint was written yet"
        raise RunError(f"non-finite {bad[0]} at step {step}; training stopped and {last} "
                       f"(try a lower algo.lr or algo.max_grad_norm)")


def train(cfg, resume_from: dict | None = None, weights: dict | None = None) -> tuple[Path, bool]:
    """Run (or continue) training; a new run may start from `weights` (a state dict that fits
    `cfg.model`, e.g. a pruned network to fine-tune). Returns (run folder, whether it was stopped early)."""
    device = pick_device(cfg.device)
    precision.check(cfg.amp, device)  # before any work
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    counters = resume_from["counters"] if resume_from else {}
    step, start_update, trained = counters.get("step", 0), counters.get("update", 0), counters.get("seconds", 0)
    algo = ALGOS[cfg.algo.name]
    check_choices(cfg, algo)
    # Resumed runs start fresh episodes; seeding by step keeps them off the first run's stream.
    collector = algo.make_collector(cfg, device, cfg.seed + step)
    pool = collector.pool  # self-play: the opponent pool
    try:
        symmetries = augmenter(cfg, collector)
        spaces, board = (collector.observation_space, collector.action_space), cfg.env.family == "board"
        if resume_from:  # before the network is built: a file's config cannot ask for more than its weights
            check_fits(resume_from["model"], cfg.model, *spaces, board, cfg.resume)
        policy = make_policy(cfg.model, *spaces, board=board).to(device)
        if weights is not None and not resume_from:
            check_fits(weights, cfg.model, *spaces, board, "the starting weights")
            policy.load_state_dict(weights)
        optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.algo.lr, eps=1e-5)
        if resume_from:
            restore(resume_from, policy, optimizer, pool, collector, cfg.resume)
        # Only once every check passed; a new run that fails before its first checkpoint takes it away.
        run_dir, before = (Path(cfg.resume), None) if resume_from else make_run_dir(cfg)
    except BaseException:
        collector.close()
        raise
    try:
        return _train(cfg, algo, run_dir, collector, policy, optimizer, pool, symmetries, device, step,
                      start_update, trained, fresh=not resume_from)
    except BaseException:
        if not resume_from and not checkpoint.candidates(run_dir):
            discard(run_dir, before)
        raise


def done_fraction(step: int, total_steps: int, seconds: float, minutes: float) -> float:
    """How much of the run is behind it, for the learning rate's annealing: the larger of its
    steps' share of `total_steps` and, on a `minutes=` budget, its seconds' share of that, so that
    a run the budget ends still anneals to 0."""
    by_time = seconds / (60 * minutes) if minutes else 0.0
    return min(1.0, max(step / total_steps, by_time))


def _train(cfg, algo, run_dir: Path, collector, policy, optimizer, pool, symmetries, device, step: int,
           start_update: int, trained: int, fresh: bool) -> tuple[Path, bool]:
    """The loop; `trained`: the seconds the run trained before this process (its `minutes=` budget
    is the whole run's, over any number of resumes)."""
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    net = torch.compile(policy) if cfg.compile else policy  # what acts and learns; `policy` holds the weights
    spaces = spaces_of(collector.observation_space, collector.action_space)
    logger = Logger(run_dir, cfg, start_step=step, progress=cfg.progress)
    print(precision.apply(policy, cfg.amp, device))  # stdout: stderr holds only an error, in one line
    def save(name: str, update: int) -> None:
        seconds = trained + math.ceil(time.monotonic() - begun)
        checkpoint.save(run_dir / "checkpoints" / name, policy, optimizer, cfg, spaces,
                        {"step": step, "update": update, "seconds": seconds},
                        pool.state() if pool is not None else None, collector.state())

    batch_steps = cfg.algo.num_steps * collector.num_envs  # a batch's steps, unless it says ("steps")
    if cfg.get("async_rollout", False):  # (its algorithms' batches are all batch_steps)
        collector = AsyncCollector(collector, policy, math.ceil((cfg.total_steps - step) / batch_steps))
    # Board games are watched in the terminal (rlkit.play), not as TensorBoard videos.
    evaluation = video.EvalVideo(policy, cfg, device) if cfg.video_every and cfg.env.family != "board" else None
    last_ckpt, last_video, stop = step, step, StopRequest()
    begun = time.monotonic()
    deadline = begun + 60 * cfg.minutes - trained if cfg.minutes else math.inf
    if pool is not None and fresh:
        logger.scalars(step, pool.maybe_snapshot(policy, step))  # the first snapshot: the untrained policy
    update, last = start_update, step >= cfg.total_steps
    try:
        while not last:
            update += 1
            done = done_fraction(step, cfg.total_steps, trained + time.monotonic() - begun, cfg.minutes)
            lr = cfg.algo.lr * (1 - done if cfg.algo.anneal_lr else 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            restarts = collector.restarts
            batch, episodes = collector.collect(net)
            if collector.restarts > restarts:
                logger.note(f"envs or Ray workers failed and were restarted ({collector.restarts} so far)")
            step += batch.pop("steps", batch_steps)
            last = step >= cfg.total_steps
            if not last and time.monotonic() >= deadline:  # the budget: this update is the last
                logger.note(f"the {cfg.minutes:g}-minute budget ends training at step {step} of {cfg.total_steps}")
                last = True
            if symmetries is not None:
                batch = symmetries.augment(net, batch)
            stats = algo.update(net, optimizer, batch, cfg.algo)
            check_finite(policy, stats, step, run_dir)
            logger.episodes_done(step, episodes)
            if update % cfg.log_every == 0 or last:
                logger.scalars(step, {**stats, "lr": lr, "time/sps": logger.sps(step),
                                      "env/restarts": collector.restarts})
            if evaluation and (step - last_video >= cfg.video_every or last):
                logger.note(f"evaluation video at step {step}: return {evaluation.log(logger.writer, step).ret:g}")
                last_video = step
            if pool is not None:
                logger.scalars(step, pool.maybe_snapshot(policy, step))
            logger.advance(step)
            if stop.requested and not last:
                save(f"step_{step}.safetensors", update)
                print(logger.close(step, run_dir, precision=precision.name(policy)))
                again = (f" runner={cfg.runner.name}" if cfg.runner.name != "local" else "") \
                    + (" compile=true" if cfg.compile else "")  # what a checkpoint cannot turn on
                print(f"stopped at step {step}; continue with:\n  python -m rlkit.train resume={run_dir}{again}")
                return run_dir, True
            if cfg.checkpoint_every and step - last_ckpt >= cfg.checkpoint_every and not last:
                save(f"step_{step}.safetensors", update)
                checkpoint.prune(run_dir, cfg.keep_checkpoints)
                last_ckpt = step
        save("final.safetensors", update)
    finally:
        stop.restore()
        collector.close()
        if evaluation:
            evaluation.close()
    print(logger.close(step, run_dir, precision=precision.name(policy)))
    return run_dir, False


def help_text(argv: list[str]) -> str:
    return f"{__doc__.strip()}\n\n{config_help(argv)}"


def main(argv: list[str]) -> Path:
    resume = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    cfg, ckpt = (resume_config(resume[-1], [a for a in argv if not a.startswith("resume=")]) if resume
                 else (load_config(argv), None))
    try:
        run_dir, stopped = train(cfg, ckpt)
    except KeyboardInterrupt:
        print("\nstopped at once; the checkpoints written so far are intact", file=sys.stderr)
        sys.exit(130)
    if stopped:
        sys.exit(130)
    return run_dir


if __name__ == "__main__":
    cli(main)
