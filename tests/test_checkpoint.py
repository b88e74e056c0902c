import os
import pickle
import random

import numpy as np
import pytest
import torch

import rlkit
from rlkit import checkpoint
from rlkit.config import UsageError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from rlkit.train import main

    return main(["env=cartpole", "total_steps=256", "progress=false",
                 f"run_dir={tmp_path_factory.mktemp('ckpt') / 'run'}"])


def test_checkpoint_is_self_describing(run_dir):
    ckpt = checkpoint.load(checkpoint.latest(run_dir))
    assert ckpt["config"].env.name == "cartpole"
    assert ckpt["spaces"] == {"obs_shape": [4], "obs_dtype": "float32", "num_actions": 2}
    assert ckpt["counters"]["step"] == 256
    assert set(ckpt["rng"]) == {"python", "numpy", "torch"}
    checkpoint.restore_rng(ckpt["rng"])  # the saved RNG states are valid states


def test_agent_acts_greedily_and_respects_masks(run_dir):
    agent = rlkit.load_agent(run_dir / "checkpoints" / "final.safetensors")
    obs = np.zeros(4, np.float32)
    assert agent.act(obs, deterministic=True) == agent.act(obs, deterministic=True)
    assert {agent.act(obs, action_mask=[False, True]) for _ in range(50)} == {1}


def test_checkpoint_truncated_at_random_offsets_never_loads_silently(run_dir, tmp_path):
    data = checkpoint.latest(run_dir).read_bytes()
    rng = random.Random(0)
    cuts = [0, 1, 8, 9, len(data) - 1] + rng.sample(range(10, len(data) - 1), 40)
    bad = tmp_path / "bad.safetensors"
    for cut in cuts:
        bad.write_bytes(data[:cut])
        with pytest.raises(UsageError, match="not a valid rlkit checkpoint"):
            rlkit.load_agent(bad)


def test_flipped_header_bytes_are_refused(run_dir, tmp_path):
    data = bytearray(checkpoint.latest(run_dir).read_bytes())
    data[20:30] = b"\xff" * 10  # inside the JSON header
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="not a valid rlkit checkpoint"):
        rlkit.load_agent(bad)


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Exploit()))
    torch.save({"x": Exploit()}, tmp_path / "evil.pt")
    for path in (evil, tmp_path / "evil.pt"):
        with pytest.raises(UsageError):
            rlkit.load_agent(path)
    assert not marker.exists()


def test_a_run_folder_without_checkpoints_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="holds no checkpoint"):
        rlkit.load_agent(tmp_path)


def test_weights_of_another_network_are_refused(run_dir, tmp_path):
    ckpt = checkpoint.load(checkpoint.latest(run_dir))
    from omegaconf import OmegaConf

    from rlkit.agent import rebuild_spaces
    from rlkit.nets import make_policy

    cfg = OmegaConf.merge(ckpt["config"], {"model": {"hidden": 32}})
    obs_space, act_space = rebuild_spaces(ckpt["spaces"])
    other = make_policy(cfg.model, obs_space, act_space)
    opt = torch.optim.Adam(other.parameters())
    path = checkpoint.save(tmp_path / "other.safetensors", other, opt, ckpt["config"], ckpt["spaces"], {"step": 0})
    with pytest.raises(UsageError, match="do not fit"):
        rlkit.load_agent(path)


def test_an_empty_tensor_is_written_and_its_digest_checked(tmp_path):
    """A self-play window before its first game ends holds no positions (an empty selection of
    its arrays, whose stride is 0): the file still writes, and its digest still checks shapes."""
    from safetensors.torch import load_file

    empty = torch.from_numpy(np.zeros(4, np.float32)[np.arange(0)])  # as the window's state() gives it
    meta = {"format": "test"}
    path = checkpoint.write(tmp_path / "empty.safetensors", {"window.z": empty, "w": torch.ones(3)}, meta)
    assert checkpoint.digest(load_file(path), meta) == checkpoint.digest({"window.z": empty, "w": torch.ones(3)}, meta)
    assert checkpoint.digest({"window.z": torch.zeros(0, 2), "w": torch.ones(3)}, meta) != \
        checkpoint.digest({"window.z": empty, "w": torch.ones(3)}, meta)
