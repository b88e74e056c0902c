"""Memory cores (model.core): learning through time, states zeroed at episode starts, the
learner's replay equal to acting, and memory carried wherever a policy acts."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import rlkit
from rlkit.algos import ppo, reinforce
from rlkit.algos.common import layout
from rlkit.config import UsageError, load_config
from rlkit.envs import make_groups
from rlkit.nets import logp_entropy_value, make_policy
from rlkit.rollout import Rollout

CORES = ["lstm", "gru", "transformer"]
OBS, ACTIONS = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(4)


def policy_with(core, **more):
    torch.manual_seed(0)
    cfg = load_config(["env=cartpole_masked", "model=mlp", f"model.core={core}", "model.core_size=16",
                       "model.memory=4", *[f"model.{k}={v}" for k, v in more.items()]])
    return make_policy(cfg.model, OBS, ACTIONS)


def run(policy, obs, starts):
    """Logits and values of a sequence [T, B, 3] from the initial state."""
    return policy(obs, None, policy.initial_state(obs.shape[1]), starts)[:2]


@pytest.mark.parametrize("core", CORES)
def test_the_output_at_step_t_depends_on_earlier_steps_and_gradients_reach_them(core):
    policy = policy_with(core)
    obs = torch.randn(6, 2, 3, requires_grad=True)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    logits, value = run(policy, obs, starts)
    (logits[5, 0].sum() + value[5, 0]).backward()
    assert obs.grad[2, 0].abs().sum() > 0  # three steps back
    assert obs.grad[:, 1].abs().sum() == 0  # the other game is another game
    moved = obs.detach().clone()
    moved[2, 0] += 1.0
    assert not torch.allclose(run(policy, moved, starts)[0][5, 0], logits[5, 0])


def test_without_a_core_no_step_sees_another():
    """The control: core=none, the same test fails (so the one above can)."""
    policy = policy_with("none")
    obs = torch.randn(6, 2, 3, requires_grad=True)
    logits, value = run(policy, obs, torch.zeros(6, 2, dtype=torch.bool))
    (logits[5, 0].sum() + value[5, 0]).backward()
    assert obs.grad[:5].abs().sum() == 0


@pytest.mark.parametrize("core", CORES)
def test_an_episode_start_inside_a_sequence_zeroes_the_state(core):
    policy = policy_with(core)
    obs = torch.randn(6, 1, 3)
    starts = torch.zeros(6, 1, dtype=torch.bool)
    starts[3] = True  # a new episode begins with step 3
    with torch.no_grad():
        logits, _ = run(policy, obs, starts)
        fresh, _ = run(policy, obs[3:], torch.zeros(3, 1, dtype=torch.bool))
        other = obs.clone()
        other[:3] = torch.randn(3, 1, 3)  # another earlier episode
        again, _ = run(policy, other, starts)
        # the stored state at the start does not leak either
        noisy = policy(obs[3:], None, torch.randn(1, policy.core.state_size), starts[3:])[0]
    assert torch.allclose(logits[3:], fresh, atol=1e-6)
    assert torch.equal(logits[3:], again[3:])
    assert not torch.allclose(logits[:3], again[:3])
    assert torch.allclose(noisy, fresh, atol=1e-6)


def test_the_memory_transformer_forgets_beyond_its_window_and_its_state_does_not_grow():
    policy = policy_with("transformer", memory=4)
    obs = torch.randn(12, 1, 3)
    starts = torch.zeros(12, 1, dtype=torch.bool)
    with torch.no_grad():
        logits, _ = run(policy, obs, starts)
        old, recent = obs.clone(), obs.clone()
        old[6] += 1.0      # 5 steps before step 11: outside a window of 4
        recent[8] += 1.0   # 3 steps before: inside
        assert torch.equal(run(policy, old, starts)[0][11], logits[11])
        assert not torch.allclose(run(policy, recent, starts)[0][11], logits[11])
    state = policy.initial_state(1)
    for t in range(12):
        _, _, state = policy(obs[t], None, state, starts[t])
        assert state.shape == (1, policy.core.state_size)


def collected(core, seq_len=8, **cfg_more):
    cfg = load_config(["env=cartpole_masked", "num_envs=3", f"model.core={core}", "model.core_size=16",
                       *[f"{k}={v}" for k, v in cfg_more.items()]])
    torch.manual_seed(0)
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 32, seed=0, seq_len=seq_len)
    policy = make_policy(cfg.model, rollout.observation_space, rollout.action_space)
    batches = [rollout.collect(policy)[0] for _ in range(3)]
    rollout.close()
    return policy, batches


@pytest.mark.parametrize("core", CORES)
def test_the_learner_replays_the_log_probabilities_acting_had(core):
    """Chunks of seq_len steps replayed from the stored states, with the starts inside them: the
    rollout's log-probabilities and values, to float rounding (bit for bit for the recurrent cells
    on CPUs whose matrix kernels do not depend on the batch size; CI's do on some machines)."""
    policy, batches = collected(core)
    for batch in batches:
        assert batch["states"].shape == (4, 3, policy.core.state_size)
        data, axis, memory = layout(policy, batch, {"obs": batch["obs"], "actions": batch["actions"],
                                                    "logprobs": batch["logprobs"], "values": batch["values"]})
        assert axis == 1 and data["obs"].shape[:2] == (8, 12)
        with torch.no_grad():
            logp, _, value = logp_entropy_value(policy, data["obs"], data["actions"], **memory)
        assert torch.allclose(value, data["values"], atol=1e-5)
        assert torch.allclose(logp, data["logprobs"], atol=1e-5)
    assert sum(b["starts"][1:].sum() for b in batches) > 0  # episodes began inside the rollouts


