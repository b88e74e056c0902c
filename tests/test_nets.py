import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlkit.config import UsageError, load_config
from rlkit.nets import make_policy

IMAGE = gym.spaces.Box(0, 255, (4, 1, 64, 64), np.uint8)   # stacked gray Doom frames
ATARI = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
VECTOR = gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
MODELS = ["cnn", "impala", "mlp", "transformer"]


def policy_for(model, space, actions=5):
    cfg = load_config([f"model={model}"])
    return make_policy(cfg.model, space, gym.spaces.Discrete(actions))


def sample(space, batch):
    return torch.as_tensor(np.stack([space.sample() for _ in range(batch)]))


@pytest.mark.parametrize("space", [IMAGE, ATARI, VECTOR], ids=["doom", "atari", "vector"])
@pytest.mark.parametrize("model", MODELS)
def test_output_shapes(model, space):
    policy = policy_for(model, space)
    logits, value = policy(sample(space, 3))
    assert logits.shape == (3, 5) and value.shape == (3,)
    assert logits.dtype == value.dtype == torch.float32
    logits.sum().backward()  # gradients reach the encoder
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.encoder.parameters())


@pytest.mark.parametrize("model", MODELS)
def test_masked_actions_are_never_sampled(model):
    torch.manual_seed(0)
    policy = policy_for(model, VECTOR, actions=4)
    obs = sample(VECTOR, 256)
    mask = torch.zeros(256, 4, dtype=torch.bool)
    mask[:, 1] = True
    mask[::2, 3] = True
    logits, _ = policy(obs, mask)
    dist = torch.distributions.Categorical(logits=logits)
    actions = dist.sample((50,))
    assert mask.gather(1, actions.T).all()
    assert torch.all(dist.probs[~mask] == 0)
    assert torch.isfinite(dist.entropy()).all()


def test_amp_bfloat16_runs_and_returns_float32():
    policy = policy_for("cnn", ATARI)
    policy.amp_dtype = torch.bfloat16
    logits, value = policy(sample(ATARI, 2))
    assert logits.dtype == value.dtype == torch.float32


def test_transformer_patch_larger_than_frame_is_an_error():
    cfg = OmegaConf.merge(load_config(["model=transformer"]).model, {"patch": 128})
    with pytest.raises(UsageError, match="patch 128 is larger"):
        make_policy(cfg, IMAGE, gym.spaces.Discrete(3))


def test_frames_too_small_for_the_cnn_are_a_one_line_error():
    with pytest.raises(UsageError, match=r"model cnn cannot take observations of shape \(4, 1, 16, 16\)"):
        policy_for("cnn", gym.spaces.Box(0, 255, (4, 1, 16, 16), np.uint8))


@pytest.mark.parametrize("space", [IMAGE, ATARI], ids=["doom", "atari"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("amp", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_a_prepared_batch_gives_exactly_what_raw_frames_give(model, space, amp):
    # PPO converts a rollout's frames once (`prepare`) and indexes minibatches out of it.
    torch.manual_seed(0)
    policy = policy_for(model, space)
    policy.amp_dtype = amp
    frames = sample(space, 6)
    prepared = policy.prepare(frames)
    idx = torch.tensor([4, 1, 3])
    for got, want in zip(policy(prepared[idx]), policy(frames[idx])):
        assert torch.equal(got, want)
    if amp is not None and model in ("cnn", "impala"):
        assert prepared.dtype == amp  # converted once, not again for every minibatch


@pytest.mark.parametrize("core", ["none", "lstm"])
def test_a_critic_network_of_its_own_shares_no_layer_with_the_actor(core):
    cfg = load_config(["model=cnn", f"model.core={core}", "model.critic_encoder=true"])
    policy = make_policy(cfg.model, IMAGE, gym.spaces.Discrete(3))
    assert (policy.critic_core is not None) == policy.recurrent  # with memory, the critic has its own
    obs = sample(IMAGE, 4)
    state, starts = policy.initial_state(4), torch.zeros(4, dtype=torch.bool)
    for out, mine in ((0, lambda n: not n.startswith("critic")), (1, lambda n: n.startswith("critic"))):
        policy.zero_grad(set_to_none=True)
        policy(obs, None, state, starts)[out].sum().backward()  # logits (0), then the value (1)
        touched = {n for n, p in policy.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert touched and all(mine(n) for n in touched), sorted(touched)
