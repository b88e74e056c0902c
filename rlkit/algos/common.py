"""What the learners share: one optimizer step, advantage normalization, explained variance,
and the layout of a batch for a policy with memory."""
from __future__ import annotations

import torch
from torch import nn


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x - x.mean()


UNSCALED = torch.amp.GradScaler("cpu", enabled=False)  # a scaler that passes everything through


def step(policy: nn.Module, optimizer, loss: torch.Tensor, max_grad_norm: float) -> None:
    """One clipped optimizer step; under fp16 (the policy's `grad_scaler`), on the scaled loss,
    skipped when the gradients overflowed."""
    optimizer.zero_grad(set_to_none=True)
    scaler = getattr(policy, "grad_scaler", None) or UNSCALED
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)


def sequences(x: torch.Tensor, chunks: int) -> torch.Tensor:
    """[T, N, ...] -> [T / chunks, chunks * N, ...]: each column one chunk of one game's steps,
    in the order of a rollout's `states` ([chunks, N, S] flattened to [chunks * N, S])."""
    return x.unflatten(0, (chunks, -1)).transpose(0, 1).flatten(1, 2)


def unsequence(x: torch.Tensor, chunks: int) -> torch.Tensor:
    """The inverse of `sequences`: [T / chunks, chunks * N, ...] -> [T, N, ...]."""
    return x.unflatten(1, (chunks, -1)).transpose(0, 1).flatten(0, 1)


def _ordinary(x: torch.Tensor) -> torch.Tensor:
    return x.clone() if x.is_inference() else x


def layout(policy, batch: dict, data: dict) -> tuple[dict, int, dict]:
    """`data`'s [T, N, ...] tensors as samples along one axis: flattened to [T * N, ...] (axis 0)
    for a policy without memory; for one with memory, as sequences [seq_len, chunks * N, ...]
    (axis 1) beside the states they start from. Returns (data, axis, what the policy needs
    besides: {"state", "starts"}, or {})."""
    if not policy.recurrent:
        return {k: v.flatten(0, 1) for k, v in data.items()}, 0, {}
    chunks = batch["states"].shape[0]
    # A rollout's tensors come from inference mode; autograd keeps only ordinary ones (a view, as
    # with one chunk, would still be an inference tensor).
    data = {k: _ordinary(sequences(v, chunks)) for k, v in data.items()}
    return data, 1, {"state": batch["states"].flatten(0, 1), "starts": sequences(batch["starts"], chunks)}


def pick(data: dict, memory: dict, axis: int, idx: torch.Tensor) -> tuple[dict, dict]:
    """The samples `idx` (steps, or whole sequences) of `layout`'s data and memory."""
    return ({k: v.index_select(axis, idx) for k, v in data.items()},
            {"state": memory["state"][idx], "starts": memory["starts"][:, idx]} if memory else {})
