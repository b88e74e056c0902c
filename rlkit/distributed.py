"""runner=ray: rollouts on Ray actors, the learner in this process (on the GPU when there is one).

    python -m rlkit.train env=doom runner=ray runner.workers=32                       # a local Ray instance
    RAY_ADDRESS=auto python -m rlkit.train env=doom runner=ray runner.workers=256   # an existing cluster

Each worker is a Ray actor that owns a vector env of `num_envs` games and a CPU copy of the
policy, and collects with the same `Rollout` as the local runner.

How a batch stays on-policy: every iteration the learner puts its current weights into Ray's
object store once (`ray.put`); every worker loads them and collects a fragment of
`algo.num_steps` steps; the learner waits for all fragments and concatenates them along the env
axis into one [T, workers * num_envs] batch for the same `algo.update`. No fragment is ever
collected with older weights, so PPO sees exactly what the local runner would show it, only wider.

Faults: a worker that dies (its process killed, its node lost) is replaced by a fresh one that
collects the fragment again with the same weights, so the batch keeps its shape and stays
on-policy; env crashes inside a worker are handled there by `Rollout`. Both count in `restarts`
(logged as `env/restarts`); after `runner.max_restarts` replaced workers the run stops with one
line. Checkpoints are written by the learner, atomically, so a learner crash leaves the last one
intact and `resume=` continues from it."""
from __future__ import annotations

import contextlib
import logging
import math
import os

import numpy as np
import torch
from omegaconf import OmegaConf

from rlkit import precision
from rlkit.envs import make_env, make_vec
from rlkit.errors import RunError, UsageError
from rlkit.nets import make_policy
from rlkit.rollout import PER_ENV, Rollout

try:
    import ray
except ImportError:
    raise UsageError("runner=ray needs Ray, an optional extra: pip install -e '.[distributed]' "
                     "(or pip install 'ray[default]>=2.9'); or choose runner=local") from None

RESEED = 7919  # a replaced worker's envs start from another seed, like a restarted local env


class Worker:
    """One Ray actor: `num_envs` games in a vector env, a CPU copy of the policy, a `Rollout`."""

    def __init__(self, cfg: dict, seed: int, bootstrap: bool):
        cfg = OmegaConf.create(cfg)
        torch.set_num_threads(max(1, int(cfg.runner.cpus_per_worker)))
        torch.manual_seed(seed)
        envs = make_vec(cfg)
        self.policy = make_policy(cfg.model, envs.single_observation_space, envs.single_action_space)
        # A worker acts on its CPU: fp16 (a CUDA learner's) is left to what this CPU runs fast.
        precision.apply(self.policy, "auto" if cfg.amp == "fp16" else cfg.amp, torch.device("cpu"))
        self.rollout = Rollout(envs, torch.device("cpu"), cfg.algo.num_steps, seed, gamma=cfg.algo.gamma,
                               bootstrap=bootstrap, remake=lambda: make_vec(cfg), seq_len=cfg.algo.get("seq_len"))

    def ready(self) -> int:
        return os.getpid()

    def collect(self, weights: dict):
        """One fragment with the learner's current weights: ([T, num_envs] arrays, episodes, env restarts)."""
        self.policy.load_state_dict(weights)
        batch, episodes = self.rollout.collect(self.policy)
        return {k: v.numpy() for k, v in batch.items()}, episodes, self.rollout.restarts

    def close(self) -> None:
        self.rollout.close()


