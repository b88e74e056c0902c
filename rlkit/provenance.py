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
    """The checkout's short commit, `-dirty` when tracked files differ from it; `unknown` outside git."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parent).stdout.strip()
        except OSError:  # no git on this machine
            return ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("-dirty" if sha != "unknown" and git("status", "--porcelain", "--untracked-files=no") else "")


def stamp(sha: str | None = None) -> str:
    """`2026-12-01, commit abc1234, <machine>`: the line a report opens with."""
    return f"{date.today().isoformat()}, commit {sha or commit()}, {machine()}"
