"""TensorBoard scalars with namespaced names, the hyperparameters as text, a live progress
bar (steps, steps/s, ETA, recent mean return) and a summary at the end."""
from __future__ import annotations

import sys
import time
from collections import deque

from omegaconf import OmegaConf
from tqdm import tqdm


class Logger:
    def __init__(self, run_dir, cfg, start_step: int = 0, progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops whatever the interrupted one logged after its checkpoint.
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

    def close(self, step: int, run_dir) -> str:
        self.bar.close()
        self.writer.flush()
        self.writer.close()
        minutes = (time.time() - self.start_time) / 60
        return (f"done: {step} steps in {minutes:.1f} min ({self.sps(step):.0f} steps/s), {self.episodes} episodes, "
                f"mean return of the last {len(self.recent)}: {self.mean_return():.2f}\n"
                f"run folder: {run_dir}\n  tensorboard --logdir {run_dir}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
