import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlkit.algos.ppo import advantages
from rlkit.algos.reinforce import mc_returns
from rlkit.nets import Memoryless
from rlkit.rollout import Rollout


def test_gae_matches_hand_computed_values():
    # One env, three steps, the episode ends after step 1; then a new one runs on.
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    last_value = torch.tensor([4.0])
    adv, ret = advantages(rewards, values, dones, last_value, gamma, lam)
    d2 = 3 + 0.9 * 4.0 - 2.0          # 4.6, bootstraps from last_value
    d1 = 2 - 1.0                      # 1.0, episode ended: no bootstrap
    d0 = 1 + 0.9 * 1.0 - 0.5          # 1.4
    a2, a1 = d2, d1
    a0 = d0 + gamma * lam * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2]))
    assert torch.allclose(ret, adv + values)


def test_gae_with_lambda_one_is_the_monte_carlo_return_minus_value():
    rewards = torch.rand(6, 3)
    values = torch.rand(6, 3)
    dones = torch.zeros(6, 3)
    dones[-1] = 1
    adv, ret = advantages(rewards, values, dones, torch.rand(3), 0.95, 1.0)
    mc, complete = mc_returns(rewards, dones, 0.95)
    assert torch.allclose(ret, mc, atol=1e-6)
    assert complete.all()


def test_mc_returns_hand_computed_and_unfinished_tail_is_flagged():
    rewards = torch.tensor([[1.0], [1.0], [1.0], [5.0], [7.0]])
    dones = torch.tensor([[0.0], [0.0], [1.0], [0.0], [0.0]])
    ret, complete = mc_returns(rewards, dones, 0.5)
    assert torch.allclose(ret[:3, 0], torch.tensor([1 + 0.5 + 0.25, 1 + 0.5, 1.0]))
    assert complete[:, 0].tolist() == [1, 1, 1, 0, 0]


