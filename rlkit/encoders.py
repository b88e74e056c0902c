"""Encoders: what turns an observation into features for a policy's core and heads (rlkit.nets).
MLP for vectors, the Nature CNN and IMPALA CNN for frames, a small CNN for board planes, and a
Transformer over patches, cells or features.

Frames arrive as uint8 [B, *stack, H, W] and become floats in the first layer; leading
stack/channel dimensions are folded into channels. Board games (`board=True`) arrive as
PettingZoo gives them, [B, H, W, planes] (channels last): `cnn`/`impala` become a small CNN of
3x3 convolutions that keeps the board's size, `transformer` takes one token per cell."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


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
