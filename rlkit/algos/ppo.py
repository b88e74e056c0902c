"""PPO (Schulman et al. 2017) with the details that matter (Huang et al. 2022): GAE,
clipped surrogate, optional value clipping, entropy bonus, gradient clipping, minibatch
epochs, optional target-KL early stop, per-minibatch advantage normalization."""
from __future__ import annotations

import torch

from rlkit.algos.common import evaluate, explained_variance, normalize, step
from rlkit.rollout import advantages


def update(policy, optimizer, batch, cfg) -> dict:
    adv, ret = advantages(batch["rewards"], batch["values"], batch["dones"], batch["last_value"],
                          cfg.gamma, cfg.gae_lambda)
    obs, actions = policy.prepare(batch["obs"].flatten(0, 1)), batch["actions"].flatten()
    old_logp, old_v = batch["logprobs"].flatten(), batch["values"].flatten()
    # async_rollout: another (older) policy collected the batch. Decoupled PPO (Hilton et al. 2021):
    # clip against the policy about to be updated ("proximal"), as synchronous PPO does, and weight
    # each sample by proximal / behaviour probability; with no lag the weights are exactly 1.
    weights = None
    if "prox_logprobs" in batch:
        prox = batch["prox_logprobs"].flatten()
        weights, old_logp = (prox - old_logp).exp(), prox
    adv, ret = adv.flatten(), ret.flatten()
    masks = batch["masks"].flatten(0, 1) if "masks" in batch else None
    size = actions.shape[0]
    mb = max(1, size // cfg.minibatches)
    kls, clipfracs = [], []
    for _ in range(cfg.epochs):
        for idx in torch.randperm(size, device=actions.device).split(mb):
            logp, entropy, value = evaluate(policy, obs[idx], actions[idx], None if masks is None else masks[idx])
            log_ratio = logp - old_logp[idx]
            ratio = log_ratio.exp()
            with torch.no_grad():
                kls.append(((ratio - 1) - log_ratio).mean())
                clipfracs.append(((ratio - 1).abs() > cfg.clip_coef).float().mean())
            a = normalize(adv[idx]) if cfg.norm_adv else adv[idx]
            pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
            pg_loss = (pg_loss if weights is None else pg_loss * weights[idx]).mean()
            v_loss = (value - ret[idx]) ** 2
            if cfg.clip_vloss:
                clipped = old_v[idx] + (value - old_v[idx]).clamp(-cfg.clip_coef, cfg.clip_coef)
                v_loss = torch.max(v_loss, (clipped - ret[idx]) ** 2)
            v_loss = 0.5 * v_loss.mean()
            entropy = entropy.mean()
            step(policy, optimizer, pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss, cfg.max_grad_norm)
        if cfg.target_kl is not None and kls[-1] > cfg.target_kl:
            break
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item(),
            "stats/approx_kl": kls[-1].item(), "stats/clipfrac": torch.stack(clipfracs).mean().item(),
            "stats/explained_variance": explained_variance(old_v, ret)}