def test_the_first_ppo_ratio_of_a_recurrent_policy_is_one():
    policy, batches = collected("lstm")
    cfg = OmegaConf.create({"gamma": 0.99, "gae_lambda": 0.95, "epochs": 1, "minibatches": 3, "clip_coef": 0.2,
                            "norm_adv": True, "clip_vloss": True, "ent_coef": 0.0, "vf_coef": 0.5,
                            "max_grad_norm": 0.5, "target_kl": None})
    stats = ppo.update(policy, torch.optim.SGD(policy.parameters(), lr=0.0), batches[-1], cfg)
    assert stats["stats/approx_kl"] == 0.0 and stats["stats/clipfrac"] == 0.0


class Recording(torch.nn.Module):
    """A policy that keeps every call's state, starts, next state and value."""

    recurrent = True

    def __init__(self, policy):
        super().__init__()
        self.policy, self.calls = policy, []

    def initial_state(self, n, device=None):
        return self.policy.initial_state(n, device)

    def forward(self, obs, mask=None, state=None, starts=None):
        out = self.policy(obs, mask, state, starts)
        self.calls.append((state.clone(), starts.clone(), out[2].clone(), out[1].clone()))
        return out


def test_a_truncated_episode_is_bootstrapped_under_the_state_its_last_step_left():
    """CartPole cut at 5 steps: the cut step's reward is 1 + gamma * the value of the final
    observation under the state the episode's last step left, not under a fresh state."""
    cfg = load_config(["env=cartpole_masked", "num_envs=1", "model.core=lstm", "model.core_size=16",
                       "env.max_episode_steps=5", "env.reward_scale=1.0"])
    torch.manual_seed(0)
    rollout = Rollout(make_groups(cfg), torch.device("cpu"), 5, seed=0, gamma=0.5)
    policy = Recording(make_policy(cfg.model, rollout.observation_space, rollout.action_space))
    batch, episodes = rollout.collect(policy)
    rollout.close()
    assert episodes == [(5.0, 5)] and batch["dones"][4, 0] == 1
    acts, (state, starts, _, value), _ = policy.calls[:5], policy.calls[5], policy.calls[6]
    assert torch.equal(state, acts[4][2]) and not starts.any() and state.abs().sum() > 0
    assert batch["rewards"][4, 0] == pytest.approx(1.0 + 0.5 * value.item(), abs=1e-6)


def test_reinforce_learns_through_the_whole_rollout():
    policy, batches = collected("gru", seq_len=None)
    cfg = OmegaConf.create({"gamma": 0.99, "baseline": True, "norm_adv": True, "ent_coef": 0.0, "vf_coef": 0.5,
                            "max_grad_norm": 0.5, "baseline_epochs": 2})  # (2: the critic-only step replays memory too)
    batch = batches[-1]
    assert batch["states"].shape[0] == 1  # one state: the rollout's start
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    stats = reinforce.update(policy, torch.optim.SGD(policy.parameters(), lr=0.1), batch, cfg)
    assert 0 < stats["stats/used_fraction"] <= 1
    assert not torch.equal(before["core.rnn.weight_hh_l0"], policy.state_dict()["core.rnn.weight_hh_l0"])


