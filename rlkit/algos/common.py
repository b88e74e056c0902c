"""What the learners share: one optimizer step, advantage normalization and explained variance."""
from __future__ import annotations

import torch
from torch import nn


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
