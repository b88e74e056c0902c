"""Smoke runs of `rlkit.train` for every env family with tiny budgets: each writes a
TensorBoard event file and a checkpoint that loads back into a working agent."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rlkit
from rlkit import checkpoint
from tests.conftest import run_cli

TINY = {
    "cartpole": ["env=cartpole", "total_steps=512"],
    "doom": ["env=doom", "total_steps=128", "num_envs=2", "algo.num_steps=32", "env.size=[48,48]"],
    # In-process Atari tests use ale-py; EnvPool (which cannot share a process with it) runs in
    # its own process in test_envpool.py.
    "pong": ["env=pong", "env.backend=gymnasium", "total_steps=64", "num_envs=2", "algo.num_steps=16",
             "algo.minibatches=2"],
}


def scalars(run_dir):
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events


@pytest.mark.parametrize("family", TINY)
def test_smoke_run_writes_events_and_a_loadable_checkpoint(train, family):
    run_dir = train(*TINY[family])
    tags = scalars(run_dir).Tags()["scalars"]
    for tag in ("loss/policy", "loss/value", "loss/entropy", "stats/approx_kl", "stats/clipfrac",
                "time/sps", "lr"):
        assert tag in tags
    assert (run_dir / "config.yaml").is_file()
    agent = rlkit.load_agent(run_dir)
    assert agent.cfg.env.family == {"cartpole": "classic", "doom": "doom", "pong": "atari"}[family]
    env = agent.make_env()
    obs, _ = env.reset(seed=0)
    agent.reset()
    for _ in range(3):
        action = agent.act(obs)
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    env.close()


def test_episode_return_is_the_game_score_before_reward_scaling(train):
    # Doom Basic scales rewards by 0.01 for learning; episode/return must stay in game units
    # (living reward -1 per tic, so a 300-tic timeout alone scores about -300).
    run_dir = train("env=doom", "total_steps=640", "num_envs=2", "algo.num_steps=160", "env.size=[40,40]",
                    "model.hidden=32")
    returns = [e.value for e in scalars(run_dir).Scalars("episode/return")]
    assert returns, "no episode finished"
    assert max(abs(r) for r in returns) > 10  # scaled rewards would all be within +-4


def test_reinforce_transformer_on_atari(train):
    run_dir = train("env=pong", "env.backend=gymnasium", "algo=reinforce", "model=transformer", "total_steps=64",
                    "num_envs=2", "algo.num_steps=32", "env.max_episode_steps=16")
    assert "loss/entropy" in scalars(run_dir).Tags()["scalars"] or "stats/used_fraction" in \
        scalars(run_dir).Tags()["scalars"]
    assert rlkit.load_agent(run_dir).cfg.model.name == "transformer"


def test_impala_and_async_vector_env_on_doom(train):
    run_dir = train("env=doom", "model=impala", "vector=async", "total_steps=64", "num_envs=2",
                    "algo.num_steps=32", "env.size=[36,36]")
    assert checkpoint.latest(run_dir).name == "final.safetensors"


@pytest.mark.slow
def test_reinforce_learns_and_ppo_learns_on_cartpole(train):
    # Not a benchmark: a check that both learners move the return up on a tiny budget.
    for algo, steps in (("ppo", 20000), ("reinforce", 60000)):
        run_dir = train("env=cartpole", f"algo={algo}", f"total_steps={steps}", name=algo)
        returns = [e.value for e in scalars(run_dir).Scalars("episode/return")]
        first, last = np.mean(returns[:20]), np.mean(returns[-20:])
        assert last > 2 * first, (algo, first, last)


def test_a_fixed_seed_makes_a_cpu_run_repeatable(train):
    a = train("env=cartpole", "total_steps=1024", "seed=7", name="a")
    b = train("env=cartpole", "total_steps=1024", "seed=7", name="b")
    c = train("env=cartpole", "total_steps=1024", "seed=8", name="c")
    wa, wb, wc = (load_file(str(checkpoint.latest(r))) for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith("model."))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa if k.startswith("model."))


def test_periodic_checkpoints_are_kept_and_pruned(train):
    run_dir = train("env=cartpole", "total_steps=2048", "checkpoint_every=256", "keep_checkpoints=2")
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["final.safetensors", "step_1536.safetensors", "step_1792.safetensors"]
    ckpt = checkpoint.load(run_dir / "checkpoints" / "final.safetensors")
    assert ckpt["counters"]["step"] == 2048
    assert ckpt["optim"]["state"], "optimizer state is saved"


@pytest.mark.slow
def test_an_existing_run_folder_is_never_overwritten(tmp_path, train):
    run_dir = train("env=cartpole", "total_steps=256", name="keep")
    before = (run_dir / "checkpoints" / "final.safetensors").read_bytes()
    result = run_cli("rlkit.train", "env=cartpole", "total_steps=256", f"run_dir={run_dir}", "progress=false")
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (run_dir / "checkpoints" / "final.safetensors").read_bytes() == before


@pytest.mark.slow
def test_the_command_line_trains_and_prints_a_summary(tmp_path):
    result = run_cli("rlkit.train", "env=cartpole", "total_steps=512", f"run_dir={tmp_path / 'cli'}")
    assert result.returncode == 0, result.stderr
    assert "done: 512 steps" in result.stdout
    assert "step/s" in result.stderr  # the progress bar
    assert list((tmp_path / "cli").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_a_network_that_cannot_take_the_frames_fails_before_the_run_folder_exists(tmp_path):
    result = run_cli("rlkit.train", "env=doom", "env.size=[16,16]", f"run_dir={tmp_path / 'x'}")
    assert result.returncode == 2
    assert result.stderr.startswith("error: model cnn cannot take observations of shape (4, 1, 16, 16)")
    assert not (tmp_path / "x").exists()


def test_unwritable_run_dir_missing_cuda_and_missing_box2d_are_one_line_errors(tmp_path, monkeypatch):
    import gymnasium as gym

    from rlkit.config import UsageError, load_config
    from rlkit.envs import make_env
    from rlkit.train import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot create run folder"):
        main(["env=cartpole", f"run_dir={blocker / 'run'}"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="device=cuda but CUDA is not available here; choose from: auto, cpu"):
        main(["env=cartpole", "device=cuda", f"run_dir={tmp_path / 'c'}"])

    def no_box2d(*args, **kwargs):
        raise gym.error.DependencyNotInstalled("Box2D is not installed")

    monkeypatch.setattr(gym, "make", no_box2d)
    with pytest.raises(UsageError, match=r"LunarLander-v3 needs an optional package: pip install -e '.\[box2d\]'"):
        make_env(load_config(["env=lunarlander"]).env)
    with pytest.raises(UsageError, match=r"algo.gamma must be in \[0, 1\], got 2.0"):
        load_config(["algo.gamma=2"])


def test_async_rollout_runs_are_repeatable_and_differ_from_synchronous_ones(train):
    """The thread's timing never reaches the numbers: the rollout samples from its own seeded
    stream. And the lag is real: the same seed without it learns other weights."""
    a = train("env=cartpole", "total_steps=1024", "seed=7", "async_rollout=true", name="a")
    b = train("env=cartpole", "total_steps=1024", "seed=7", "async_rollout=true", name="b")
    c = train("env=cartpole", "total_steps=1024", "seed=7", name="c")
    wa, wb, wc = (load_file(str(checkpoint.latest(r))) for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k.startswith("model."))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa if k.startswith("model."))
