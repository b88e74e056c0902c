import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=300):
    """Run `python -m <args>` from the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def train(tmp_path):
    """Train in-process with a tiny budget; returns the run folder."""
    from rlkit.train import main

    def _train(*overrides, name="run"):
        return main([*overrides, f"run_dir={tmp_path / name}", "progress=false"])

    return _train
