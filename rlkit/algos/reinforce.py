"""REINFORCE (Williams 1992), as in the classic Pong-from-pixels agent: one gradient step per
rollout on Monte-Carlo returns of whole episodes, optionally minus a learned value baseline,
plus an entropy bonus. Steps of episodes not finished inside the rollout are left out. A policy
with memory learns through time, over the rollout replayed from its stored states."""
from __future__ import annotations

import torch

from rlkit.algos.common import explained_variance, layout, normalize, step
from rlkit.nets import logp_entropy_value
from rlkit.rollout import make_rollout

ASYNC_ROLLOUT = False  # no correction for a rollout collected by an older policy
AUGMENT = False


def make_collector(cfg, device, seed):
    """On-policy rollouts; truncations are bootstrapped only with a learned baseline (a value to do it with)."""
    return make_rollout(cfg, device, seed, bootstrap=cfg.algo.baseline)


def mc_returns(rewards, dones, gamma: float):
    """Discounted Monte-Carlo returns within each episode. Returns (returns, complete): steps of
    an episode still running at the end of the rollout have an unknown return (complete=0)."""
    returns = torch.zeros_like(rewards)
    complete = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    seen_end = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        alive = 1.0 - dones[t]
        running = rewards[t] + gamma * running * alive
        seen_end = torch.maximum(seen_end, dones[t])
        returns[t], complete[t] = running, seen_end
    return returns, complete


def update(policy, optimizer, batch, cfg) -> dict:
    ret, complete = mc_returns(batch["rewards"], batch["dones"], cfg.gamma)
    if not complete.any():  # no episode ended in this rollout: nothing to learn from yet
        return {"stats/used_fraction": 0.0}
    data = dict(obs=batch["obs"], actions=batch["actions"], ret=ret, keep=complete.bool())
    if "masks" in batch:
        data["masks"] = batch["masks"]
    # Memory: the whole rollout replayed from its stored states (the steps still kept out are
    # only those of unfinished episodes, which the unroll passes through without learning from).
    data, _, memory = layout(policy, batch, data)
    keep = data.pop("keep")
    if not memory:  # only the steps with a known return are evaluated
        data = {k: v[keep] for k, v in data.items()}
    logp, entropy, value = logp_entropy_value(policy, data["obs"], data["actions"], data.get("masks"), **memory)
    ret = data["ret"]
    if memory:
        logp, entropy, value, ret = (x[keep] for x in (logp, entropy, value, ret))
    adv = ret - value.detach() if cfg.baseline else ret
    if cfg.norm_adv:
        adv = normalize(adv)
    pg_loss = -(logp * adv).mean()
    v_loss = 0.5 * ((value - ret) ** 2).mean() if cfg.baseline else torch.zeros(())
    entropy = entropy.mean()
    step(policy, optimizer, pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss, cfg.max_grad_norm)
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item(),
            "stats/used_fraction": complete.mean().item(),
            "stats/explained_variance": explained_variance(value.detach(), ret)}