def test_async_rollout_rates_a_recurrent_batch_as_its_collector_did():
    """With no lag (the learner's weights are the acting ones), the learner's replay of a batch
    collected one rollout ahead gives the behaviour's log-probabilities and values exactly."""
    from rlkit.async_rollout import AsyncCollector

    policy, batches = collected("lstm")
    batch = dict(batches[-1])
    AsyncCollector._rate(policy, batch)
    assert torch.equal(batch["prox_logprobs"], batch["logprobs"])
    assert torch.allclose(batch["values"], batches[-1]["values"])


@pytest.mark.parametrize(("core", "extra"), [("lstm", ["async_rollout=true", "amp=true"]), ("gru", ["algo=reinforce"]),
                                             ("transformer", ["vector=async", "overlap=true", "num_envs=4"])])
def test_training_with_memory_runs_checkpoints_and_resumes(tmp_path, core, extra):
    from rlkit import checkpoint
    from rlkit.train import main

    run = main(["env=cartpole_masked", f"model.core={core}", "model.core_size=16", "total_steps=512",
                "algo.num_steps=32", "algo.seq_len=16", f"run_dir={tmp_path / 'run'}", "progress=false", *extra])
    final = checkpoint.load(run / "checkpoints" / "final.safetensors")
    assert final["config"].model.core == core and any(k.startswith("core.") for k in final["model"])
    (run / "checkpoints" / "final.safetensors").rename(run / "checkpoints" / "step_512.safetensors")
    assert main([f"resume={run}", "total_steps=1024", "progress=false"]) == run
    assert checkpoint.load(run / "checkpoints" / "final.safetensors")["counters"]["step"] == 1024


def test_a_loaded_agent_remembers_until_reset(tmp_path):
    from rlkit.train import main

    run = main(["env=cartpole_masked", "model.core=lstm", "model.core_size=16", "total_steps=256",
                f"run_dir={tmp_path / 'run'}", "progress=false"])
    agent = rlkit.load_agent(run)
    x, a, b = (np.array(v, np.float32) for v in ([0.0, 0.0], [1.0, -0.2], [-1.0, 0.2]))
    first = agent.explain(x)
    agent.act(a)
    agent.act(a)
    after_a = agent.explain(x)
    assert agent.explain(x)[0].tolist() == after_a[0].tolist()  # explain does not advance the memory
    agent.reset()
    agent.act(b)
    agent.act(b)
    after_b = agent.explain(x)
    assert not np.allclose(after_a[0], after_b[0]) or after_a[1] != after_b[1]  # history matters
    agent.reset()
    assert agent.explain(x)[0].tolist() == first[0].tolist() and agent.explain(x)[1] == first[1]


def test_a_watched_recurrent_agent_plays_whole_episodes(tmp_path):
    from rlkit import watch
    from rlkit.train import main

    run = main(["env=cartpole_masked", "model.core=gru", "model.core_size=16", "total_steps=256",
                f"run_dir={tmp_path / 'run'}", "progress=false"])
    returns = watch.main([f"agent={run}", "episodes=2", "record=none"])
    assert len(returns) == 2 and all(r >= 1 for r in returns)


@pytest.mark.parametrize(("args", "message"), [
    (["model.core=lsmt"], "model.core must be one of: none, lstm, gru, transformer"),
    (["algo.seq_len=7"], r"algo.seq_len \(7\) must divide algo.num_steps \(64\)"),
    (["env=connect_four", "model.core=lstm"], "model.core=lstm: board games show the whole position"),
])
def test_bad_memory_settings_are_one_line_errors(args, message):
    with pytest.raises(UsageError, match=message):
        load_config(["env=cartpole_masked", *args])


def test_a_critic_core_of_its_own_feeds_only_the_value():
    policy = policy_with("gru", critic_core="true")
    assert sum(policy.state_sizes) == 2 * policy.core.state_size == policy.initial_state(1).shape[1]
    obs, starts = torch.randn(5, 2, 3), torch.zeros(5, 2, dtype=torch.bool)
    with torch.no_grad():
        logits, value = run(policy, obs, starts)
        for p in policy.critic_core.parameters():
            p.add_(0.5)
        again, moved = run(policy, obs, starts)
        step_logits, step_value, _ = policy(obs[0], None, policy.initial_state(2), starts[0])
    assert torch.equal(logits, again) and not torch.allclose(value, moved)
    assert torch.allclose(step_logits, logits[0], atol=1e-5) and torch.allclose(step_value, moved[0], atol=1e-5)
