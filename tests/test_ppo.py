"""PPO's loss, where learning is decided, against values computed by hand: the clipped surrogate,
value clipping, the KL estimate, and target_kl's early stop."""
import math

import pytest
import torch
from omegaconf import OmegaConf

from rlkit.algos import ppo
from rlkit.nets import Memoryless


def test_clipped_surrogate_takes_the_pessimistic_side_of_the_clip():
    ratio = torch.tensor([0.5, 1.0, 1.5, 1.5, 0.7])
    adv = torch.tensor([1.0, -1.0, 2.0, -2.0, -1.0])
    # By hand, with clip 0.2: max(-A r, -A clip(r, 0.8, 1.2)) per sample.
    #   r=0.5, A=1:  max(-0.5, -0.8) = -0.5    (below the clip with A > 0: the unclipped, worse, term)
    #   r=1.0, A=-1: max(1.0, 1.0)  = 1.0
    #   r=1.5, A=2:  max(-3.0, -2.4) = -2.4    (above the clip with A > 0: no credit past 1.2)
    #   r=1.5, A=-2: max(3.0, 2.4)  = 3.0      (above the clip with A < 0: the full penalty)
    #   r=0.7, A=-1: max(0.7, 0.8)  = 0.8      (below the clip with A < 0: no credit past 0.8)
    want = torch.tensor([-0.5, 1.0, -2.4, 3.0, 0.8])
    assert torch.allclose(ppo.clipped_surrogate(ratio, adv, 0.2), want)


def test_value_clipping_keeps_the_larger_error():
    old = torch.tensor([1.0, 1.0, 1.0, 1.0])
    value = torch.tensor([2.0, 0.5, 1.5, 1.1])
    ret = torch.tensor([0.0, 2.0, 2.0, 2.0])
    # clipped value = old + clip(value - old, -0.2, 0.2): 1.2, 0.8, 1.2, 1.1
    #   (2-0)^2 = 4    vs (1.2-0)^2 = 1.44 -> 4
    #   (0.5-2)^2 = 2.25 vs (0.8-2)^2 = 1.44 -> 2.25
    #   (1.5-2)^2 = 0.25 vs (1.2-2)^2 = 0.64 -> 0.64  (the clip holds the value back from the return)
    #   (1.1-2)^2 = 0.81 vs (1.1-2)^2 = 0.81 -> 0.81
    assert torch.allclose(ppo.value_loss(value, old, ret, 0.2), torch.tensor([4.0, 2.25, 0.64, 0.81]))
    assert torch.allclose(ppo.value_loss(value, old, ret, None), torch.tensor([4.0, 2.25, 0.25, 0.81]))


def test_approx_kl_is_the_low_variance_estimator():
    log_ratio = torch.tensor([math.log(0.5), math.log(1.5), 0.0])
    # ((r - 1) - log r): 0.5 - 1 + 0.693147 = 0.193147; 1.5 - 1 - 0.405465 = 0.094535; 0
    assert ppo.approx_kl(log_ratio).item() == pytest.approx((0.193147 + 0.094535) / 3, abs=1e-6)


def batch_of(n=64, actions=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(n, 1, 3, generator=g), "actions": torch.randint(actions, (n, 1), generator=g),
            "logprobs": torch.full((n, 1), -math.log(actions)), "values": torch.zeros(n, 1),
            "rewards": torch.randn(n, 1, generator=g), "dones": torch.zeros(n, 1), "last_value": torch.zeros(1)}


class Uniform(Memoryless, torch.nn.Module):
    """Starts as a uniform policy (log-probabilities -log 2, as the batch says) with zero values."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3, 3)
        torch.nn.init.zeros_(self.net.weight)
        torch.nn.init.zeros_(self.net.bias)

    def forward(self, obs, mask=None):
        out = self.net(obs)
        return out[:, :2], out[:, 2]

    def prepare(self, obs):
        return obs


CFG = dict(gamma=0.99, gae_lambda=0.95, epochs=10, minibatches=4, clip_coef=0.2, clip_vloss=True, norm_adv=True,
           ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, target_kl=None)


@pytest.mark.parametrize("target_kl, steps", [(None, 40), (1e-9, 4)])
def test_target_kl_stops_the_epochs_once_the_policy_has_moved(target_kl, steps, monkeypatch):
    """Ten epochs of four minibatches: all 40 steps, or with a tiny target_kl only the first epoch's
    four (its last minibatch sees a policy already moved by three steps, so its KL is above 1e-9)."""
    calls = []
    real = ppo.step
    monkeypatch.setattr(ppo, "step", lambda *a: (calls.append(1), real(*a)))
    policy = Uniform()
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    stats = ppo.update(policy, opt, batch_of(), OmegaConf.create({**CFG, "target_kl": target_kl}))
    assert len(calls) == steps
    assert stats["stats/approx_kl"] > 0 if target_kl else True


def test_the_first_ratio_is_one_and_no_sample_is_clipped(monkeypatch):
    """On-policy, before any step: every ratio is exactly 1, so nothing is clipped and the KL is 0."""
    policy = Uniform()
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    stats = ppo.update(policy, opt, batch_of(), OmegaConf.create({**CFG, "epochs": 1, "minibatches": 1}))
    assert stats["stats/approx_kl"] == 0.0 and stats["stats/clipfrac"] == 0.0
