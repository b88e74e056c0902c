"""Policies: an encoder (MLP, Nature CNN, IMPALA CNN, Transformer) -> a core (memory, see
rlkit.cores) -> actor and critic heads. The one seam to the learners and players:

    policy(obs, mask, state, starts) -> (logits, value, state)   # any policy; starts [B]: one step,
                                                                  # starts [T, B]: a sequence from state
    policy(obs, mask) -> (logits, value)                          # a policy without memory

`policy.initial_state(n)` is the state of `n` games before their first step.

Frames arrive as uint8 [B, *stack, H, W] and become floats in the first layer; leading
stack/channel dimensions are folded into channels. Board games (`board=True`) arrive as
PettingZoo gives them, [B, H, W, planes] (channels last): `cnn`/`impala` become a small CNN of
3x3 convolutions that keeps the board's size, `transformer` takes one token per cell.
Illegal actions get a logit of -1e9, so their probability is exactly zero."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from rlkit.cores import make_core, unroll
from rlkit.errors import UsageError

MASKED_LOGIT = -1e9


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def is_image(shape) -> bool:
    return len(shape) >= 3


def _to_float(obs: torch.Tensor) -> torch.Tensor:
    """Frames (uint8) scaled to [0, 1]; other integers and float64 as float32; float32 and
    16-bit floats (a batch already converted by `ActorCritic.prepare`) as they are."""
    if obs.dtype == torch.uint8:
        return obs.float() / 255.0
    return obs if obs.dtype in (torch.float32, torch.bfloat16, torch.float16) else obs.float()


def _channels(shape) -> int:
    return int(np.prod(shape[:-2]))


class MLP(nn.Module):
    def __init__(self, shape, hidden=64, layers=2):
        super().__init__()
        dims = [int(np.prod(shape))] + [hidden] * layers
        self.net = nn.Sequential(nn.Flatten(), *[m for a, b in zip(dims, dims[1:])
                                                 for m in (layer_init(nn.Linear(a, b)), nn.Tanh())])
        self.out_dim = dims[-1]

    def forward(self, obs):
        return self.net(_to_float(obs))


class _ConvEncoder(nn.Module):
    """Convolutions over frames (stack and channels folded together), then one dense layer.
    Channels-last memory (weights and frames): oneDNN's and cuDNN's fast layout (BENCHMARKS.md
    has what it gives the PPO update)."""

    def __init__(self, shape, convs: nn.Module, hidden: int):
        super().__init__()
        self.convs = nn.Sequential(convs, nn.Flatten())
        with torch.no_grad():
            n = self.convs(torch.zeros(1, _channels(shape), *shape[-2:])).shape[1]
        self.convs.to(memory_format=torch.channels_last)
        self.fc = nn.Sequential(layer_init(nn.Linear(n, hidden)), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs):
        return self.fc(self.convs(_to_float(self.layout(obs))))

    @staticmethod
    def layout(obs):
        return obs.flatten(1, -3).contiguous(memory_format=torch.channels_last)  # a no-op once prepared

    def prepare(self, obs, dtype):
        # uint8 is exact in bf16 and fp16, and their division rounds once from float32, so this
        # gives what float32-then-cast gives, without a float32 copy of the whole batch.
        return self.layout(obs).to(dtype).div_(255.0)


def _conv_stack(c: int, widths, kernels) -> nn.Sequential:
    """Convolutions of `widths` channels, each (kernel, stride, padding) from `kernels`, with ReLUs."""
    ins = [c, *widths[:-1]]
    return nn.Sequential(*[m for a, b, (k, stride, pad) in zip(ins, widths, kernels)
                           for m in (layer_init(nn.Conv2d(a, b, k, stride=stride, padding=pad)), nn.ReLU())])


NATURE = ((8, 4, 0), (4, 2, 0), (3, 1, 0))  # the Nature CNN's kernels and strides, layer by layer


class NatureCNN(_ConvEncoder):
    """Mnih et al. (2015): three convolutions (32, 64, 64 channels) and a fully connected layer;
    `channels` gives other widths, or fewer layers (a pruned or distilled network, rlkit.shrink)."""

    def __init__(self, shape, hidden=512, channels=(32, 64, 64)):
        if not 1 <= len(channels) <= len(NATURE):
            raise ValueError(f"the Nature CNN takes 1 to {len(NATURE)} convolution widths, got {len(channels)}")
        super().__init__(shape, _conv_stack(_channels(shape), channels, NATURE), hidden)


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv0, self.conv1 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaCNN(_ConvEncoder):
    """Espeholt et al. (2018): conv + max-pool + two residual blocks per stage."""

    def __init__(self, shape, channels=(16, 32, 32), hidden=256):
        layers, c = [], _channels(shape)
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       _Residual(out), _Residual(out)]
            c = out
        super().__init__(shape, nn.Sequential(*layers, nn.ReLU()), hidden)


class BoardCNN(nn.Module):
    """Board planes [B, H, W, C]: 3x3 convolutions (three of 64 channels unless `channels` says
    otherwise; padding keeps H x W), one dense layer."""

    def __init__(self, shape, hidden=256, channels=(64, 64, 64)):
        super().__init__()
        h, w, c = shape
        self.convs = nn.Sequential(*_conv_stack(c, channels, [(3, 1, 1)] * len(channels)), nn.Flatten())
        self.fc = nn.Sequential(layer_init(nn.Linear(channels[-1] * h * w, hidden)), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs):
        return self.fc(self.convs(_to_float(obs).permute(0, 3, 1, 2)))


class Transformer(nn.Module):
    """Tokens: non-overlapping patches of the stacked frames, one per cell of a board
    ([H, W, planes], `cells=True`), or one per feature of a vector observation. Pre-norm
    encoder blocks; the CLS token's output feeds the heads."""

    def __init__(self, shape, patch=12, dim=64, layers=2, heads=4, dropout=0.0, cells=False):
        super().__init__()
        self.image, self.cells = is_image(shape) and not cells, cells
        if self.cells:
            tokens = int(np.prod(shape[:-1]))
            self.embed = nn.Linear(shape[-1], dim)
        elif self.image:
            self.embed = nn.Conv2d(_channels(shape), dim, patch, stride=patch)
            tokens = (shape[-2] // patch) * (shape[-1] // patch)
            if tokens == 0:
                raise ValueError(f"patch {patch} is larger than the frame {tuple(shape[-2:])}")
        else:
            tokens = int(np.prod(shape))
            self.embed = nn.Linear(1, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, obs):
        x = _to_float(obs)
        if self.cells:
            x = self.embed(x.flatten(1, -2))  # [B, H*W, dim]
        elif self.image:
            x = self.embed(x.flatten(1, -3)).flatten(2).transpose(1, 2)  # [B, tokens, dim]
        else:
            x = self.embed(x.flatten(1).unsqueeze(-1))
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x)[:, 0])


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
                 critic_core: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
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
        with torch.autocast(obs.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            h = self.encoder(obs.flatten(0, 1) if sequence else obs)
        h = h.float().view(*starts.shape, -1) if sequence else h.float()
        seen = heard = h  # what the actor and the critic read
        if state is not None and self.recurrent:  # (a memoryless policy's empty state passes through)
            mine, theirs = state.split(self.state_sizes, -1)
            seen, mine = unroll(self.core, h, mine, starts) if sequence else self.core(h, mine, starts)
            heard = seen
            if self.critic_core is not None:
                given = h.detach() if self.critic_detached else h
                heard, theirs = unroll(self.critic_core, given, theirs, starts) if sequence \
                    else self.critic_core(given, theirs, starts)
            state = torch.cat([mine, theirs], -1)
        if self.critic_detached and heard is seen:  # (a critic core of its own read them detached)
            heard = heard.detach()
        logits = self.actor(seen)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask.bool(), MASKED_LOGIT)
        value = self.critic(heard).squeeze(-1)
        return (logits, value) if state is None else (logits, value, state)

    def prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """Under `amp`, a batch of frames converted once as the encoder would on every pass (scaled,
        in its memory layout and autocast dtype), for an update of many passes: PPO's epochs skip two
        conversions per minibatch (BENCHMARKS.md has the time saved). In fp32, gathering minibatches
        of 4-byte floats costs what it saves, so frames stay uint8 there."""
        prepare = getattr(self.encoder, "prepare", None)
        if prepare is None or self.amp_dtype is None or obs.dtype != torch.uint8:
            return obs
        return prepare(obs, self.amp_dtype)


