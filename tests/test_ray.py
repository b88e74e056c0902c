"""runner=ray on a local Ray instance with 2 workers (issue 6): same metrics and checkpoints as
runner=local, on-policy batches, a killed worker replaced, resume, Ctrl-C, and the install hint.
One Ray instance serves the whole module (starting one takes seconds)."""
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import ray
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.distributions import Categorical

import rlkit
from rlkit import checkpoint
from rlkit.config import RunError, load_config
from rlkit.distributed import RayCollector
from rlkit.nets import make_policy
from rlkit.train import main
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # whole runs on Ray actors

CARTPOLE = ["env=cartpole", "num_envs=2", "algo.num_steps=32", "total_steps=512"]
DOOM = ["env=doom", "num_envs=2", "algo.num_steps=16", "total_steps=128", "env.size=[36,36]",
        "env.resolution=RES_160X120", "model.hidden=32"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance: the runs below join it instead of starting their own."""
    info = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield info.address_info["address"]
    ray.shutdown()


def events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def layout(path):
    """A checkpoint's format: tensor names, shapes and dtypes, and its JSON sections."""
    ckpt = checkpoint.load(path)
    tensors = {k: (tuple(v.shape), v.dtype) for k, v in load_file(str(path)).items() if k != "rng.torch"}
    return tensors, sorted(ckpt), sorted(ckpt["counters"])


@pytest.mark.parametrize(("overrides", "width"), [(CARTPOLE, 128), (DOOM, 64)], ids=["cartpole", "doom"])
def test_a_ray_run_writes_the_same_metrics_and_checkpoint_as_a_local_one(cluster, train, overrides, width):
    local = train(*overrides, name="local")
    remote = train(*overrides, "runner=ray", "runner.workers=2", name="ray")
    local_events, ray_events = events(local), events(remote)
    assert set(ray_events.Tags()["scalars"]) == set(local_events.Tags()["scalars"])
    assert {"loss/policy", "time/sps", "env/restarts"} <= set(ray_events.Tags()["scalars"])
    assert [e.value for e in ray_events.Scalars("env/restarts")] == [0.0] * len(ray_events.Scalars("env/restarts"))
    # Two workers with 2 envs each: every update is one [T, 4] batch, twice as wide as the local one.
    total = int(overrides[3].split("=")[1])
    assert [e.step for e in ray_events.Scalars("loss/policy")] == list(range(width, total + 1, width))
    final = remote / "checkpoints" / "final.safetensors"
    assert layout(final) == layout(local / "checkpoints" / "final.safetensors")
    assert checkpoint.load(final)["counters"]["step"] == total
    assert checkpoint.load(final)["config"]["runner"]["workers"] == 2
    agent = rlkit.load_agent(remote)
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(agent.act(obs))
    env.close()


def test_every_fragment_comes_from_the_current_weights(cluster):
    cfg = load_config(CARTPOLE + ["runner=ray", "runner.workers=2"])
    collector = RayCollector(cfg, torch.device("cpu"), seed=5)
    policy = make_policy(cfg.model, collector.observation_space, collector.action_space)
    try:
        for _ in range(2):
            batch, _ = collector.collect(policy)
            assert batch["obs"].shape == (32, 4, 4) and batch["last_value"].shape == (4,)
            with torch.no_grad():
                logits, values = policy(batch["obs"].flatten(0, 1))
            logprobs = Categorical(logits=logits).log_prob(batch["actions"].flatten()).view(32, 4)
            # Both workers' fragments match the learner's weights of this iteration exactly.
            assert torch.allclose(logprobs, batch["logprobs"], atol=1e-5)
            assert torch.allclose(values.view(32, 4), batch["values"], atol=1e-5)
            assert not torch.equal(batch["obs"][:, :2], batch["obs"][:, 2:])  # workers run different envs
            with torch.no_grad():
                for p in policy.parameters():
                    p.add_(0.3 * torch.randn_like(p))  # "an update": the next batch must follow it
    finally:
        collector.close()
    assert collector.restarts == 0


def test_fragments_of_a_policy_with_memory_replay_from_their_states(cluster):
    """model.core=lstm on Ray: each worker carries its games' states; the batch's states and
    starts, joined across workers, replay to the log-probabilities the workers acted with."""
    from rlkit.algos.common import layout as as_sequences

    cfg = load_config(CARTPOLE + ["runner=ray", "runner.workers=2", "model.core=lstm", "algo.seq_len=8"])
    collector = RayCollector(cfg, torch.device("cpu"), seed=5)
    policy = make_policy(cfg.model, collector.observation_space, collector.action_space)
    try:
        for _ in range(2):
            batch, _ = collector.collect(policy)
            assert batch["states"].shape == (4, 4, policy.core.state_size) and batch["next_start"].shape == (4,)
            data, _, memory = as_sequences(policy, batch, {"obs": batch["obs"], "actions": batch["actions"],
                                                           "logprobs": batch["logprobs"]})
            with torch.no_grad():
                logits, _, _ = policy(data["obs"], None, memory["state"], memory["starts"])
            logprobs = Categorical(logits=logits).log_prob(data["actions"])
            assert torch.allclose(logprobs, data["logprobs"], atol=1e-5)
            assert batch["states"][1:].abs().sum() > 0  # states carried from step to step
    finally:
        collector.close()


@pytest.mark.parametrize("how", ["ray.kill", "SIGKILL"])
def test_a_worker_killed_mid_run_is_replaced_and_the_restart_logged(cluster, train, monkeypatch, capsys, how):
    real, calls = RayCollector.collect, []

    def collect_and_kill(self, *args):
        calls.append(1)
        if len(calls) == 3:  # after two iterations, worker 0 dies
            if how == "ray.kill":
                ray.kill(self.workers[0])
            else:
                os.kill(ray.get(self.workers[0].ready.remote()), signal.SIGKILL)
        return real(self, *args)

    monkeypatch.setattr(RayCollector, "collect", collect_and_kill)
    run_dir = train(*CARTPOLE, "total_steps=1024", "runner=ray", name=how)
    restarts = [e.value for e in events(run_dir).Scalars("env/restarts")]
    assert restarts == [0, 0, 1, 1, 1, 1, 1, 1]
    assert checkpoint.load(run_dir / "checkpoints" / "final.safetensors")["counters"]["step"] == 1024
    assert "envs or Ray workers failed and were restarted (1 so far)" in capsys.readouterr().err


def test_too_many_dead_workers_stop_with_one_line_and_the_ray_run_resumes(cluster, train, monkeypatch, tmp_path):
    real, calls = RayCollector.collect, []

    def collect_and_kill(self, *args):
        calls.append(1)
        if len(calls) == 3:
            ray.kill(self.workers[1])
        return real(self, *args)

    monkeypatch.setattr(RayCollector, "collect", collect_and_kill)
    with pytest.raises(RunError, match=r"^Ray workers died 1 times \(runner.max_restarts=0\), last with "):
        train(*CARTPOLE, "runner=ray", "runner.max_restarts=0", "checkpoint_every=128", name="cap")
    run = tmp_path / "cap"
    assert checkpoint.latest(run).name == "step_256.safetensors"  # the learner's last checkpoint is intact
    # ... and resumes from it, with other runner settings: one worker, so half as wide a batch. Ray is
    # named again: a checkpoint alone never starts it (tests/test_hostile.py).
    main([f"resume={run}", "runner=ray", "runner.max_restarts=10", "runner.workers=1", "progress=false"])
    ckpt = checkpoint.load(run / "checkpoints" / "final.safetensors")
    assert ckpt["counters"]["step"] == 512
    assert ckpt["config"]["runner"]["name"] == "ray" and ckpt["config"]["runner"]["workers"] == 1
    assert [e.step for e in events(run).Scalars("loss/policy")] == [128, 256, 320, 384, 448, 512]


def test_ctrl_c_on_a_ray_run_checkpoints_and_leaves_the_cluster_up(cluster, tmp_path):
    run = tmp_path / "sig"
    env = {**os.environ, "RAY_ADDRESS": cluster}  # join this module's instance, as on a real cluster
    proc = subprocess.Popen([sys.executable, "-m", "rlkit.train", *CARTPOLE, "total_steps=10000000", "runner=ray",
                             "checkpoint_every=0", f"run_dir={run}", "progress=false"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 90
    while not list(run.glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"python -m rlkit.train resume={run}" in out and "Traceback" not in err
    assert checkpoint.load(checkpoint.latest(run))["counters"]["step"] > 0
    assert ray.cluster_resources().get("CPU") == 2  # the instance it joined is still up


def test_runner_ray_without_ray_is_a_one_line_install_hint(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from rlkit.config import cli\nfrom rlkit.train import main\n"
            f"sys.argv = ['train', 'env=cartpole', 'runner=ray', 'run_dir={tmp_path / 'x'}']\ncli(main)")
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: runner=ray needs Ray, an optional extra: pip install -e "
                                     "'.[distributed]' (or pip install 'ray[default]>=2.9'); or choose runner=local")
    assert not (tmp_path / "x").exists()
