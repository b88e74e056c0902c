"""Resume, interruption and non-finite training (issue 7)."""
import shutil
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlkit import checkpoint
from rlkit.algos import ppo
from rlkit.config import RunError, UsageError
from rlkit.train import main
from tests.conftest import ROOT


class Toy(gym.Env):
    """Deterministic 8-step episodes: reward 1 for action 1. Rollouts of 32 steps end exactly at
    episode ends, so a resumed run (which starts fresh episodes) sees what an uninterrupted one sees."""

    observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t / 8, action], np.float32), float(action), self.t == 8, False, {}


gym.register("RlkitToy-v0", entry_point=Toy)
TOY = ["env=cartpole", "env.id=RlkitToy-v0", "num_envs=2", "algo.num_steps=32", "algo.minibatches=2",
       "total_steps=512", "checkpoint_every=128", "keep_checkpoints=10", "progress=false"]


def weights(path):
    return {k: v for k, v in load_file(str(path)).items() if k.startswith(("model.", "optim."))}


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    full = main([*TOY, f"run_dir={tmp_path / 'full'}"])
    # An "interrupted" copy: only the checkpoint at step 256 survives.
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for p in (cut / "checkpoints").iterdir():
        if p.name != "step_256.safetensors":
            p.unlink()
    assert main([f"resume={cut}", "progress=false"]) == cut
    a, b = weights(full / "checkpoints" / "final.safetensors"), weights(cut / "checkpoints" / "final.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert checkpoint.load(cut / "checkpoints" / "final.safetensors")["counters"]["step"] == 512
    # The curve continues without duplicated steps.
    events = EventAccumulator(str(cut))
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/policy")]
    assert steps == sorted(set(steps)) == list(range(64, 513, 64))


def test_resume_can_extend_but_not_change_the_run(tmp_path):
    run = main([*TOY, "total_steps=128", f"run_dir={tmp_path / 'r'}"])
    with pytest.raises(UsageError, match="cannot change 'algo.lr' when resuming; allowed: total_steps"):
        main([f"resume={run}", "algo.lr=0.1"])
    with pytest.raises(UsageError, match="already run 128 of total_steps=128"):
        main([f"resume={run}"])
    main([f"resume={run}", "total_steps=256", "progress=false"])
    assert checkpoint.load(run / "checkpoints" / "final.safetensors")["counters"]["step"] == 256
    with pytest.raises(UsageError, match="holds no checkpoint"):
        main([f"resume={tmp_path / 'nothing'}"])


def test_a_time_budget_ends_the_run_with_a_final_checkpoint_and_resume_goes_on(tmp_path, capsys):
    run = main([*TOY, "total_steps=100000", "minutes=0.000001", f"run_dir={tmp_path / 'r'}"])  # 60 µs: one update
    final = checkpoint.load(run / "checkpoints" / "final.safetensors")
    assert final["counters"]["step"] == 64 and final["counters"]["update"] == 1
    assert "-minute budget ends training at step 64 of 100000" in capsys.readouterr().err
    with pytest.raises(UsageError, match="has trained for 0.0 minutes of its budget, minutes=1e-06; give a larger"):
        main([f"resume={run}"])  # the budget is the whole run's, not each resume's
    main([f"resume={run}", "minutes=0", "total_steps=256", "progress=false"])  # no budget: to total_steps
    final = checkpoint.load(run / "checkpoints" / "final.safetensors")["counters"]
    assert final["step"] == 256 and final["update"] == 4 and 0 <= final["seconds"] < 600


def test_a_run_saved_before_a_config_key_existed_resumes_with_its_default(tmp_path, capsys):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = main([*TOY, "total_steps=128", f"run_dir={tmp_path / 'old'}"])
    path = run / "checkpoints" / "final.safetensors"
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    del config["overlap"], config["algo"]["clip_vloss"]  # as if saved by an rlkit without these keys
    config["algo"]["ent_coef"] = 0.123                    # stored values win over today's defaults
    meta = {k: v for k, v in meta.items() if k != "digest"}  # and in the format of then, without a digest
    save_file(tensors, str(path), metadata={**meta, "format": "rlkit-checkpoint-1", "config": json.dumps(config)})
    main([f"resume={run}", "total_steps=256", "progress=false"])
    assert "was saved before these settings existed; it goes on with: algo.clip_vloss=True, overlap=False" \
        in capsys.readouterr().err
    resumed = checkpoint.load(path)
    assert resumed["counters"]["step"] == 256
    assert resumed["config"].overlap is False and resumed["config"].algo.clip_vloss is True
    assert resumed["config"].algo.ent_coef == 0.123


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real, calls = ppo.update, []

    def exploding(*args):
        calls.append(1)
        stats = real(*args)
        return {**stats, "loss/value": float("nan")} if len(calls) == 3 else stats

    monkeypatch.setattr(ppo, "update", exploding)
    with pytest.raises(RunError) as e:
        main([*TOY, "checkpoint_every=64", f"run_dir={tmp_path / 'nan'}"])
    assert str(e.value).startswith("non-finite loss/value at step 192; training stopped and the last good "
                                   "checkpoint is")
    assert "step_128.safetensors" in str(e.value)
    assert not (tmp_path / "nan" / "checkpoints" / "final.safetensors").exists()
    checkpoint.load(tmp_path / "nan" / "checkpoints" / "step_128.safetensors")


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_prints_the_resume_command(tmp_path):
    run = tmp_path / "sig"
    proc = subprocess.Popen([sys.executable, "-m", "rlkit.train", "env=cartpole", "total_steps=10000000",
                             "checkpoint_every=0", f"run_dir={run}", "progress=false"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(run.glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"python -m rlkit.train resume={run}" in out
    assert "Traceback" not in err
    latest = checkpoint.latest(run)
    assert latest.name.startswith("step_")
    step = checkpoint.load(latest)["counters"]["step"]
    assert 0 < step < 10_000_000
    # ... and the run goes on from there
    main([f"resume={run}", f"total_steps={step + 512}", "progress=false"])
    assert checkpoint.load(checkpoint.latest(run))["counters"]["step"] == step + 512


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "twice"
    # Long rollouts (16k steps each), so the second Ctrl-C lands in the middle of one.
    proc = subprocess.Popen([sys.executable, "-m", "rlkit.train", "env=cartpole", "total_steps=10000000",
                             "algo.num_steps=2048", "checkpoint_every=1", f"run_dir={run}", "progress=false"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list((run / "checkpoints").glob("step_*.safetensors")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "stopped at once" in err and "Traceback" not in err
    checkpoint.load(checkpoint.latest(run))  # intact


def test_a_resume_in_the_same_second_still_reads_after_the_run_it_continues(tmp_path, monkeypatch):
    # TensorBoard orders event files by name: the creation second, then an unpadded counter,
    # so a writer numbered 10 sorts before one numbered 9 made in the same second.
    from omegaconf import OmegaConf
    from tensorboard.summary.writer import event_file_writer

    from rlkit.logger import Logger

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    cfg = OmegaConf.create({"total_steps": 4})
    first = Logger(tmp_path, cfg, progress=False)
    for step in (1, 2, 3, 4):
        first.scalars(step, {"x": 0.0})
    first.writer.close()
    resumed = Logger(tmp_path, cfg, start_step=2, progress=False)
    for step in (3, 4):
        resumed.scalars(step, {"x": 1.0})
    resumed.writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("x")] == [(1, 0.0), (2, 0.0), (3, 1.0), (4, 1.0)]


def test_the_learning_rate_anneals_over_whichever_of_steps_and_minutes_ends_first():
    from rlkit.train import done_fraction

    assert done_fraction(250, 1000, 5.0, 0) == 0.25  # no budget: the steps' share
    assert done_fraction(100, 1000, 30.0, 1.0) == 0.5  # half the minute gone, a tenth of the steps
    assert done_fraction(900, 1000, 30.0, 1.0) == 0.9
    assert done_fraction(100, 1000, 90.0, 1.0) == 1.0  # past the budget: annealed to 0, no further
