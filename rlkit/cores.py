"""Memory between the encoder and the heads (`model.core`): none, lstm, gru, or transformer, a
gated Transformer over the agent's last `model.memory` steps (GTrXL, Parisotto et al. 2019).

Every core steps a batch of games at once: `core(x [B, D], state [B, S], start [B] bool) ->
(y [B, out_dim], state)`, its state first zeroed where `start` (an episode begins with this
step). `unroll(core, x [T, B, D], state, starts [T, B])` is the same steps over a sequence (in
as few calls as the episode starts allow, or batched over time), computing what acting computed,
so the learner's log-probabilities are the rollout's. A state is one
float tensor per game, [B, state_size] (zero-sized for `none`): rollouts, Ray workers and the
agent API carry every core alike. Each step costs the same however long the episode: the
Transformer keeps a fixed window of its layers' past inputs (Transformer-XL's memory), not the
whole episode."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

CORES = ("none", "lstm", "gru", "transformer")


def _keep(state: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The state, zeroed where an episode starts."""
    return state * (~start.bool()).unsqueeze(-1).to(state.dtype)


class NoCore(nn.Module):
    """No memory: the encoder's output as it is."""

    recurrent, state_size = False, 0

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x, state, start):
        return x, state


class RNN(nn.Module):
    """An LSTM or GRU of `layers` layers (PyTorch's nn.LSTM / nn.GRU: oneDNN's or cuDNN's fused
    kernels), orthogonal weights and zero biases as in CleanRL's LSTM agents. The state is every
    layer's h (and the LSTM's c), side by side. A sequence runs as few calls as its episode starts
    allow: one per stretch of steps in which no game's episode begins."""

    recurrent = True

    def __init__(self, dim: int, size: int, layers: int = 1, kind: str = "lstm"):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(dim, size, layers)
        for name, p in self.rnn.named_parameters():
            nn.init.orthogonal_(p, 1.0) if "weight" in name else nn.init.zeros_(p)
        self.lstm, self.layers, self.size, self.out_dim = kind == "lstm", layers, size, size
        self.state_size = layers * size * (2 if self.lstm else 1)

    def _split(self, state):  # [B, S] -> h (and c) [layers, B, size]
        parts = state.reshape(state.shape[0], -1, self.layers, self.size).permute(1, 2, 0, 3)
        return (parts[0].contiguous(), parts[1].contiguous()) if self.lstm else parts[0].contiguous()

    def _join(self, hidden):  # the inverse of _split
        parts = torch.stack(hidden) if self.lstm else hidden.unsqueeze(0)
        return parts.permute(2, 0, 1, 3).flatten(1)

    def forward(self, x, state, start):
        y, hidden = self.rnn(x.unsqueeze(0), self._split(_keep(state, start)))
        return y[0], self._join(hidden)

    def sequence(self, x, state, starts):
        cuts = [0, *(starts[1:].any(1).nonzero().flatten() + 1).tolist(), starts.shape[0]]
        hidden, out = self._split(state), []
        for a, b in zip(cuts, cuts[1:]):
            keep = (~starts[a]).to(x.dtype)[None, :, None]  # games whose episode goes on
            hidden = tuple(h * keep for h in hidden) if self.lstm else hidden * keep
            y, hidden = self.rnn(x[a:b], hidden)
            out.append(y)
        return torch.cat(out), self._join(hidden)


class _Gate(nn.Module):
    """GTrXL's GRU-type gate in place of a residual connection: g = (1 - z) x + z tanh(W y + U (r x)),
    its update gate biased shut (bias 2), so a new block starts close to the identity."""

    def __init__(self, dim: int, bias: float = 2.0):
        super().__init__()
        self.wy, self.ux, self.ug = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, 2 * dim), \
            nn.Linear(dim, dim, bias=False)
        self.bias = bias

    def forward(self, x, y):
        wr, wz, wg = self.wy(y).chunk(3, -1)
        ur, uz = self.ux(x).chunk(2, -1)
        r, z = torch.sigmoid(wr + ur), torch.sigmoid(wz + uz - self.bias)
        return (1 - z) * x + z * torch.tanh(wg + self.ug(r * x))


