"""On-policy rollouts, the collector of PPO and REINFORCE (see the `Collector` protocol in
rlkit.algos): `Rollout.collect(policy)` steps the vector env with the policy and returns
[T, N, ...] tensors on the policy's device; each algorithm turns them into its own targets.

Conventions: `dones[t]` is true when the episode ended with step t (the next observation
starts a new episode, Gymnasium's SAME_STEP autoreset). A time-limit truncation is not a
real end: the value of the final observation, discounted, is added to that step's reward.

Action masks: an env that has illegal moves (board games) gives the legal ones as
`info["action_mask"]` ([N, A] bool) with every observation, on reset and on each step. They are
passed to the policy when sampling and kept in the batch (`masks`) for the update.

Memory (rlkit.cores): the rollout carries each game's core state from step to step and from one
rollout to the next. `starts[t]` is true where step t's observation begins an episode (the state
is zeroed there); `states[k]` is the state every game held before step k * seq_len, so a learner
can replay chunks of `seq_len` steps from where acting was. A truncated episode is bootstrapped
from its final observation under the state its last step left."""
from __future__ import annotations

import threading
import warnings
import weakref

import numpy as np
import torch

from rlkit.acting import GraphedAct, act
from rlkit.envs import make_groups
from rlkit.errors import RunError, UsageError

MAX_ENV_RESTARTS = 10
MAX_ROLLOUT_BYTES = 16 * 2**30  # a rollout's buffers (observations, actions, log-probabilities, values, masks)
PER_ENV = ("last_value", "next_obs", "next_mask", "next_start")  # [N, ...] entries; the others: [T, N, ...]


