"""REINFORCE (Williams 1992), the algorithm of Karpathy's "Pong from Pixels": one policy-gradient
step per batch of whole episodes, each step weighted by its reward-to-go (the discounted return
from it to the episode's end), less a learned baseline with `algo.baseline`, normalized over the
batch, plus an entropy bonus.

Batches (`EpisodeBatches`): the games are stepped `algo.num_steps` at a time until
`algo.batch_episodes` episodes have ended; the update learns from every step of those episodes.
Steps of episodes still running are kept and learned from in the batch where their episode ends
(at most `algo.max_carry` steps a game: longer, the oldest are dropped). Those were played by an
earlier policy, so each is weighted by min(1, pi/mu), its truncated importance ratio; the steps
the current policy played weigh exactly 1.

The baseline is the value head reading the policy's features detached: its loss trains that head
(and `model.critic_core`, when the critic has a core of its own) and never moves the policy. A
policy with memory learns through time, over the batch replayed from its stored states."""
from __future__ import annotations

import torch

from rlkit.algos.common import explained_variance, layout, normalize, step
from rlkit.nets import logp_entropy_value
from rlkit.rollout import make_rollout

ASYNC_ROLLOUT = False  # no correction for a rollout collected by an older policy
AUGMENT = False
# A batch's tensors over time ([T, N, ...]), joined across rollouts; the rest describe its end.
IN_TIME = ("obs", "actions", "logprobs", "values", "starts", "states", "masks", "rewards", "dones")


def make_collector(cfg, device, seed):
    """Batches of whole episodes from the on-policy rollouts of `cfg.runner`."""
    # A baseline can bootstrap a truncated episode (a time limit) from its value.
    return EpisodeBatches(make_rollout(cfg, device, seed, bootstrap=cfg.algo.baseline), cfg.algo.batch_episodes,
                          cfg.algo.max_carry)


def ended(dones: torch.Tensor) -> torch.Tensor:
    """[T, N] bool: the steps whose episode ends within these T steps (a done at or after them)."""
    return dones.flip(0).cummax(0).values.flip(0).bool()


class EpisodeBatches:
    """A Collector: rollouts gathered until `batch_episodes` episodes have ended since the last
    batch, joined in time. `fresh` marks the steps not yet learned from; the rollouts that hold
    a step of an episode still running are carried into the next batch."""

    def __init__(self, rollouts, batch_episodes: int, max_carry: int):
        self.rollouts, self.batch_episodes, self.max_carry = rollouts, batch_episodes, max_carry
        self.carry: list[tuple[dict, torch.Tensor]] = []  # (rollout, steps learned from)
        self.num_envs = rollouts.num_envs
        self.observation_space, self.action_space = rollouts.observation_space, rollouts.action_space
        self.pool = rollouts.pool

    @property
    def restarts(self) -> int:
        return self.rollouts.restarts

    def collect(self, policy) -> tuple[dict, list[tuple[float, int]]]:
        episodes, ends, steps = [], 0, 0
        while ends < self.batch_episodes:
            batch, finished = self.rollouts.collect(policy)
            episodes += finished
            ends += int(batch["dones"].sum())
            steps += batch["dones"].numel()
            self.carry.append((batch, torch.zeros_like(batch["dones"], dtype=torch.bool)))
            self._trim()
        parts = [b for b, _ in self.carry]
        joined = {k: torch.cat([b[k] for b in parts]) if k in IN_TIME else v for k, v in parts[-1].items()}
        learned = torch.cat([seen for _, seen in self.carry])
        joined["fresh"], joined["steps"] = ~learned, steps  # steps: the agent steps this batch cost
        done = ended(joined["dones"]) | learned
        # Carry the rollouts from the first that holds a step of an episode still running.
        bounds = torch.tensor([0] + [len(b["dones"]) for b in parts]).cumsum(0)
        running = [not done[a:b].all() for a, b in zip(bounds[:-1], bounds[1:])]
        first = running.index(True) if any(running) else len(parts)
        self.carry = [(b, done[a:z]) for b, a, z in zip(parts[first:], bounds[first:-1], bounds[first + 1:])]
        self._trim()
        return joined, episodes

    def _trim(self) -> None:
        """Past `max_carry` steps a game, the oldest rollouts go: an episode longer than that is
        learned from its last steps only (the newest rollout always stays)."""
        while len(self.carry) > 1 and sum(len(b["dones"]) for b, _ in self.carry) > self.max_carry:
            self.carry.pop(0)

    def state(self) -> dict | None:
        return self.rollouts.state()

    def load_state(self, state: dict) -> None:
        self.rollouts.load_state(state)

    def close(self) -> None:
        self.rollouts.close()


def mc_returns(rewards, dones, gamma: float):
    """Discounted returns to go within each episode. Returns (returns, complete): steps of an
    episode still running at the end of the batch have an unknown return (complete=0)."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running * (1.0 - dones[t])
        returns[t] = running
    return returns, ended(dones).to(rewards.dtype)


def update(policy, optimizer, batch, cfg) -> dict:
    ret, complete = mc_returns(batch["rewards"], batch["dones"], cfg.gamma)
    keep = complete.bool() & batch.get("fresh", torch.ones_like(complete, dtype=torch.bool))
    if not keep.any():  # no episode ended in this batch: nothing to learn from yet
        return {"stats/used_fraction": 0.0}
    data = dict(obs=batch["obs"], actions=batch["actions"], behaviour=batch["logprobs"], ret=ret, keep=keep)
    if "masks" in batch:
        data["masks"] = batch["masks"]
    # Memory: the whole batch replayed from its stored states (the steps kept out, of episodes
    # unfinished or already learned from, are passed through without learning from them).
    data, _, memory = layout(policy, batch, data)
    keep = data.pop("keep")
    if not memory:  # only the steps learned from are evaluated
        data = {k: v[keep] for k, v in data.items()}
    getattr(policy, "_orig_mod", policy).critic_detached = True  # (through torch.compile's wrapper)

    def evaluate():
        out = logp_entropy_value(policy, data["obs"], data["actions"], data.get("masks"), **memory)
        return [x[keep] for x in out] if memory else out

    logp, entropy, value = evaluate()
    ret, behaviour = (data[k][keep] if memory else data[k] for k in ("ret", "behaviour"))
    weight = (logp.detach() - behaviour).exp().clamp(max=1.0)  # truncated importance ratio: 1 on-policy
    adv = ret - value.detach() if cfg.baseline else ret
    if cfg.norm_adv:
        adv = normalize(adv)
    pg_loss = -(weight * logp * adv).mean()
    v_loss = 0.5 * ((value - ret) ** 2).mean() if cfg.baseline else torch.zeros(())
    entropy = entropy.mean()
    step(policy, optimizer, pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss, cfg.max_grad_norm)
    # More steps for the baseline alone, on the returns its advantages were taken from: only the
    # critic's layers get gradients, and Adam steps only parameters that have one.
    for _ in range(cfg.baseline_epochs - 1 if cfg.baseline else 0):
        step(policy, optimizer, cfg.vf_coef * 0.5 * ((evaluate()[2] - ret) ** 2).mean(), cfg.max_grad_norm)
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item(),
            "stats/used_fraction": keep.float().mean().item(), "stats/importance_weight": weight.mean().item(),
            "stats/explained_variance": explained_variance(value.detach(), ret)}
