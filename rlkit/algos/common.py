"""What the learners share: action log-probabilities and entropy, one optimizer step,
advantage normalization and explained variance."""
from __future__ import annotations

import torch
from torch import nn

from rlkit.nets import log_policy


def evaluate(policy, obs, actions, masks=None):
    """Log-probabilities of `actions`, entropies and values under the current policy
    (illegal actions masked out, as when the actions were sampled)."""
    logits, value = policy(obs, masks)
    logp = log_policy(logits)
    return logp.gather(-1, actions[:, None].long()).squeeze(-1), -(logp.exp() * logp).sum(-1), value


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x - x.mean()


def step(policy: nn.Module, optimizer, loss: torch.Tensor, max_grad_norm: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
    optimizer.step()


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)
