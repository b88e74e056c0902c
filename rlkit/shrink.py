"""Smaller networks from a trained agent (`python -m rlkit.export to=pruned|distilled`):

- `prune`: structured pruning. Whole convolution channels and dense units are removed (by the
  L1 norm of their incoming weights, Li et al. 2017), giving a smaller dense network that rlkit
  builds from its config (`model.channels`, `model.hidden`), not a masked one.
- `distill`: a smaller student network trained on the teacher's action distributions (KL) and
  values over the teacher's own games (Rusu et al. 2016, "Policy Distillation").

`games` plays the agent in its own game and keeps what it saw: the examples that check an ONNX
graph, calibrate int8 and teach a student."""
from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from tqdm import tqdm

from rlkit.encoders import BoardCNN, NatureCNN
from rlkit.errors import UsageError
from rlkit.nets import MASKED_LOGIT, ActorCritic, log_policy, make_policy

DEFAULT_CHANNELS = {NatureCNN: [32, 64, 64], BoardCNN: [64, 64, 64]}


def games(agent, samples: int, seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """`samples` observations from the agent's own games (actions sampled from its policy), and
    for board games the legal-action masks (it plays both seats)."""
    rng = np.random.default_rng(seed)
    env, seen, masks = agent.make_env(), [], []
    bar = tqdm(total=samples, desc="playing", unit="obs", disable=not progress, leave=False)
    board, game = agent.cfg.env.family == "board", 0
    try:
        while len(seen) < samples:
            agent.reset()
            if board:
                env.reset(seed=seed + game)
                for _ in env.agent_iter():
                    obs, _, term, trunc, _ = env.last()
                    action = None
                    if not (term or trunc) and len(seen) < samples:
                        seen.append(obs["observation"])
                        masks.append(obs["action_mask"].astype(bool))
                        probs, _ = agent.observe(seen[-1], masks[-1])
                        action = int(rng.choice(len(probs), p=probs))
                        bar.update()
                    elif not (term or trunc):
                        break
                    env.step(action)
            else:
                obs, _ = env.reset(seed=seed + game)
                done = False
                while not done and len(seen) < samples:
                    seen.append(obs)
                    probs, _ = agent.observe(obs)
                    obs, _, terminated, truncated, _ = env.step(int(rng.choice(len(probs), p=probs)))
                    done = terminated or truncated
                    bar.update()
            game += 1
    finally:
        env.close()
        bar.close()
    return np.stack(seen), (np.stack(masks) if board else None)


def encoder_of(policy: nn.Module, what: str):
    """The convolutional encoder that pruning and distillation resize, or a one-line refusal."""
    enc = policy.encoder if isinstance(policy, ActorCritic) else None
    if type(enc) not in DEFAULT_CHANNELS or policy.recurrent:
        raise UsageError(f"to={what} takes agents with model=cnn on frames or boards and model.core=none")
    return enc


def smaller_config(cfg, channels: list[int], hidden: int):
    """`cfg` with the network's widths replaced (everything else as the agent was trained, but a
    critic with an encoder of its own: the smaller network's critic reads the actor's features)."""
    model = {"channels": list(map(int, channels)), "hidden": int(hidden)}
    if cfg.model.get("critic_encoder"):
        model["critic_encoder"] = False
    cfg = OmegaConf.merge(cfg, {"model": model})
    OmegaConf.set_struct(cfg, True)
    return cfg


@torch.no_grad()
def prune(policy: ActorCritic, cfg, keep: float, spaces, keep_units: float | None = None) -> tuple[ActorCritic, object]:
    """A network with `keep` of every convolution's channels and `keep_units` (default: `keep`) of
    the dense layer's units (at least one each), those with the largest incoming L1 norm, their
    weights copied: the same function on what is kept. Returns the network and its config."""
    enc = encoder_of(policy, "pruned")
    convs = [m for m in enc.convs.modules() if isinstance(m, nn.Conv2d)]
    fc = enc.fc[0]
    kept, before = [], None
    for conv in convs:
        w = conv.weight if before is None else conv.weight[:, before]
        idx = w.abs().sum((1, 2, 3)).topk(max(1, round(keep * w.shape[0]))).indices.sort().values
        kept.append((w[idx], conv.bias[idx]))
        before = idx
    cells = fc.in_features // convs[-1].out_channels  # flattened as (channel, row, column)
    w = fc.weight[:, (before[:, None] * cells + torch.arange(cells)).reshape(-1)]
    rows = w.abs().sum(1).topk(max(1, round((keep if keep_units is None else keep_units) * w.shape[0]))).indices
    rows = rows.sort().values
    small_cfg = smaller_config(cfg, [len(b) for _, b in kept], len(rows))
    small = make_policy(small_cfg.model, *spaces, board=cfg.env.family == "board")
    small_convs = [m for m in small.encoder.convs.modules() if isinstance(m, nn.Conv2d)]
    for conv, (weight, bias) in zip(small_convs, kept):
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    small.encoder.fc[0].weight.copy_(w[rows])
    small.encoder.fc[0].bias.copy_(fc.bias[rows])
    # A critic with an encoder of its own read other features: its pruned head starts afresh.
    for head in ("actor",) if policy.critic_encoder is not None else ("actor", "critic"):
        getattr(small, head).weight.copy_(getattr(policy, head).weight[:, rows])
        getattr(small, head).bias.copy_(getattr(policy, head).bias)
    return small, small_cfg


def student_config(teacher: ActorCritic, cfg, channels: list[int] | None, hidden: int | None):
    """The student's config: `channels` (their number is its depth) and `hidden`, by default half
    the teacher's widths."""
    enc = encoder_of(teacher, "distilled")
    widths = [m.out_channels for m in enc.convs.modules() if isinstance(m, nn.Conv2d)]
    return smaller_config(cfg, channels or [max(1, c // 2) for c in widths], hidden or max(1, enc.out_dim // 2))


def distill(teacher: nn.Module, student_cfg, spaces, obs: np.ndarray, masks: np.ndarray | None, epochs: int,
            lr: float = 1e-3, batch: int = 128, seed: int = 0, progress: bool = True,
            student: ActorCritic | None = None) -> tuple[ActorCritic, dict]:
    """A student network (`student_cfg`) taught the teacher's action distributions (KL divergence
    from the teacher's) and values (squared error, in units of the teacher's value spread) on
    `obs`; 1 in 10 observations are held out to report on. `student`: a network to start from
    (a pruned one) instead of a new one. Returns the student and {kl, greedy_agree, value_rmse}
    on the held-out ones."""
    torch.manual_seed(seed)
    fresh = student is None
    if fresh:
        student = make_policy(student_cfg.model, *spaces, board=student_cfg.env.family == "board")
    o, m = torch.as_tensor(obs), None if masks is None else torch.as_tensor(masks)
    with torch.inference_mode():
        out = [teacher(o[i:i + 1024], None if m is None else m[i:i + 1024]) for i in range(0, len(o), 1024)]
    target = log_policy(torch.cat([x[0] for x in out])).clone()
    values = torch.cat([x[1] for x in out]).clone()
    scale = values.std().clamp(min=1e-3)
    if fresh:
        with torch.no_grad():  # the student's values start at the teacher's mean, not 0
            student.critic.bias.fill_(float(values.mean()))
    order = torch.randperm(len(o), generator=torch.Generator().manual_seed(seed))
    held, train = order[: len(o) // 10], order[len(o) // 10:]
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    steps = epochs * -(-len(train) // batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 - k / steps)
    bar = tqdm(total=steps, desc="distilling", unit="batch", disable=not progress, leave=False)

    def losses(idx):
        # The value head learns from the student's features as they are (detached): a value target
        # pulling on the shared layers slows the policy's learning many times over.
        h = student.encoder(o[idx]).float()
        logits = student.actor(h)
        if m is not None:
            logits = logits.masked_fill(~m[idx], MASKED_LOGIT)
        kl = (target[idx].exp() * (target[idx] - log_policy(logits))).sum(-1).mean()
        return kl, (((student.critic(h.detach()).squeeze(-1) - values[idx]) / scale) ** 2).mean(), logits

    for _ in range(epochs):
        for idx in train[torch.randperm(len(train))].split(batch):
            kl, vloss, _ = losses(idx)
            optimizer.zero_grad()
            (kl + vloss).backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(kl=f"{kl.item():.4f}")
    bar.close()
    with torch.inference_mode():
        kl, vloss, logits = losses(held)
        agree = (logits.argmax(-1) == target[held].argmax(-1)).float().mean()
    return student.eval(), {"kl": float(kl), "greedy_agree": float(agree), "value_rmse": float(vloss.sqrt() * scale)}


def parameters(policy: nn.Module) -> int:
    return sum(p.numel() for p in policy.parameters())
