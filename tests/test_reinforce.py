"""REINFORCE on batches of whole episodes: every step of an ended episode is learned from once,
in the batch where its episode ends; steps played by an earlier policy are weighted by their
truncated importance ratio; the baseline's loss never moves the policy."""
import pytest
import torch
from omegaconf import OmegaConf

from rlkit.algos import reinforce
from rlkit.algos.reinforce import EpisodeBatches, ended, mc_returns
from rlkit.config import load_config
from rlkit.nets import make_policy

T, N = 4, 3


class Scripted:
    """Rollouts of N games whose episodes end at the given global steps; each step's observation
    is its own id (global step * N + game), so a test can tell which steps a batch learns from."""

    def __init__(self, ends: dict[int, set[int]]):
        self.ends, self.t = ends, 0
        self.num_envs, self.restarts, self.pool = N, 0, None
        self.observation_space = self.action_space = None

    def collect(self, policy):
        steps = torch.arange(self.t, self.t + T)
        ids = (steps[:, None] * N + torch.arange(N)).float()
        dones = torch.tensor([[float(g in self.ends.get(int(s), ())) for g in range(N)] for s in steps])
        self.t += T
        batch = dict(obs=ids[..., None], actions=torch.zeros(T, N), logprobs=torch.zeros(T, N),
                     values=torch.zeros(T, N), starts=torch.zeros(T, N, dtype=torch.bool),
                     states=torch.zeros(1, N, 0), rewards=torch.ones(T, N), dones=dones,
                     last_value=torch.zeros(N), next_obs=torch.zeros(N, 1), next_start=torch.zeros(N))
        return batch, [(1.0, 1)] * int(dones.sum())


def learned(batch) -> list[int]:
    keep = ended(batch["dones"]) & batch["fresh"]
    return sorted(int(i) for i in batch["obs"][..., 0][keep])


def test_ended_marks_each_step_whose_episode_ends_later_in_the_batch():
    dones = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1], [0, 0]]).float()
    assert ended(dones).tolist() == [[True, True], [True, True], [False, True], [False, True], [False, False]]
    ret, complete = mc_returns(torch.ones(5, 2), dones, 0.5)
    assert ret[:, 0].tolist() == [1.5, 1.0, 1.75, 1.5, 1.0] and complete.tolist() == ended(dones).float().tolist()


def test_every_step_of_an_ended_episode_is_learned_from_once_in_the_batch_where_it_ends():
    # game 0 ends at steps 1 and 9; game 1 at 6 (its first episode spans three rollouts); game 2 never
    ends = {1: {0}, 6: {1}, 9: {0}}
    batches = EpisodeBatches(Scripted(ends), batch_episodes=1, max_carry=100)
    seen = []
    for _ in range(3):
        batch, episodes = batches.collect(None)
        seen.append(learned(batch))
    ids = lambda game, first, last: [s * N + game for s in range(first, last + 1)]  # noqa: E731
    assert seen[0] == ids(0, 0, 1)  # the first rollout: game 0's first episode
    assert seen[1] == ids(1, 0, 6)  # the second: game 1's episode, from the first rollout on
    assert seen[2] == ids(0, 2, 9)  # the third: game 0's second episode, carried over two rollouts
    flat = [i for s in seen for i in s]
    assert len(flat) == len(set(flat))  # no step learned twice
    assert not any(i % N == 2 for i in flat)  # game 2's episode never ended: none of its steps


def test_a_batch_waits_for_its_episodes_and_max_carry_drops_the_oldest_steps():
    batches = EpisodeBatches(Scripted({5: {0, 1}}), batch_episodes=2, max_carry=2 * T)
    batch, episodes = batches.collect(None)  # the ends are in the second rollout
    assert batch["obs"].shape[0] == 2 * T and len(episodes) == 2
    assert learned(batch) == sorted(s * N + g for g in (0, 1) for s in range(6))
    assert sum(b["obs"].shape[0] for b, _ in batches.carry) == 2 * T  # game 2 still runs: both kept
    batches.batch_episodes = 1
    batches.rollouts.ends = {16: {2}}
    batch, _ = batches.collect(None)  # three more rollouts, two kept: game 2's first 12 steps are dropped
    assert batch["obs"].shape[0] == 2 * T
    assert learned(batch) == [s * N + 2 for s in range(12, 17)]


