"""REINFORCE (Williams 1992), as in the classic Pong-from-pixels agent: one gradient step per
rollout on Monte-Carlo returns of whole episodes, optionally minus a learned value baseline,
plus an entropy bonus. Steps of episodes not finished inside the rollout are left out."""
from __future__ import annotations

import torch

from rlkit.algos.common import evaluate, explained_variance, normalize, step
from rlkit.rollout import mc_returns


def update(policy, optimizer, batch, cfg) -> dict:
    ret, complete = mc_returns(batch["rewards"], batch["dones"], cfg.gamma)
    keep = complete.flatten().bool()
    if not keep.any():  # no episode ended in this rollout: nothing to learn from yet
        return {"stats/used_fraction": 0.0}
    obs, actions = batch["obs"].flatten(0, 1)[keep], batch["actions"].flatten()[keep]
    ret = ret.flatten()[keep]
    masks = batch["masks"].flatten(0, 1)[keep] if "masks" in batch else None
    logp, entropy, value = evaluate(policy, obs, actions, masks)
    adv = ret - value.detach() if cfg.baseline else ret
    if cfg.norm_adv:
        adv = normalize(adv)
    pg_loss = -(logp * adv).mean()
    v_loss = 0.5 * ((value - ret) ** 2).mean() if cfg.baseline else torch.zeros(())
    entropy = entropy.mean()
    step(policy, optimizer, pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss, cfg.max_grad_norm)
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item(),
            "stats/used_fraction": keep.float().mean().item(),
            "stats/explained_variance": explained_variance(value.detach(), ret)}