def make_encoder(model_cfg, shape, board: bool = False) -> nn.Module:
    m = model_cfg
    if board and len(shape) != 3:
        raise ValueError("a board needs observations [H, W, planes]")
    if m.name == "transformer":
        return Transformer(shape, m.patch, m.dim, m.layers, m.heads, m.dropout, cells=board)
    widths = {"channels": tuple(m.channels)} if m.name == "cnn" and m.get("channels") else {}
    if board and m.name in ("cnn", "impala"):
        return BoardCNN(shape, m.hidden, **widths)
    if not is_image(shape):  # CNNs on vector observations fall back to an MLP of their width
        return MLP(shape, m.hidden, m.get("layers", 2))
    if m.name == "impala":
        return ImpalaCNN(shape, tuple(m.channels), m.hidden)
    if m.name == "cnn":
        return NatureCNN(shape, m.hidden, **widths)
    return MLP(shape, m.hidden, m.layers)


def make_policy(model_cfg, observation_space, action_space, board: bool = False) -> ActorCritic:
    """`board`: observations are a board game's planes, channels last (see the module notes)."""
    try:
        encoder = make_encoder(model_cfg, observation_space.shape, board)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"model {model_cfg.name} cannot take observations of shape "
                         f"{tuple(observation_space.shape)}: {str(e).splitlines()[0]}") from None
    core = make_core(model_cfg, encoder.out_dim)
    critic_core = make_core(model_cfg, encoder.out_dim) if core.recurrent and model_cfg.get("critic_core") else None
    return ActorCritic(encoder, int(action_space.n), core, critic_core)
