"""`async_rollout=true`: a collector one rollout ahead of the learner."""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import torch

from rlkit.algos.common import layout, unsequence
from rlkit.nets import log_policy, logp_entropy_value


class AsyncCollector:
    """`async_rollout=true`: the next rollout is collected in a thread while the learner updates
    on the last one, so that stepping the games hides the update (on a GPU, where the update is a
    small share of an iteration, all of it idle time for the games otherwise).

    The cost is one rollout of off-policy lag, never more: the thread acts with `behave`, a copy of
    the policy taken when the rollout starts, which is one update behind by the time the learner
    uses it. The first update is on-policy; update k >= 2 learns from a batch collected with the
    weights from before update k - 1. So that the lag does not change what PPO does, the learner
    rates each batch itself when it receives it (`prox_logprobs`, `values`, `last_value`, beside
    the next rollout) and ppo.update clips against that, weighting each sample by the learner's
    probability over the acting policy's (decoupled PPO). REINFORCE has no such correction, so
    train.py refuses it. One part stays the acting policy's: at a time-limit truncation, the
    reward already holds its value of the final observation. The thread samples from the
    collector's own `generator`, so a seed still fixes the run, whatever the threads' timing.
    The thread's copy runs uncompiled even with compile=true: torch.compile is not thread-safe,
    and the learner compiles in the main thread.

    Same face as the collectors it wraps (`collect`, `num_envs`, `restarts`, `close`, spaces)."""

    def __init__(self, collector, policy, rollouts: int):
        self.collector, self.left = collector, rollouts  # rollouts still to start
        self.behave = copy.deepcopy(policy).requires_grad_(False)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="rollout")
        self.pending = None  # the rollout in flight: a Future of (batch, episodes)

    def __getattr__(self, name):  # num_envs, restarts, pool, observation_space, action_space
        return getattr(self.__dict__["collector"], name)

    def _start(self, policy) -> None:
        with torch.no_grad():  # queued before the thread's work: on a GPU, the same stream orders them
            for mine, theirs in zip(self.behave.state_dict().values(), policy.state_dict().values()):
                mine.copy_(theirs)
        self.pending = self.thread.submit(self.collector.collect, self.behave)
        self.left -= 1

    def collect(self, policy):
        """The rollout in flight (the first: one collected now with `policy`), and, unless it was
        the last of `rollouts`, the next one started with `policy` as it is now, before the learner
        updates it."""
        if self.pending is None:
            self._start(policy)
        (batch, episodes), self.pending = self.pending.result(), None
        if self.left > 0:
            self._start(policy)
        self._rate(policy, batch)  # the learner's weights, not yet updated: beside the new rollout
        return batch, episodes

    @staticmethod
    @torch.inference_mode()
    def _rate(policy, batch: dict, chunk: int = 4096) -> None:
        """The learner's own view of a batch another policy collected: `prox_logprobs` of the
        actions, and `values` and `last_value` from its value head, for decoupled PPO."""
        if policy.recurrent:
            return AsyncCollector._rate_sequences(policy, batch)
        obs, actions = batch["obs"].flatten(0, 1), batch["actions"].flatten()
        masks = batch["masks"].flatten(0, 1) if "masks" in batch else None
        logps, values = [], []
        for i in range(0, len(actions), chunk):
            logp, _, value = logp_entropy_value(policy, obs[i:i + chunk], actions[i:i + chunk],
                                      None if masks is None else masks[i:i + chunk])
            logps.append(logp)
            values.append(value)
        shape = batch["logprobs"].shape
        batch["prox_logprobs"], batch["values"] = torch.cat(logps).view(shape), torch.cat(values).view(shape)
        batch["last_value"] = policy(batch["next_obs"], batch.get("next_mask"))[1]

    @staticmethod
    def _rate_sequences(policy, batch: dict) -> None:
        """`_rate` for a policy with memory: the rollout replayed from its stored states, which
        gives the learner's own state after the last step, for `last_value`."""
        data, _, memory = layout(policy, batch, {k: batch[k] for k in ("obs", "actions", "masks") if k in batch})
        logits, values, state = policy(data["obs"], data.get("masks"), memory["state"], memory["starts"])
        logp = log_policy(logits).gather(-1, data["actions"].unsqueeze(-1)).squeeze(-1)
        chunks, n = batch["states"].shape[0], batch["actions"].shape[1]
        batch["prox_logprobs"], batch["values"] = unsequence(logp, chunks), unsequence(values, chunks)
        batch["last_value"] = policy(batch["next_obs"], batch.get("next_mask"), state[-n:], batch["next_start"])[1]

    def close(self) -> None:
        """Stops the rollout in flight at its next step (a Ray collector's: at its end), waits for
        it, as its envs cannot be closed under it, and closes them; on a second Ctrl-C while
        waiting, closes them at once."""
        try:
            if self.pending is not None:
                cancel = getattr(self.collector, "cancel", None)
                if cancel is not None:
                    cancel.set()
                self.pending.exception()  # finished, whatever its outcome: it is thrown away
        finally:
            self.pending = None
            self.thread.shutdown(wait=False, cancel_futures=True)
            self.collector.close()
