"""What only a GPU can check; these run where CUDA is available (the device machine), and are
skipped, not counted, elsewhere."""
import pytest
import torch

from rlkit.config import load_config
from rlkit.envs import make_groups
from rlkit.nets import make_policy
from rlkit.rollout import Rollout

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize(("env", "amp"), [("cartpole", False), ("cartpole", True), ("pong", True),
                                          ("cartpole_masked", False)])
def test_cuda_graph_collects_exactly_what_the_uncaptured_policy_does(env, amp):
    """Two rollouts from the same seed, one acting through CUDA graphs, one not, with an update of
    the weights in place between the two collections: the same actions, log-probabilities,
    values and frames, bit for bit."""
    cfg = load_config([f"env={env}", "num_envs=8", "algo.num_steps=32", f"overlap={env == 'pong'}",
                       f"model.core={'lstm' if env == 'cartpole_masked' else 'none'}"])  # a state in the graph
    dev = torch.device("cuda")
    batches = []
    for graphed in (True, False):
        torch.manual_seed(0)
        envs = make_groups(cfg)
        first = envs[0] if isinstance(envs, list) else envs
        policy = make_policy(cfg.model, first.single_observation_space, first.single_action_space).to(dev)
        policy.amp_dtype = torch.bfloat16 if amp else None
        rollout = Rollout(envs, dev, 32, seed=0, generator=torch.Generator(dev).manual_seed(1))
        if not graphed:
            rollout._graphed = lambda *a: None
        got = [rollout.collect(policy)[0]]
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.01 * torch.randn_like(p))
        got.append(rollout.collect(policy)[0])
        made = [g for per_policy in rollout.graphs.values() for g in per_policy.values()]
        assert bool(made) == graphed and all(made)
        rollout.close()
        batches.append(got)
    for with_graph, without in zip(*batches):
        for k in ("actions", "logprobs", "values", "obs", "rewards", "dones", "states"):
            assert torch.equal(with_graph[k], without[k]), k
    assert not torch.equal(batches[0][0]["actions"], batches[0][1]["actions"])


def test_training_on_cuda_with_async_rollout(tmp_path):
    from rlkit.train import main

    run = main(["env=cartpole", "device=cuda", "amp=true", "async_rollout=true", "num_envs=8",
                "total_steps=4096", f"run_dir={tmp_path / 'run'}", "progress=false"])
    assert (run / "checkpoints" / "final.safetensors").exists()


def test_alphazero_searches_and_trains_on_cuda(tmp_path):
    """algo=alphazero with the network on the GPU: the search's positions go there and back
    every simulation, the window's minibatches go there for the update."""
    from rlkit.train import main

    run = main(["env=connect_four", "algo=alphazero", "device=cuda", "num_envs=16", "algo.sims=8",
                "algo.batch_size=64", "total_steps=1024", f"run_dir={tmp_path / 'az'}", "progress=false"])
    assert (run / "checkpoints" / "final.safetensors").exists()
