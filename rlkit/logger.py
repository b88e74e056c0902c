"""TensorBoard scalars with namespaced names, the hyperparameters as text, a live progress
bar (steps, steps/s, ETA, recent mean return) and a summary at the end."""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

from omegaconf import OmegaConf
from tqdm import tqdm


class Logger:
    def __init__(self, run_dir, cfg, start_step: int = 0, progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops whatever the interrupted one logged after its checkpoint.
        if start_step:
            _after_existing_event_files(Path(run_dir))
        self.writer = SummaryWriter(str(run_dir), purge_step=start_step + 1 if start_step else None)
        flat = OmegaConf.to_container(cfg, resolve=True)
        rows = "\n".join(f"|{k}|{v}|" for k, v in _flatten(flat).items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        self.recent = deque(maxlen=100)
        self.episodes = 0
        self.start_time, self.start_step = time.time(), start_step
        self.bar = tqdm(total=cfg.total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not progress, smoothing=0.1, mininterval=0.5)

    def episodes_done(self, step: int, episodes) -> None:
        for ret, length in episodes:
            self.writer.add_scalar("episode/return", ret, step)
            self.writer.add_scalar("episode/length", length, step)
            self.recent.append(ret)
        self.episodes += len(episodes)

    def scalars(self, step: int, stats: dict) -> None:
        for name, value in stats.items():
            self.writer.add_scalar(name, value, step)

    def note(self, message: str) -> None:
        """A line above the progress bar."""
        self.bar.write(message, file=sys.stderr)

    def sps(self, step: int) -> float:
        return (step - self.start_step) / max(time.time() - self.start_time, 1e-9)

    def mean_return(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("nan")

    def advance(self, step: int) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"return {self.mean_return():.1f}")

    def close(self, step: int, run_dir, **facts) -> str:
        """End the run's log; `facts` (e.g. its precision) go into summary.json beside the numbers."""
        self.bar.close()
        self.writer.flush()
        self.writer.close()
        write_summary(run_dir, steps=step, seconds=time.time() - self.start_time, sps=self.sps(step),
                      episodes=self.episodes, recent_return=self.mean_return(), **facts)
        minutes = (time.time() - self.start_time) / 60
        return (f"done: {step} steps in {minutes:.1f} min ({self.sps(step):.0f} steps/s), {self.episodes} episodes, "
                f"mean return of the last {len(self.recent)}: {self.mean_return():.2f}\n"
                f"run folder: {run_dir}\n  tensorboard --logdir {run_dir}")


def peak_rss_mib() -> float:
    """Peak resident memory of this process plus its largest finished child (env workers)."""
    import resource

    unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    peak = sum(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return peak * unit / 2**20


def write_summary(run_dir, **numbers) -> None:
    """`summary.json` in the run folder, written when a run (or a resumed part of it) ends:
    what `rlkit.compare` tabulates. `seconds` counts this process only; `made`: the date, commit and
    machine it ran on."""
    from rlkit.provenance import stamp

    numbers["peak_rss_mib"] = round(peak_rss_mib(), 1)
    numbers["made"] = stamp()
    clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in numbers.items()}  # NaN -> null
    Path(run_dir, "summary.json").write_text(json.dumps(clean, indent=1) + "\n")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _after_existing_event_files(run_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order, and a name starts with the whole
    second it was made in and ends with an unpadded per-process counter. A resume in the same
    second as the run it continues (one process calling train twice) could sort before it, and
    then the purge would apply to the wrong file. Waiting for the next second rules that out."""
    seconds = (p.name.split(".")[3] for p in run_dir.glob("events.out.tfevents.*"))
    now = int(time.time())  # a name from the future is no file this machine wrote: never waited for
    newest = max((int(s) for s in seconds if s.isdigit() and len(s) < 12 and int(s) <= now + 1), default=0)
    while int(time.time()) <= newest:
        time.sleep(0.05)
