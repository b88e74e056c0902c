"""PPO (Schulman et al. 2017) with the details that matter (Huang et al. 2022): GAE,
clipped surrogate, optional value clipping, entropy bonus, gradient clipping, minibatch
epochs, optional target-KL early stop, per-minibatch advantage normalization. A policy with memory
learns through time: its minibatches are whole sequences replayed from the rollout's states."""
from __future__ import annotations

import torch

from rlkit.algos.common import explained_variance, layout, normalize, pick, step
from rlkit.nets import logp_entropy_value
from rlkit.rollout import make_rollout

ASYNC_ROLLOUT = True  # the decoupled update below corrects async_rollout's one rollout of lag
AUGMENT = True        # ... and weights a batch's board-symmetry images as samples the policy did not play


def make_collector(cfg, device, seed):
    """On-policy rollouts; a truncated episode is bootstrapped from the value of its final observation."""
    return make_rollout(cfg, device, seed, bootstrap=True)


def advantages(rewards, values, dones, last_value, gamma: float, lam: float):
    """Generalized advantage estimation over [T, N] tensors. Returns (advantages, returns)."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        adv[t] = running
        next_value = values[t]
    return adv, adv + values


def clipped_surrogate(ratio, adv, clip: float):
    """Per sample, the pessimistic side of the clipped objective: max(-A r, -A clip(r, 1-e, 1+e))."""
    return torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))


def value_loss(value, old_value, ret, clip: float | None):
    """Per sample, the squared error to the return; with `clip`, the larger of it and the error of the
    value moved at most `clip` from the one the rollout saw."""
    loss = (value - ret) ** 2
    if clip is None:
        return loss
    clipped = old_value + (value - old_value).clamp(-clip, clip)
    return torch.max(loss, (clipped - ret) ** 2)


def approx_kl(log_ratio):
    """The KL estimate mean((r - 1) - log r) (Schulman's k3): unbiased, never negative."""
    return ((log_ratio.exp() - 1) - log_ratio).mean()


def update(policy, optimizer, batch, cfg) -> dict:
    adv, ret = advantages(batch["rewards"], batch["values"], batch["dones"], batch["last_value"],
                          cfg.gamma, cfg.gae_lambda)
    data = dict(obs=batch["obs"], actions=batch["actions"], old_logp=batch["logprobs"], old_v=batch["values"],
                adv=adv, ret=ret)
    # async_rollout: another (older) policy collected the batch. Decoupled PPO (Hilton et al. 2021):
    # clip against the policy about to be updated ("proximal"), as synchronous PPO does, and weight
    # each sample by proximal / behaviour probability; with no lag the weights are exactly 1.
    if "prox_logprobs" in batch:
        data["weights"], data["old_logp"] = (batch["prox_logprobs"] - batch["logprobs"]).exp(), batch["prox_logprobs"]
    if "masks" in batch:
        data["masks"] = batch["masks"]
    # Memory: minibatches of whole sequences (chunks of seq_len steps) replayed from their stored states.
    data, axis, memory = layout(policy, batch, data)
    if not memory:
        data["obs"] = policy.prepare(data["obs"])
    size = data["actions"].shape[axis]
    mb = max(1, size // cfg.minibatches)
    kls, clipfracs = [], []
    for _ in range(cfg.epochs):
        for idx in torch.randperm(size, device=adv.device).split(mb):
            d, m = pick(data, memory, axis, idx)
            logp, entropy, value = logp_entropy_value(policy, d.pop("obs"), d["actions"], d.pop("masks", None), **m)
            logp, entropy, value = logp.flatten(), entropy.flatten(), value.flatten()
            d = {k: v.flatten() for k, v in d.items()}
            log_ratio = logp - d["old_logp"]
            ratio = log_ratio.exp()
            with torch.no_grad():
                kls.append(approx_kl(log_ratio))
                clipfracs.append(((ratio - 1).abs() > cfg.clip_coef).float().mean())
            a = normalize(d["adv"]) if cfg.norm_adv else d["adv"]
            pg_loss = clipped_surrogate(ratio, a, cfg.clip_coef)
            pg_loss = (pg_loss * d["weights"] if "weights" in d else pg_loss).mean()
            v_loss = 0.5 * value_loss(value, d["old_v"], d["ret"], cfg.clip_coef if cfg.clip_vloss else None).mean()
            entropy = entropy.mean()
            step(policy, optimizer, pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss, cfg.max_grad_norm)
        if cfg.target_kl is not None and kls[-1] > cfg.target_kl:
            break
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item(),
            "stats/approx_kl": kls[-1].item(), "stats/clipfrac": torch.stack(clipfracs).mean().item(),
            "stats/explained_variance": explained_variance(batch["values"].flatten(), ret.flatten())}