class Rollout:
    """Owns the vector env. If stepping it fails (a worker process died, the game crashed),
    `remake()` builds a new one, the episodes in flight end there (no bootstrap: their final
    observation is lost) and collection goes on; `restarts` counts these.

    Overlap: `envs` may be a list of vector envs, groups that together hold the batch's columns
    in order. Each step, every group in turn waits for its games, gets its actions from the
    policy and sends them; a group whose envs have `step_async`/`step_wait` (EnvPool, Gymnasium's
    async vector env) then steps in the background while the policy acts for the next group. The
    policy acting is always the current one, so the batch is exactly on-policy, and the batch is
    the same as with one vector env of all the games (the sampling noise of each step is drawn
    for all columns at once).

    This is the local runner's collector; `rlkit.distributed.RayCollector` has the same face
    (`collect`, `num_envs`, `restarts`, `close`) and runs one of these inside each Ray worker."""

    def __init__(self, envs, device: torch.device, num_steps: int, seed: int, gamma: float = 0.99,
                 bootstrap: bool = True, remake=None, generator=None, seq_len: int | None = None):
        # `gamma`, `bootstrap`: a truncated episode's last reward gets gamma * the value of its final
        # observation, if `bootstrap` (an algorithm without a value head has none to give).
        # `generator`: the sampling noise's own random stream (else PyTorch's global one, which a
        # checkpoint saves); a collector that runs beside the learner (AsyncCollector) needs one.
        self.device, self.T, self.seed, self.remake, self.generator = device, num_steps, seed, remake, generator
        self.gamma, self.bootstrap = gamma, bootstrap
        self.seq_len = seq_len or num_steps  # memory: a state is kept for every chunk of this many steps
        if self.T % self.seq_len:
            raise UsageError(f"algo.seq_len ({self.seq_len}) must divide algo.num_steps ({self.T})")
        self.cancel = threading.Event()  # set from another thread: collect() stops at the next step
        # On CUDA: policy -> {(group size, amp dtype, training): GraphedAct, or None where one cannot
        # be made}. Weak: a freed policy's graphs go with it, never replayed for a newcomer at its address.
        self.graphs = weakref.WeakKeyDictionary()
        self.restarts = 0
        self._use(envs)
        self.num_envs = n = sum(e.num_envs for e in self.groups)
        space = self.groups[0].single_observation_space
        dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        need = self.T * n * (int(np.prod(space.shape)) * dtype.itemsize + 16 + self.action_space.n)
        if need > MAX_ROLLOUT_BYTES:
            raise UsageError(f"a rollout of {self.T} steps x {n} envs of {tuple(space.shape)} observations needs "
                             f"{need / 2**30:.0f} GiB; at most {MAX_ROLLOUT_BYTES // 2**30} GiB: lower algo.num_steps "
                             f"or num_envs")
        self.obs = torch.zeros((self.T, n, *space.shape), dtype=dtype, device=device)
        self.actions = torch.zeros((self.T, n), dtype=torch.long, device=device)
        self.logprobs, self.values = (torch.zeros((self.T, n), device=device) for _ in range(2))
        # Rewards and ends arrive on the CPU: gathered there, sent to the device once per rollout.
        self.rewards, self.dones = (np.zeros((self.T, n), dtype=np.float32) for _ in range(2))
        self.starts = torch.zeros((self.T, n), dtype=torch.bool, device=device)
        self.core_state = self.states = None  # the cores' states: made on the first collect, as the policy's
        self._start(seed)
        self.masks = None if self.next_mask is None else torch.ones(
            (self.T, n, self.action_space.n), dtype=torch.bool, device=device)

    def _use(self, envs) -> None:
        self.groups = list(envs) if isinstance(envs, (list, tuple)) else [envs]
        bounds = np.cumsum([0] + [e.num_envs for e in self.groups])
        self.cols = [slice(int(a), int(b)) for a, b in zip(bounds, bounds[1:])]
        self.sent = [None] * len(self.groups)  # per group: the actions in flight, or None

    def _start(self, seed: int) -> None:
        """Reset every group (group g's games seeded from seed + its first column) and join them."""
        resets = [e.reset(seed=seed + c.start) for e, c in zip(self.groups, self.cols)]
        self.next_obs = torch.cat([self._tensor(obs) for obs, _ in resets])
        masks = [self._mask(info) for _, info in resets]
        self.next_mask = None if masks[0] is None else torch.cat(masks)
        self.next_start = torch.ones(self.next_obs.shape[0], dtype=torch.bool, device=self.device)

    def _mask(self, info: dict):
        mask = info.get("action_mask")
        return None if mask is None else self._tensor(np.asarray(mask, dtype=bool))

    @property
    def observation_space(self):
        return self.groups[0].single_observation_space

    @property
    def action_space(self):
        return self.groups[0].single_action_space

    @property
    def pool(self):
        """The self-play opponent pool of a board game's env, else None."""
        return getattr(self.groups[0], "pool", None)

    def state(self) -> None:
        """Nothing beyond the weights to checkpoint: a resumed run starts fresh episodes."""

    def load_state(self, state) -> None:
        pass

    def close(self) -> None:
        for envs in self.groups:
            envs.close()

    def _restart(self, error: Exception) -> None:
        self.restarts += 1
        if self.remake is None or self.restarts > MAX_ENV_RESTARTS:
            raise RunError(f"envs failed {self.restarts} time(s), last with {type(error).__name__}: "
                           f"{str(error)[:200]}") from error
        for envs in self.groups:
            try:
                envs.close(terminate=True)
            except Exception:  # noqa: BLE001 - the old envs are broken; closing is best effort
                pass
        self._use(self.remake())
        self._start(self.seed + 7919 * self.restarts)

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array)).to(self.device, non_blocking=True)

    def _act(self, policy, t: int, g: int, gumbel: torch.Tensor) -> None:
        """Group g's actions for step t, sampled from the current policy with `gumbel` (minus
        Gumbel noise, [num_envs, actions]), and sent to its envs."""
        c = self.cols[g]
        obs, mask = self.next_obs[c], None if self.next_mask is None else self.next_mask[c]
        state, start = self.core_state[c], self.next_start[c]
        self.obs[t, c], self.starts[t, c] = obs, start
        if t % self.seq_len == 0:
            self.states[t // self.seq_len, c] = state
        if mask is not None:
            self.masks[t, c] = mask
        graphed = self._graphed(policy, obs, mask, gumbel[c], state, start)
        action, logprob, value, state = graphed(obs, gumbel[c], state, start) if graphed \
            else act(policy, obs, mask, gumbel[c], state, start)
        self.actions[t, c], self.logprobs[t, c], self.values[t, c] = action, logprob, value
        self.core_state[c] = state
        self.sent[g] = action.cpu().numpy()
        envs = self.groups[g]
        if hasattr(envs, "step_async"):
            try:
                envs.step_async(self.sent[g])
            except Exception as e:  # noqa: BLE001 - any env failure: replace the envs
                self._restart(e)

    def _graphed(self, policy, obs, mask, gumbel, state, start):
        """The policy's step for a group of this size as one CUDA graph (made on first use), else
        None (on a CPU, for a compiled policy, or with action masks): on CUDA, an uncompiled
        policy's step is dozens of small kernels whose launches, not the GPU, set the pace."""
        if self.device.type != "cuda" or hasattr(policy, "_orig_mod") or mask is not None:
            return None
        graphs = self.graphs.get(policy)  # the learner's, or AsyncCollector's copy: both run long
        if graphs is None:  # (not setdefault: it makes a new weak reference on every step)
            graphs = self.graphs[policy] = {}
        key = (obs.shape[0], getattr(policy, "amp_dtype", None), policy.training)
        if key not in graphs:
            try:
                graphs[key] = GraphedAct(policy, obs, gumbel, state, start)
            except RuntimeError as e:  # a policy CUDA graphs cannot hold: it runs as it is
                warnings.warn(f"the policy's step could not be captured as a CUDA graph; it runs uncaptured "
                              f"({str(e)[:120]})", stacklevel=2)
                graphs[key] = None
        return graphs[key]

    def _receive(self, policy, t: int, g: int) -> list:
        """Group g's outcome of step t. Returns the episodes that ended with it."""
        c, actions, envs = self.cols[g], self.sent[g], self.groups[g]
        self.sent[g] = None
        if actions is None:  # lost to a restart of the envs: the episodes in flight ended there
            self.rewards[t, c], self.dones[t, c] = 0.0, 1.0
            return []
        try:
            result = envs.step_wait() if hasattr(envs, "step_async") else envs.step(actions)
        except Exception as e:  # noqa: BLE001 - any env failure: replace the envs
            self._restart(e)
            self.rewards[t, c], self.dones[t, c] = 0.0, 1.0
            return []
        obs, reward, terminated, truncated, info = result
        reward, episodes = np.asarray(reward, dtype=np.float32), []
        if "final_info" in info:
            episodes = _finished_episodes(info["final_info"])
            cut = truncated & ~terminated
            if self.bootstrap and cut.any():
                final = self._tensor(np.stack(info["final_obs"][cut]))
                after = self.core_state[c][self._tensor(cut)]  # the state the episode's last step left
                value = policy(final, None, after, torch.zeros(len(after), dtype=torch.bool, device=self.device))[1]
                reward[cut] += self.gamma * value.cpu().numpy()
        self.rewards[t, c], self.dones[t, c] = reward, terminated | truncated
        self.next_start[c] = self._tensor(terminated | truncated)
        self.next_obs[c].copy_(torch.as_tensor(np.asarray(obs)), non_blocking=True)
        if self.next_mask is not None:
            self.next_mask[c] = self._mask(info)
        return episodes

    @torch.inference_mode()
    def collect(self, policy):
        """Step every env `num_steps` times. Returns (batch, finished episodes as (return, length))."""
        episodes, groups = [], range(len(self.groups))
        self._states_for(policy)
        for t in range(self.T):
            if self.cancel.is_set():
                raise Cancelled("the rollout was cancelled")
            # One draw for the whole step, whatever the groups: the same seed collects the same batch.
            noise = torch.rand((self.num_envs, self.action_space.n), device=self.device, generator=self.generator)
            gumbel = (-noise.log()).log()
            for g in groups:
                if t:
                    episodes += self._receive(policy, t - 1, g)
                self._act(policy, t, g, gumbel)
        for g in groups:
            episodes += self._receive(policy, self.T - 1, g)
        last_value = policy(self.next_obs, self.next_mask, self.core_state, self.next_start)[1]
        batch = dict(obs=self.obs, actions=self.actions, logprobs=self.logprobs, values=self.values,
                     last_value=last_value, next_obs=self.next_obs, starts=self.starts, states=self.states,
                     next_start=self.next_start)
        if self.masks is not None:
            batch["masks"], batch["next_mask"] = self.masks, self.next_mask
        batch = {k: v.clone() for k, v in batch.items()}
        batch["rewards"], batch["dones"] = (torch.tensor(x, device=self.device) for x in (self.rewards, self.dones))
        return batch, episodes

    def _states_for(self, policy) -> None:
        """The cores' running states and their per-chunk buffer, made for `policy`'s core (the
        first time, or anew for a policy with another kind of state)."""
        size = policy.initial_state(0, self.device).shape[1]
        if self.core_state is not None and self.core_state.shape[1] == size:
            return
        chunks, need = self.T // self.seq_len, self.T // self.seq_len * self.num_envs * size * 4
        if need > MAX_ROLLOUT_BYTES:
            raise UsageError(f"the core's states for {chunks} chunks x {self.num_envs} envs need {need / 2**30:.0f} "
                             f"GiB; at most {MAX_ROLLOUT_BYTES // 2**30} GiB: raise algo.seq_len or lower model.memory")
        self.core_state = policy.initial_state(self.num_envs, self.device)
        self.states = torch.zeros((chunks, self.num_envs, size), device=self.device)
        self.next_start.fill_(True)


class Cancelled(Exception):
    """A rollout stopped half-way by `Rollout.cancel` (AsyncCollector.close)."""


def _finished_episodes(final_info: dict) -> list[tuple[float, int]]:
    if "episode" not in final_info:
        return []
    ep, done = final_info["episode"], final_info["_episode"]
    return [(float(r), int(n)) for r, n in zip(ep["r"][done], ep["l"][done])]


def make_rollout(cfg, device: torch.device, seed: int, bootstrap: bool):
    """The on-policy collector for `cfg.runner`: `local`, one vector env stepped in this process
    (two halves with `overlap=true`); `ray`, `runner.workers` of them on Ray actors
    (rlkit/distributed.py). Both hand `collect()`'s [T, N] batches to the same loop."""
    if cfg.runner.name == "ray":
        if cfg.env.family == "board":
            raise UsageError("runner=ray does not run self-play board games yet; use runner=local")
        from rlkit.distributed import RayCollector  # an optional extra: without Ray, a one-line install hint

        return RayCollector(cfg, device, seed, bootstrap)
    envs = make_groups(cfg)
    pool = getattr(envs, "pool", None)  # self-play: rebuilt envs keep the same opponent pool
    # Beside the learner (async_rollout), the sampling noise needs a random stream of its own.
    generator = torch.Generator(device).manual_seed(seed) if cfg.get("async_rollout", False) else None
    return Rollout(envs, device, cfg.algo.num_steps, seed, gamma=cfg.algo.gamma, bootstrap=bootstrap,
                   remake=lambda: make_groups(cfg, pool), generator=generator, seq_len=cfg.algo.get("seq_len"))