def start_ray(runner) -> bool:
    """Join the cluster RAY_ADDRESS names when it is set; otherwise start a private local instance
    with enough logical CPUs for every worker. Returns whether this process started Ray."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or "local"
    cpus = None if address != "local" else max(os.cpu_count() or 1, math.ceil(runner.workers * runner.cpus_per_worker))
    ray.init(address=address, num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    return True


class RayCollector:
    """A `Collector` (rlkit.algos), as `Rollout` is, over `runner.workers` Ray actors. Ray and the
    workers start on the first `collect()`."""

    pool = None  # self-play does not run on Ray yet

    def __init__(self, cfg, device: torch.device, seed: int, bootstrap: bool = True):
        # Bad env or model settings fail here, in this process, before Ray starts.
        probe = make_env(cfg.env)
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        make_policy(cfg.model, self.observation_space, self.action_space)
        self.cfg, self.device, self.seed, self.bootstrap = cfg, device, seed, bootstrap
        self.num_envs = cfg.runner.workers * cfg.num_envs
        self.restarts, self.replaced = 0, 0
        self.workers: list = []
        self._env_restarts = [0] * cfg.runner.workers  # as last reported by each worker
        self._started_ray, self._busy = False, False

    def _spawn(self, i: int):
        remote = ray.remote(Worker).options(num_cpus=self.cfg.runner.cpus_per_worker, max_restarts=0)
        seed = self.seed + i * self.cfg.num_envs + RESEED * self.replaced
        return remote.remote(OmegaConf.to_container(self.cfg, resolve=True), seed, self.bootstrap)

    def _start(self) -> None:
        self._started_ray = start_ray(self.cfg.runner)
        self.workers = [self._spawn(i) for i in range(self.cfg.runner.workers)]
        timeout = self.cfg.runner.start_timeout
        try:
            ray.get([w.ready.remote() for w in self.workers], timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            free = ray.available_resources().get("CPU", 0)
            raise RunError(f"{self.cfg.runner.workers} Ray workers did not start within {timeout}s; "
                           f"the cluster has {free:g} CPUs free and each worker asks for "
                           f"runner.cpus_per_worker={self.cfg.runner.cpus_per_worker:g}") from None
        except ray.exceptions.RayError as e:
            raise RunError(f"a Ray worker failed to start: {_first_line(e)}") from None

    def _replace(self, i: int, error: Exception) -> None:
        self.replaced += 1
        self.restarts += 1
        if self.replaced > self.cfg.runner.max_restarts:
            raise RunError(f"Ray workers died {self.replaced} times (runner.max_restarts="
                           f"{self.cfg.runner.max_restarts}), last with {type(error).__name__}: "
                           f"{_first_line(error)}") from None
        ray.kill(self.workers[i])  # if it is only unreachable, make sure it is gone
        self.workers[i] = self._spawn(i)
        self._env_restarts[i] = 0

    def collect(self, policy):
        """One on-policy batch: a fragment from every worker, all with `policy`'s current weights."""
        if not self.workers:
            self._start()
        module = getattr(policy, "_orig_mod", policy)  # torch.compile's wrapper holds the module
        weights = ray.put({k: v.detach().cpu() for k, v in module.state_dict().items()})
        self._busy = True
        pending = {w.collect.remote(weights): i for i, w in enumerate(self.workers)}
        fragments: list = [None] * len(self.workers)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            try:
                fragments[i] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                self._replace(i, e)  # the same weights again: the batch stays on-policy
                pending[self.workers[i].collect.remote(weights)] = i
            except ray.exceptions.RayTaskError as e:  # an error in the worker's own code: not retried
                cause = getattr(e, "cause", None) or e
                what = "" if isinstance(cause, RunError) else f"failed with {type(cause).__name__}: "
                raise RunError(f"Ray worker {i}: {what}{_first_line(cause)}") from None
        self._busy = False
        episodes = []
        for i, (_, eps, env_restarts) in enumerate(fragments):
            episodes += eps
            self.restarts += env_restarts - self._env_restarts[i]
            self._env_restarts[i] = env_restarts
        batch = {k: torch.from_numpy(np.concatenate([f[0][k] for f in fragments], axis=0 if k in PER_ENV else 1))
                 .to(self.device) for k in fragments[0][0]}
        return batch, episodes

    def state(self) -> None:
        """Nothing beyond the weights to checkpoint: a resumed run starts fresh episodes."""

    def load_state(self, state) -> None:
        pass

    def close(self) -> None:
        if not self.workers:
            return
        if not self._busy:  # let the games shut down cleanly (not after a second Ctrl-C mid-collect)
            with contextlib.suppress(ray.exceptions.RayError):  # a dead or stuck one: killed below
                ray.get([w.close.remote() for w in self.workers], timeout=30)
        for w in self.workers:
            ray.kill(w)
        self.workers = []
        if self._started_ray:
            ray.shutdown()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
