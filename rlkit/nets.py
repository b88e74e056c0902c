"""Policies: an encoder (rlkit.encoders: MLP, Nature CNN, IMPALA CNN, Transformer) -> a core
(memory, see rlkit.cores) -> actor and critic heads. The one seam to the learners and players:

    policy(obs, mask, state, starts) -> (logits, value, state)   # any policy; starts [B]: one step,
                                                                  # starts [T, B]: a sequence from state
    policy(obs, mask) -> (logits, value)                          # a policy without memory

`policy.initial_state(n)` is the state of `n` games before their first step. The critic reads
the actor's features, or (`model.critic_encoder`) has an encoder of its own, and a core of its
own when the actor has one: two networks that share no layer.
Illegal actions get a logit of -1e9, so their probability is exactly zero."""
from __future__ import annotations

import torch
from torch import nn

from rlkit.cores import make_core, unroll
from rlkit.encoders import layer_init, make_encoder
from rlkit.errors import UsageError

MASKED_LOGIT = -1e9


def log_policy(logits: torch.Tensor) -> torch.Tensor:
    """Every action's log-probability, in fp32: the one formula behind sampling's stored
    log-probabilities (rlkit.rollout.act) and the learner's (logp_entropy_value), so PPO's
    ratio starts at 1. Masked actions (logit MASKED_LOGIT) get about -1e9, and exp() of that is 0."""
    return logits.float().log_softmax(-1)


def logp_entropy_value(policy, obs, actions, masks=None, state=None, starts=None):
    """Under the current policy: the log-probabilities of `actions`, the entropies and the values
    (illegal actions masked out, as when the actions were sampled). With `state` and `starts`
    ([T, B]), `obs` and `actions` are sequences [T, B, ...] that start from `state`."""
    logits, value = policy(obs, masks) if state is None else policy(obs, masks, state, starts)[:2]
    logp = log_policy(logits)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1), value


class Memoryless:
    """What a network `forward(obs, mask) -> (logits, value)` with no core (a wrapper such as
    rlkit.symmetry.Symmetric) needs to take the whole seam: an empty state, passed through.
    Put it first among the bases: `class Net(Memoryless, nn.Module)`."""

    recurrent = False

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        return torch.zeros((n, 0), device=device)

    def __call__(self, obs, action_mask=None, state=None, starts=None):
        out = nn.Module.__call__(self, obs, action_mask)
        return out if state is None else (*out, state)


class ActorCritic(nn.Module):
    def __init__(self, encoder: nn.Module, num_actions: int, core: nn.Module | None = None,
                 critic_core: nn.Module | None = None, critic_encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.critic_encoder = critic_encoder  # an encoder of the critic's own (None: it reads the actor's)
        self.core = core if core is not None else make_core({}, encoder.out_dim)
        self.critic_core = critic_core  # a core of the critic's own (None: the critic reads the actor's)
        self.recurrent = self.core.recurrent
        self.actor = layer_init(nn.Linear(self.core.out_dim, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear((critic_core or self.core).out_dim, 1), std=1.0)
        self.amp_dtype = None  # e.g. torch.bfloat16: the encoder under autocast (rlkit.precision; cores stay fp32)
        self.critic_detached = False  # the critic reads the features detached: its loss trains its own layers only

    @property
    def state_sizes(self) -> list[int]:
        """The actor's core's share of a state, then the critic's."""
        return [self.core.state_size, self.critic_core.state_size if self.critic_core is not None else 0]

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        return torch.zeros((n, sum(self.state_sizes)), device=device or self.actor.weight.device)

    def forward(self, obs, action_mask=None, state=None, starts=None):
        if state is None and self.recurrent:
            raise TypeError("a policy with memory needs its state: policy(obs, mask, state, starts)")
        sequence = starts is not None and starts.dim() == 2
        h = self._features(self.encoder, obs, starts if sequence else None)
        # What the critic reads: its own encoder's features, else the actor's (detached: its loss
        # trains its own layers only).
        own = self.critic_encoder is not None
        g = self._features(self.critic_encoder, obs, starts if sequence else None) if own \
            else h.detach() if self.critic_detached else h
        seen = heard = h
        if state is not None and self.recurrent:  # (a memoryless policy's empty state passes through)
            mine, theirs = state.split(self.state_sizes, -1)
            seen, mine = unroll(self.core, h, mine, starts) if sequence else self.core(h, mine, starts)
            heard = seen.detach() if self.critic_detached else seen
            if self.critic_core is not None:
                heard, theirs = unroll(self.critic_core, g, theirs, starts) if sequence \
                    else self.critic_core(g, theirs, starts)
            state = torch.cat([mine, theirs], -1)
        else:
            heard = g
        logits = self.actor(seen)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask.bool(), MASKED_LOGIT)
        value = self.critic(heard).squeeze(-1)
        return (logits, value) if state is None else (logits, value, state)

    def _features(self, encoder: nn.Module, obs: torch.Tensor, starts: torch.Tensor | None) -> torch.Tensor:
        """The encoder's features in fp32 ([B, F]; [T, B, F] for a sequence: `starts` [T, B])."""
        with torch.autocast(obs.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            f = encoder(obs if starts is None else obs.flatten(0, 1))
        return f.float() if starts is None else f.float().view(*starts.shape, -1)

    def prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """Under `amp`, a batch of frames converted once as the encoder would on every pass (scaled,
        in its memory layout and autocast dtype), for an update of many passes: PPO's epochs skip two
        conversions per minibatch (BENCHMARKS.md has the time saved). In fp32, gathering minibatches
        of 4-byte floats costs what it saves, so frames stay uint8 there."""
        prepare = getattr(self.encoder, "prepare", None)
        if prepare is None or self.amp_dtype is None or obs.dtype != torch.uint8:
            return obs
        return prepare(obs, self.amp_dtype)


def make_policy(model_cfg, observation_space, action_space, board: bool = False) -> ActorCritic:
    """`board`: observations are a board game's planes, channels last (see the module notes)."""
    try:
        encoder = make_encoder(model_cfg, observation_space.shape, board)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"model {model_cfg.name} cannot take observations of shape "
                         f"{tuple(observation_space.shape)}: {str(e).splitlines()[0]}") from None
    core = make_core(model_cfg, encoder.out_dim)
    own = bool(model_cfg.get("critic_encoder"))
    critic_encoder = make_encoder(model_cfg, observation_space.shape, board) if own else None
    critic_core = make_core(model_cfg, encoder.out_dim) if core.recurrent and (own or model_cfg.get("critic_core")) \
        else None
    return ActorCritic(encoder, int(action_space.n), core, critic_core, critic_encoder)