def cartpole_policy(*overrides: str):
    import gymnasium as gym
    import numpy as np

    torch.manual_seed(0)
    cfg = load_config(["env=cartpole", "algo=reinforce", *overrides])
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    return cfg, make_policy(cfg.model, space, gym.spaces.Discrete(2))


def a_batch(policy, behaviour_shift: float = 0.0) -> dict:
    """Two games of 6 steps, both ending at the last; logprobs as acting would have stored them
    (plus `behaviour_shift`: the policy that played them was another)."""
    torch.manual_seed(1)
    obs = torch.randn(6, 2, 4)
    actions = torch.randint(0, 2, (6, 2))
    with torch.no_grad():
        logits, _ = policy(obs.flatten(0, 1))
    logp = logits.log_softmax(-1).gather(-1, actions.flatten()[:, None]).view(6, 2)
    dones = torch.zeros(6, 2)
    dones[-1] = 1
    return dict(obs=obs, actions=actions, logprobs=logp + behaviour_shift, rewards=torch.randn(6, 2), dones=dones,
                starts=torch.zeros(6, 2, dtype=torch.bool), states=torch.zeros(1, 2, 0))


def grads(policy, batch, algo) -> dict:
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.0)  # the gradients, not a step
    stats = reinforce.update(policy, optimizer, batch, algo)
    return stats, {k: p.grad.clone() for k, p in policy.named_parameters() if p.grad is not None}


def test_on_policy_steps_weigh_one_and_older_ones_their_truncated_ratio():
    cfg, policy = cartpole_policy()
    algo = OmegaConf.merge(cfg.algo, {"max_grad_norm": 1e9})
    stats, fresh = grads(policy, a_batch(policy), algo)
    assert stats["stats/importance_weight"] == pytest.approx(1.0, abs=1e-6)
    stats, more_likely_then = grads(policy, a_batch(policy, behaviour_shift=0.5), algo)  # mu > pi: weight pi/mu
    assert stats["stats/importance_weight"] == pytest.approx(float(torch.tensor(-0.5).exp()), rel=1e-5)
    torch.testing.assert_close(more_likely_then["actor.weight"], fresh["actor.weight"] * torch.tensor(-0.5).exp())
    stats, _ = grads(policy, a_batch(policy, behaviour_shift=-0.5), algo)  # mu < pi: truncated at 1
    assert stats["stats/importance_weight"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("own", [False, True], ids=["value-head", "critic-network"])
def test_the_baseline_loss_trains_the_value_head_and_never_the_policy(own):
    cfg, policy = cartpole_policy(f"model.critic_encoder={str(own).lower()}")
    algo = OmegaConf.merge(cfg.algo, {"max_grad_norm": 1e9, "baseline": True})
    _, light = grads(policy, a_batch(policy), OmegaConf.merge(algo, {"vf_coef": 1e-3}))
    _, heavy = grads(policy, a_batch(policy), OmegaConf.merge(algo, {"vf_coef": 10.0}))
    assert not torch.allclose(light["critic.weight"], heavy["critic.weight"])
    if own:  # the critic's own encoder learns from its loss
        assert not torch.allclose(light["critic_encoder.net.1.weight"], heavy["critic_encoder.net.1.weight"])
    for name in light:
        if not name.startswith("critic"):  # (critic., and critic_encoder. with a network of its own)
            torch.testing.assert_close(light[name], heavy[name], msg=name)


@pytest.mark.parametrize("own", [False, True], ids=["value-head", "critic-network"])
def test_baseline_epochs_step_the_baseline_again_and_the_policy_once(own):
    moved = {}
    for epochs in (1, 3):
        cfg, policy = cartpole_policy(f"model.critic_encoder={str(own).lower()}")
        before = {k: p.detach().clone() for k, p in policy.named_parameters()}
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
        reinforce.update(policy, optimizer, a_batch(policy), OmegaConf.merge(cfg.algo, {"baseline_epochs": epochs}))
        moved[epochs] = {k: p.detach() - before[k] for k, p in policy.named_parameters()}
    for name, delta in moved[1].items():
        if name.startswith("critic"):  # the baseline moved further
            assert not torch.allclose(delta, moved[3][name]), name
        else:  # the policy took the same single step
            torch.testing.assert_close(delta, moved[3][name], msg=name)