class Countdown(gym.Env):
    """Reward 1 each step; terminates after `length` steps, or is truncated by a TimeLimit."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length):
        self.length = length

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.t / 10, 1.0], np.float32)
        return obs, 1.0, self.t >= self.length, False, {}


class ConstantValue(Memoryless, torch.nn.Module):
    """A policy whose value is 10 * obs[1]: 10 on the final observations, 0 on a reset one."""

    def forward(self, obs, action_mask=None):
        return torch.zeros(obs.shape[0], 2), 10 * obs[:, 1]


@pytest.mark.parametrize("bootstrap", [True, False])
def test_truncation_is_bootstrapped_from_the_final_observation(bootstrap):
    # env 0 is cut by a 3-step time limit (truncation); env 1 terminates after 3 steps.
    fns = [lambda: gym.wrappers.RecordEpisodeStatistics(gym.wrappers.TimeLimit(Countdown(100), 3)),
           lambda: gym.wrappers.RecordEpisodeStatistics(Countdown(3))]
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    rollout = Rollout(envs, torch.device("cpu"), num_steps=4, seed=0, gamma=0.5, bootstrap=bootstrap)
    batch, episodes = rollout.collect(ConstantValue())
    expected_truncated = 1.0 + (0.5 * 10 if bootstrap else 0.0)
    assert batch["rewards"][:, 0].tolist() == [1.0, 1.0, expected_truncated, 1.0]
    assert batch["rewards"][:, 1].tolist() == [1.0, 1.0, 1.0, 1.0]  # a real end: no bootstrap
    assert batch["dones"].T.tolist() == [[0, 0, 1, 0], [0, 0, 1, 0]]
    assert sorted(episodes) == [(3.0, 3), (3.0, 3)]  # the game's own score, not the bootstrapped reward
    assert batch["obs"][3].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # a new episode started after the cut


def test_a_killed_env_worker_is_replaced_and_counted():
    from rlkit.config import load_config
    from rlkit.envs import make_vec

    cfg = load_config(["env=cartpole", "vector=async", "num_envs=2"])
    policy = ConstantValue()
    rollout = Rollout(make_vec(cfg), torch.device("cpu"), num_steps=16, seed=0, remake=lambda: make_vec(cfg))
    rollout.collect(policy)
    old = rollout.groups[0]
    old.processes[0].kill()
    old.processes[0].join()
    batch, _ = rollout.collect(policy)
    assert rollout.restarts == 1 and rollout.groups[0] is not old
    assert batch["dones"][0].tolist() == [1.0, 1.0] and batch["rewards"][0].tolist() == [0.0, 0.0]
    assert all(p.is_alive() for p in rollout.groups[0].processes)
    batch, _ = rollout.collect(policy)  # and it keeps going
    assert rollout.restarts == 1
    rollout.close()


def test_envs_that_keep_failing_stop_the_run_with_one_line():
    from rlkit.config import RunError

    class Broken:
        num_envs = 1
        single_observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        single_action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None):
            return np.zeros((1, 2), np.float32), {}

        def step(self, actions):
            raise RuntimeError("game crashed")

        def close(self, **kwargs):
            pass

    rollout = Rollout(Broken(), torch.device("cpu"), num_steps=100, seed=0, remake=Broken)
    with pytest.raises(RunError, match="envs failed 11 time\\(s\\), last with RuntimeError: game crashed"):
        rollout.collect(ConstantValue())


def collect_twice(envs, policy, seed=3, num_steps=64):
    torch.manual_seed(0)
    rollout = Rollout(envs, torch.device("cpu"), num_steps=num_steps, seed=seed)
    out = [rollout.collect(policy) for _ in range(2)]
    rollout.close()
    return out


def assert_same_batches(one, other):
    for (a, episodes_a), (b, episodes_b) in zip(one, other):
        assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
        for key in ("actions", "dones", "starts"):
            assert torch.equal(a[key], b[key]), key
        for key in ("obs", "rewards", "logprobs", "values", "last_value", "states"):  # rewards: bootstrapped values
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
        assert episodes_a == episodes_b


@pytest.mark.parametrize("core", ["none", "lstm"])
def test_overlapped_halves_collect_the_batch_of_one_vector_env(core):
    """overlap=true: two async halves stepped in turn, on-policy, give the batch that one
    vector env of all the games gives for the same seed (the same shapes, the same numbers),
    a core's states included."""
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy

    whole = load_config(["env=cartpole", "num_envs=4", f"model.core={core}"])
    halves = make_groups(load_config(["env=cartpole", "num_envs=4", "vector=async", "overlap=true"]))
    assert [h.num_envs for h in halves] == [2, 2] and all(hasattr(h, "step_async") for h in halves)
    policy = make_policy(whole.model, halves[0].single_observation_space, halves[0].single_action_space)
    overlapped = collect_twice(halves, policy)
    assert_same_batches(collect_twice(make_groups(whole), policy), overlapped)
    assert len(overlapped[0][1]) > 4  # episodes ended (and restarted) inside the rollouts


def test_overlap_needs_envs_that_step_in_the_background():
    from rlkit.config import UsageError, load_config
    from rlkit.envs import make_groups

    with pytest.raises(UsageError, match="overlap=true needs envs that step in the background"):
        make_groups(load_config(["env=cartpole", "overlap=true"]))
    with pytest.raises(UsageError, match="num_envs must be even, got 3"):
        make_groups(load_config(["env=cartpole", "overlap=true", "vector=async", "num_envs=3"]))