class _Block(nn.Module):
    """One GTrXL block: each step's query attends over its memory and itself (pre-norm, learned
    embeddings per age), then a feed-forward layer; both through gates. Keys and values are
    linear in the normed input plus the age embedding, so they are computed once per step and
    once per age, then added: a sequence does not recompute them for every window they are in."""

    def __init__(self, dim: int, heads: int, memory: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.age = nn.Parameter(torch.randn(memory + 1, dim) * 0.02)  # slot j: the step memory - j ago
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.gate1, self.gate2 = _Gate(dim), _Gate(dim)

    def keys_values(self, x):
        """[..., dim] inputs -> their keys and values [..., 2 * dim], before the age's share."""
        return self.kv(self.norm1(x))

    def forward(self, h, kv, attend):
        """h [n, dim]: the steps' inputs; kv [n, memory + 1, 2 * dim]: `keys_values` of each step's
        window (its memory, then itself); attend [n, memory + 1]: the slots of its episode."""
        n, d = h.shape
        q = self.q(self.norm1(h) + self.age[-1]).view(n, 1, self.heads, -1).transpose(1, 2)
        kv = kv + F.linear(self.age, self.kv.weight)
        k, v = (t.view(n, -1, self.heads, d // self.heads).transpose(1, 2) for t in kv.chunk(2, -1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :])
        h = self.gate1(h, F.relu(self.proj(y.transpose(1, 2).reshape(n, d))))
        return self.gate2(h, F.relu(self.ff(self.norm2(h))))


class MemoryTransformer(nn.Module):
    """GTrXL over time: `layers` gated blocks, each attending over its own inputs of the last
    `memory` steps of the episode (steps from before the episode started are masked out)."""

    recurrent = True

    def __init__(self, dim: int, size: int, layers: int = 1, memory: int = 32, heads: int = 4):
        super().__init__()
        self.inp = nn.Linear(dim, size)
        self.blocks = nn.ModuleList(_Block(size, heads, memory) for _ in range(layers))
        self.memory, self.size, self.out_dim = memory, size, size
        self.state_size = memory * (1 + layers * size)  # which slots hold this episode's steps, then the inputs

    def forward(self, x, state, start):
        b, m = x.shape[0], self.memory
        state = _keep(state, start)
        held, mem = state[:, :m], state[:, m:].reshape(b, len(self.blocks), m, self.size)
        attend = torch.cat([held, torch.ones_like(held[:, :1])], 1) > 0.5
        h, inputs = self.inp(x), []
        for i, block in enumerate(self.blocks):
            inputs.append(h)
            h = block(h, block.keys_values(torch.cat([mem[:, i], h.unsqueeze(1)], 1)), attend)
        mem = torch.cat([mem[:, :, 1:], torch.stack(inputs, 1).unsqueeze(2)], 2)  # the oldest step leaves
        held = torch.cat([held[:, 1:], torch.ones_like(held[:, :1])], 1)
        return h, torch.cat([held, mem.flatten(1)], 1)

    def sequence(self, x, state, starts):
        """The steps of a sequence all at once, layer by layer: step t's query sees the window of
        the `memory` layer inputs before it (from the stored memory, then the sequence's own),
        those of another episode masked out; the arithmetic of `forward`, batched over time."""
        (t_len, b), m = starts.shape, self.memory
        held, mem = state[:, :m], state[:, m:].reshape(b, len(self.blocks), m, self.size)
        episode = starts.t().long().cumsum(1)  # [B, T]: episodes begun in the sequence by each step
        of = torch.cat([torch.where(held > 0.5, 0, -1), episode], 1)  # the stored slots: episode 0, or none
        attend = (of.unfold(1, m + 1, 1) == episode.unsqueeze(-1)).flatten(0, 1)  # [B * T, m + 1]
        h, inputs = self.inp(x).transpose(0, 1), []  # [B, T, D]
        for i, block in enumerate(self.blocks):
            seq = torch.cat([mem[:, i], h], 1)  # [B, m + T, D]
            inputs.append(seq[:, -m:])
            window = block.keys_values(seq).unfold(1, m + 1, 1).transpose(2, 3).flatten(0, 1)  # [B * T, m + 1, 2D]
            h = block(h.flatten(0, 1), window, attend).view(b, t_len, -1)
        held = (of[:, -m:] == episode[:, -1:]).to(state.dtype)
        return h.transpose(0, 1), torch.cat([held, torch.stack(inputs, 1).flatten(1)], 1)


def unroll(core: nn.Module, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor):
    """A core over a sequence: outputs [T, B, out_dim] and the final state. Step by step, unless
    the core has a faster `sequence` that gives the same."""
    if not core.recurrent:
        return x, state
    if hasattr(core, "sequence"):
        return core.sequence(x, state, starts)
    out = []
    for t in range(x.shape[0]):
        y, state = core(x[t], state, starts[t])
        out.append(y)
    return torch.stack(out), state


def make_core(model_cfg, dim: int) -> nn.Module:
    kind = model_cfg.get("core", "none")
    size, layers = model_cfg.get("core_size", 128), model_cfg.get("core_layers", 1)
    if kind == "none":
        return NoCore(dim)
    if kind in ("lstm", "gru"):
        return RNN(dim, size, layers, kind)
    heads = math.gcd(size, 4)
    return MemoryTransformer(dim, size, layers, model_cfg.get("memory", 32), heads)
