"""Memory between the encoder and the heads (`model.core`): none, lstm, gru, or transformer, a
gated Transformer over the agent's last `model.memory` steps (GTrXL, Parisotto et al. 2019).

Every core steps a batch of games at once: `core(x [B, D], state [B, S], start [B] bool) ->
(y [B, out_dim], state)`, its state first zeroed where `start` (an episode begins with this
step). `unroll(core, x [T, B, D], state, starts [T, B])` is the same steps one after the other,
the arithmetic acting does, so the learner's log-probabilities are the rollout's. A state is one
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
    """`layers` stacked LSTM or GRU cells (PyTorch's fused kernels), orthogonal weights and zero
    biases as in CleanRL's LSTM agents. The state is every layer's h (and the LSTM's c), side by side."""

    recurrent = True

    def __init__(self, dim: int, size: int, layers: int = 1, kind: str = "lstm"):
        super().__init__()
        cell = nn.LSTMCell if kind == "lstm" else nn.GRUCell
        self.cells = nn.ModuleList(cell(dim if i == 0 else size, size) for i in range(layers))
        for name, p in self.cells.named_parameters():
            nn.init.orthogonal_(p, 1.0) if "weight" in name else nn.init.zeros_(p)
        self.lstm, self.size, self.out_dim = kind == "lstm", size, size
        self.state_size = layers * size * (2 if self.lstm else 1)

    def forward(self, x, state, start):
        parts, out = _keep(state, start).split(self.size, -1), []
        for i, cell in enumerate(self.cells):
            if self.lstm:
                h, c = cell(x, (parts[2 * i], parts[2 * i + 1]))
                out += [h, c]
            else:
                h = cell(x, parts[i])
                out.append(h)
            x = h
        return x, torch.cat(out, -1)


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
    """One GTrXL block for one step: the step's query attends over its memory and itself
    (pre-norm, learned embeddings per age), then a feed-forward layer; both through gates."""

    def __init__(self, dim: int, heads: int, memory: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.age = nn.Parameter(torch.randn(memory + 1, dim) * 0.02)  # slot j: the step memory - j ago
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.gate1, self.gate2 = _Gate(dim), _Gate(dim)

    def forward(self, h, mem, attend):
        b, d = h.shape
        tokens = self.norm1(torch.cat([mem, h.unsqueeze(1)], 1)) + self.age  # [B, M + 1, D]
        q = self.q(tokens[:, -1:]).view(b, 1, self.heads, -1).transpose(1, 2)
        k, v = (t.view(b, -1, self.heads, d // self.heads).transpose(1, 2) for t in self.kv(tokens).chunk(2, -1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :])
        h = self.gate1(h, F.relu(self.proj(y.transpose(1, 2).reshape(b, d))))
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
        held, mem = state[:, :m], state[:, m:].view(b, len(self.blocks), m, self.size)
        attend = torch.cat([held, torch.ones_like(held[:, :1])], 1) > 0.5
        h, inputs = self.inp(x), []
        for i, block in enumerate(self.blocks):
            inputs.append(h)
            h = block(h, mem[:, i], attend)
        mem = torch.cat([mem[:, :, 1:], torch.stack(inputs, 1).unsqueeze(2)], 2)  # the oldest step leaves
        held = torch.cat([held[:, 1:], torch.ones_like(held[:, :1])], 1)
        return h, torch.cat([held, mem.flatten(1)], 1)


def unroll(core: nn.Module, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor):
    """A core over a sequence, step by step: outputs [T, B, out_dim] and the final state."""
    if not core.recurrent:
        return x, state
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