def test_async_rollout_lags_the_learner_by_exactly_one_rollout():
    """async_rollout=true: update 1 learns from a batch the untouched policy collected; every later
    update u from one collected with the weights from before update u - 1, never older or newer
    (the documented lag), in the shapes a synchronous rollout gives."""
    from rlkit.async_rollout import AsyncCollector
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import logp_entropy_value as evaluate
    from rlkit.nets import make_policy

    cfg = load_config(["env=cartpole", "num_envs=3"])
    plain = Rollout(make_groups(cfg), torch.device("cpu"), 16, seed=0)
    policy = make_policy(cfg.model, plain.observation_space, plain.action_space)
    reference, _ = plain.collect(policy)
    plain.close()
    collector = AsyncCollector(Rollout(make_groups(cfg), torch.device("cpu"), 16, seed=0,
                                       generator=torch.Generator().manual_seed(0)), policy, rollouts=4)
    weights, batches = [], []  # weights[k]: the policy before update k + 1
    for _ in range(4):
        batch, _ = collector.collect(policy)
        batches.append(batch)
        weights.append({k: v.clone() for k, v in policy.state_dict().items()})
        with torch.no_grad():  # stands in for an update: every weight moves
            for p in policy.parameters():
                p.add_(0.05 * torch.randn_like(p))
    assert collector.pending is None and collector.left == 0  # no rollout beyond the last one
    collector.close()

    def logprobs_under(state, batch):
        actor = make_policy(cfg.model, plain.observation_space, plain.action_space)
        actor.load_state_dict(state)
        with torch.no_grad():
            logp, _, value = evaluate(actor, batch["obs"].flatten(0, 1), batch["actions"].flatten())
            return logp, value

    shapes = {k: v.shape for k, v in reference.items()}
    assert {k: v.shape for k, v in batches[0].items()} == {**shapes, "prox_logprobs": shapes["logprobs"]}
    for u, batch in enumerate(batches, start=1):
        acted = weights[max(u - 2, 0)]  # update 1: the initial weights; update u: those before update u - 1
        assert torch.allclose(logprobs_under(acted, batch)[0], batch["logprobs"].flatten(), atol=1e-5), u
        # The learner's own view, for decoupled PPO: its weights when it received the batch.
        learner, values = logprobs_under(weights[u - 1], batch)
        assert torch.allclose(learner, batch["prox_logprobs"].flatten(), atol=1e-5), u
        assert torch.allclose(values, batch["values"].flatten(), atol=1e-5), u
        if u >= 2:
            assert not torch.allclose(learner, batch["logprobs"].flatten(), atol=1e-5)


def test_async_rollout_refuses_what_its_lag_would_break():
    from rlkit.algos import ALGOS
    from rlkit.config import UsageError, load_config
    from rlkit.train import check_choices

    def check(*overrides):
        cfg = load_config(list(overrides))
        check_choices(cfg, ALGOS[cfg.algo.name])

    with pytest.raises(UsageError, match=r"async_rollout=true needs an algorithm whose update corrects one rollout "
                                         r"of lag \(ppo\); reinforce has no such correction"):
        check("env=cartpole", "algo=reinforce", "async_rollout=true")
    with pytest.raises(UsageError, match="does not run self-play board games"):
        check("env=tictactoe", "async_rollout=true")
    check("env=cartpole", "async_rollout=true")  # PPO on a single-agent game: fine


def test_decoupled_ppo_is_plain_ppo_without_lag_and_weighs_stale_samples_with_it():
    """ppo.update with `prox_logprobs` (async_rollout): equal to the behaviour log-probabilities,
    bit-for-bit the plain update; different, a different update."""
    from omegaconf import OmegaConf

    from rlkit.algos import ppo
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy

    cfg = load_config(["env=cartpole", "num_envs=2"])
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 32, seed=0)
    torch.manual_seed(0)
    policy = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    batch, _ = rollout.collect(policy)
    rollout.close()
    algo = OmegaConf.merge(cfg.algo, {"epochs": 2, "minibatches": 2})

    def updated(batch):
        learner = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
        learner.load_state_dict(policy.state_dict())
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        torch.manual_seed(1)  # the same minibatches
        ppo.update(learner, opt, batch, algo)
        return torch.cat([p.flatten() for p in learner.parameters()])

    plain = updated(batch)
    assert torch.equal(updated({**batch, "prox_logprobs": batch["logprobs"].clone()}), plain)
    stale = {**batch, "prox_logprobs": batch["logprobs"] + 0.3 * torch.randn_like(batch["logprobs"])}
    assert not torch.allclose(updated(stale), plain)


