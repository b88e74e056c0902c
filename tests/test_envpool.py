"""EnvPool, the fast Atari backend, against the Gymnasium path. ale_py and EnvPool crash each
other in one process, so each trajectory is recorded in its own."""
import subprocess
import sys

import numpy as np
import pytest

from rlkit.config import UsageError, load_config
from rlkit.envs import backend
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow  # Atari on EnvPool's threads, each test in a process of its own

pytest.importorskip("envpool")

# No random no-ops, and no fire reset: SB3's presses FIRE then UP, EnvPool's FIRE only.
SETTINGS = ["env=pong", "num_envs=2", "env.noop_max=0", "env.fire_reset=false", "env.max_episode_steps=100"]


def trajectory(which: str, path: str, steps: int = 250) -> None:
    from rlkit.envs import make_vec

    envs = make_vec(load_config([*SETTINGS, f"env.backend={which}"]))
    obs, _ = envs.reset(seed=1)
    rng = np.random.default_rng(0)
    frames, rewards, dones, episodes, finals = [obs], [], [], [], []
    for t in range(steps):
        obs, reward, terminated, truncated, info = envs.step(rng.integers(0, 6, 2))
        frames.append(obs)
        rewards.append(reward)
        dones.append(np.stack([terminated, truncated]))
        if "final_info" in info:
            done = terminated | truncated
            finals.append(np.stack(info["final_obs"][done]))
            ep = info["final_info"]
            episodes.append([t, *ep["episode"]["r"][ep["_episode"]], *ep["episode"]["l"][ep["_episode"]]])
    np.savez(path, frames=np.array(frames), rewards=np.array(rewards), dones=np.array(dones),
             episodes=np.array(episodes), finals=np.array(finals))


def record(which, tmp_path):
    path = tmp_path / f"{which}.npz"
    subprocess.run([sys.executable, "-c", f"from tests.test_envpool import trajectory; "
                    f"trajectory({which!r}, {str(path)!r})"], cwd=ROOT, check=True, capture_output=True)
    return np.load(path)


def test_envpool_and_gymnasium_atari_agree(tmp_path):
    pool, gym = record("envpool", tmp_path), record("gymnasium", tmp_path)
    np.testing.assert_array_equal(pool["rewards"], gym["rewards"])
    np.testing.assert_array_equal(pool["dones"], gym["dones"])
    np.testing.assert_array_equal(pool["episodes"], gym["episodes"])  # when, game scores and lengths
    assert len(pool["episodes"]) == 2 and pool["rewards"].any()       # truncations at 100 and 200, points scored
    assert pool["frames"].shape == gym["frames"].shape == (251, 2, 4, 84, 84)
    # Same frames up to the two libraries' gray conversion and resize at object edges.
    for a, b in ((pool["frames"], gym["frames"]), (pool["finals"], gym["finals"])):
        differ = np.abs(a.astype(int) - b.astype(int)) > 0
        assert differ.mean() < 0.01


def test_backend_choice():
    assert backend(load_config(["env=pong"]).env) == "envpool"  # installed: the default
    assert backend(load_config(["env=pong", "env.backend=gymnasium"]).env) == "gymnasium"
    assert backend(load_config(["env=cartpole"]).env) == "gymnasium"
    with pytest.raises(UsageError, match="env.backend must be one of: auto, envpool, gymnasium"):
        backend(load_config(["env=pong", "env.backend=fast"]).env)


def test_training_and_evaluation_videos_on_envpool(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = run_cli("rlkit.train", "env=pong", "num_envs=2", "algo.num_steps=32", "total_steps=64",
                     "video_every=64", "video_length=30", f"run_dir={run}", "progress=false")
    assert result.returncode == 0, result.stderr[-2000:]
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [i.step for i in events.Images("eval/video")] == [64]
    assert [s.value for s in events.Scalars("eval/length")] == [30.0]


def overlapped_envpool_batches():
    """Run in its own process: Pong collected by two EnvPool halves in turn (overlap=true) and
    by one EnvPool of all four games must be the same batch."""
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy
    from tests.test_rollout import assert_same_batches, collect_twice

    whole = load_config(["env=pong", "num_envs=4", "env.max_episode_steps=20"])
    halves = make_groups(load_config(["env=pong", "num_envs=4", "env.max_episode_steps=20", "overlap=true"]))
    assert [h.num_envs for h in halves] == [2, 2] and all(hasattr(h, "step_async") for h in halves)
    policy = make_policy(whole.model, halves[0].single_observation_space, halves[0].single_action_space)
    overlapped = collect_twice(halves, policy, num_steps=32)
    assert_same_batches(collect_twice(make_groups(whole), policy, num_steps=32), overlapped)
    assert len(overlapped[0][1]) == 4  # every game cut at 20 steps inside the rollout, and restarted


def test_overlapped_envpool_halves_collect_the_batch_of_one_pool():
    result = subprocess.run([sys.executable, "-c", "from tests.test_envpool import overlapped_envpool_batches; "
                             "overlapped_envpool_batches()"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
