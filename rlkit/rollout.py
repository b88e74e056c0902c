"""Rollouts and their targets: `Rollout.collect()` steps the vector env with the policy and
returns [T, N, ...] tensors on the policy's device; `advantages()` (GAE) and `mc_returns()`
(Monte-Carlo, for REINFORCE) turn them into learning targets.

Conventions: `dones[t]` is true when the episode ended with step t (the next observation
starts a new episode, Gymnasium's SAME_STEP autoreset). A time-limit truncation is not a
real end: the value of the final observation, discounted, is added to that step's reward.

Action masks: an env that has illegal moves (board games) gives the legal ones as
`info["action_mask"]` ([N, A] bool) with every observation, on reset and on each step. They are
passed to the policy when sampling and kept in the batch (`masks`) for the update."""
from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Categorical


MAX_ENV_RESTARTS = 10


class Rollout:
    """Owns the vector env. If stepping it fails (a worker process died, the game crashed),
    `remake()` builds a new one, the episodes in flight end there (no bootstrap: their final
    observation is lost) and collection goes on; `restarts` counts these.

    This is the local runner's collector; `rlkit.distributed.RayCollector` has the same face
    (`collect`, `num_envs`, `restarts`, `close`) and runs one of these inside each Ray worker."""

    def __init__(self, envs, device: torch.device, num_steps: int, seed: int, remake=None):
        self.envs, self.device, self.T, self.seed, self.remake = envs, device, num_steps, seed, remake
        self.restarts = 0
        self.num_envs = n = envs.num_envs
        space = envs.single_observation_space
        dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        self.obs = torch.zeros((self.T, n, *space.shape), dtype=dtype, device=device)
        self.actions = torch.zeros((self.T, n), dtype=torch.long, device=device)
        self.logprobs, self.values, self.rewards, self.dones = (
            torch.zeros((self.T, n), device=device) for _ in range(4))
        self._start(envs.reset(seed=seed))
        self.masks = None if self.next_mask is None else torch.ones(
            (self.T, n, envs.single_action_space.n), dtype=torch.bool, device=device)

    def _start(self, reset) -> None:
        obs, info = reset
        self.next_obs, self.next_mask = self._tensor(obs), self._mask(info)

    def _mask(self, info: dict):
        mask = info.get("action_mask")
        return None if mask is None else self._tensor(np.asarray(mask, dtype=bool))

    @property
    def observation_space(self):
        return self.envs.single_observation_space

    @property
    def action_space(self):
        return self.envs.single_action_space

    def close(self) -> None:
        self.envs.close()

    def _restart(self, error: Exception) -> None:
        from rlkit.config import RunError

        self.restarts += 1
        if self.remake is None or self.restarts > MAX_ENV_RESTARTS:
            raise RunError(f"envs failed {self.restarts} time(s), last with {type(error).__name__}: "
                           f"{str(error)[:200]}") from error
        try:
            self.envs.close(terminate=True)
        except Exception:  # noqa: BLE001 - the old envs are broken; closing is best effort
            pass
        self.envs = self.remake()
        self._start(self.envs.reset(seed=self.seed + 7919 * self.restarts))

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array)).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def collect(self, policy, gamma: float, bootstrap_truncated: bool = True):
        """Step every env `num_steps` times. Returns (batch, finished episodes as (return, length))."""
        episodes = []
        for t in range(self.T):
            self.obs[t] = self.next_obs
            if self.masks is not None:
                self.masks[t] = self.next_mask
            logits, value = policy(self.next_obs, self.next_mask)
            dist = Categorical(logits=logits)
            action = dist.sample()
            self.actions[t], self.logprobs[t], self.values[t] = action, dist.log_prob(action), value
            try:
                obs, reward, terminated, truncated, info = self.envs.step(action.cpu().numpy())
            except Exception as e:  # noqa: BLE001 - any env failure: replace the envs
                self._restart(e)
                self.rewards[t], self.dones[t] = 0.0, 1.0
                continue
            reward = np.asarray(reward, dtype=np.float32)
            if "final_info" in info:
                episodes += _finished_episodes(info["final_info"])
                cut = truncated & ~terminated
                if bootstrap_truncated and cut.any():
                    final = self._tensor(np.stack(info["final_obs"][cut]))
                    reward[cut] += gamma * policy(final)[1].cpu().numpy()
            self.rewards[t] = self._tensor(reward)
            self.dones[t] = self._tensor(terminated | truncated)
            self.next_obs, self.next_mask = self._tensor(obs), self._mask(info)
        last_value = policy(self.next_obs, self.next_mask)[1]
        batch = dict(obs=self.obs, actions=self.actions, logprobs=self.logprobs, values=self.values,
                     rewards=self.rewards, dones=self.dones, last_value=last_value)
        if self.masks is not None:
            batch["masks"] = self.masks
        return {k: v.clone() for k, v in batch.items()}, episodes


def _finished_episodes(final_info: dict) -> list[tuple[float, int]]:
    if "episode" not in final_info:
        return []
    ep, done = final_info["episode"], final_info["_episode"]
    return [(float(r), int(n)) for r, n in zip(ep["r"][done], ep["l"][done])]


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