def test_closing_an_async_rollout_stops_the_one_in_flight_at_its_next_step():
    from rlkit.async_rollout import AsyncCollector
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy
    from rlkit.rollout import Cancelled

    cfg = load_config(["env=cartpole", "num_envs=2"])
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 20000, seed=0, generator=torch.Generator().manual_seed(0))
    policy = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    collector = AsyncCollector(rollout, policy, rollouts=2)
    collector._start(policy)  # 40,000 steps in flight: many seconds, were it not stopped
    in_flight = collector.pending
    collector.close()
    assert isinstance(in_flight.exception(), Cancelled) and collector.pending is None


def test_cuda_graphs_are_kept_per_policy_object_group_size_and_precision(monkeypatch):
    """Rollout._graphed's bookkeeping (the capture itself needs CUDA: tests/test_cuda.py): one graph
    per policy, group size, autocast dtype and train/eval mode, made once; none with action masks;
    and a freed policy's graphs go with it, so a new policy never replays an old one's graph."""
    import gc

    from rlkit import rollout as rollout_module
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy

    made = []

    class Recorded:  # stands in for GraphedAct: counts captures, captures nothing
        def __init__(self, policy, obs, gumbel, state, start):
            made.append(obs.shape[0])

    monkeypatch.setattr(rollout_module, "GraphedAct", Recorded)
    cfg = load_config(["env=cartpole", "num_envs=4"])
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 8, seed=0)
    rollout.device = torch.device("cuda")  # only the bookkeeping runs: nothing is captured or replayed
    policy = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    obs, gumbel = torch.zeros(4, 4), torch.zeros(4, 2)
    first = rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs)))
    assert rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs))) is first and made == [4]
    assert rollout._graphed(policy, obs[:2], None, gumbel[:2], *no_memory(2)) not in (None, first) and made == [4, 2]
    policy.amp_dtype = torch.bfloat16
    assert rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs))) is not first and made == [4, 2, 4]
    policy.amp_dtype = None
    policy.eval()
    assert rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs))) is not first and len(made) == 4
    policy.train()
    masks = torch.ones(4, 2, dtype=torch.bool)
    assert rollout._graphed(policy, obs, masks, gumbel, *no_memory(len(obs))) is None and len(made) == 4
    other = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    assert rollout._graphed(other, obs, None, gumbel, *no_memory(len(obs))) is not first and len(made) == 5
    del other
    gc.collect()
    assert list(rollout.graphs.keys()) == [policy] and len(rollout.graphs[policy]) == 4
    rollout.close()


def no_memory(n: int):
    """The state and starts of `n` games of a policy without memory."""
    return torch.zeros(n, 0), torch.zeros(n, dtype=torch.bool)


def test_a_policy_cuda_graphs_cannot_hold_runs_uncaptured(monkeypatch):
    # On CUDA, a failed capture must leave the rollout on the plain step, warned about once.
    from types import SimpleNamespace

    from rlkit import rollout as module
    from rlkit.config import load_config
    from rlkit.envs import make_groups
    from rlkit.nets import make_policy

    cfg = load_config(["env=cartpole", "num_envs=2"])
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 8, seed=0)
    policy = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    tries = []

    def fails(*args):
        tries.append(args)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(module, "GraphedAct", fails)
    rollout.device = SimpleNamespace(type="cuda")  # only the choice to capture reads it
    obs, gumbel = torch.zeros(2, 4), torch.zeros(2, 2)
    with pytest.warns(UserWarning, match="could not be captured as a CUDA graph"):
        assert rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs))) is None
    again = rollout._graphed(policy, obs, None, gumbel, *no_memory(len(obs)))
    assert again is None and len(tries) == 1  # not tried again
    rollout.close()
