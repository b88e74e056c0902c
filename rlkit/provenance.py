"""Where and when a measurement was taken: the date, the commit and the machine, stamped on every
report rlkit.bench and rlkit.compare write (machines differ, so a number without them means little)."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import date
from pathlib import Path


def machine() -> str:
    """CPU model, core count, GPU and torch version, like `AMD EPYC 7B13, 2 cores, no GPU, torch 2.13.0+cpu`."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def commit() -> str:
    """rlkit's checkout's short commit, `-dirty` when its code, configs or game files differ from it
    (new files included); `unknown` where rlkit is not a git checkout of its own (installed into
    another project, or no git on this machine)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, cwd=root).stdout.strip()
        except OSError:
            return ""

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != root:
        return "unknown"
    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "rlkit", "configs", "envs", "pyproject.toml")
    return sha + ("-dirty" if sha != "unknown" and changed else "")


def stamp(sha: str | None = None) -> str:
    """`2026-12-01, commit abc1234, <machine>`: the line a report opens with."""
    return f"{date.today().isoformat()}, commit {sha or commit()}, {machine()}"
