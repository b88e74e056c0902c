"""Train an agent:  python -m rlkit.train env=doom algo=ppo model=cnn seed=1 ...

The whole loop, top to bottom: collect a rollout, update, log, maybe checkpoint."""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from rlkit import checkpoint
from rlkit.agent import spaces_of
from rlkit.algos import ALGOS
from rlkit.config import UsageError, cli, load_config
from rlkit.envs import make_vec
from rlkit.logger import Logger
from rlkit.nets import make_policy
from rlkit.rollout import Rollout


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device={name} but CUDA is not available here; choose from: auto, cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device=mps but MPS is not available here; choose from: auto, cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_label(cfg) -> str:
    return cfg.env.game.lower() if cfg.env.family == "atari" and cfg.env.name == "atari" else cfg.env.name


def make_run_dir(cfg) -> Path:
    name = f"{run_label(cfg)}__{cfg.algo.name}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.run_dir) if cfg.run_dir else Path(cfg.runs_root) / name
    if (run_dir / "checkpoints").exists():
        raise UsageError(f"run_dir {run_dir} already holds a run; choose another run_dir")
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    return run_dir


def train(cfg) -> Path:
    device = pick_device(cfg.device)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    envs = make_vec(cfg)
    run_dir = make_run_dir(cfg)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    policy = make_policy(cfg.model, envs.single_observation_space, envs.single_action_space).to(device)
    if cfg.amp:
        policy.amp_dtype = torch.bfloat16
    model = torch.compile(policy) if cfg.compile else policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.algo.lr, eps=1e-5)
    algo = ALGOS[cfg.algo.name]
    spaces = spaces_of(envs.single_observation_space, envs.single_action_space)
    rollout = Rollout(envs, device, cfg.algo.num_steps, cfg.seed)
    logger = Logger(run_dir, cfg, progress=cfg.progress)
    # REINFORCE without a learned baseline has no value to bootstrap truncations with.
    bootstrap = cfg.algo.name == "ppo" or cfg.algo.get("baseline", False)

    batch_steps = cfg.algo.num_steps * cfg.num_envs
    num_updates = math.ceil(cfg.total_steps / batch_steps)
    step, last_ckpt = 0, 0
    for update in range(1, num_updates + 1):
        lr = cfg.algo.lr * (1 - (update - 1) / num_updates if cfg.algo.anneal_lr else 1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch, episodes = rollout.collect(model, cfg.algo.gamma, bootstrap)
        step += batch_steps
        stats = algo.update(model, optimizer, batch, cfg.algo)
        logger.episodes_done(step, episodes)
        if update % cfg.log_every == 0 or update == num_updates:
            logger.scalars(step, {**stats, "lr": lr, "time/sps": logger.sps(step)})
        logger.advance(step)
        if cfg.checkpoint_every and step - last_ckpt >= cfg.checkpoint_every and update < num_updates:
            checkpoint.save(run_dir / "checkpoints" / f"step_{step}.safetensors", policy, optimizer, cfg,
                            spaces, {"step": step, "update": update})
            checkpoint.prune(run_dir, cfg.keep_checkpoints)
            last_ckpt = step
    checkpoint.save(run_dir / "checkpoints" / "final.safetensors", policy, optimizer, cfg, spaces,
                    {"step": step, "update": num_updates})
    envs.close()
    print(logger.close(step, run_dir))
    return run_dir


def main(argv: list[str]) -> Path:
    return train(load_config(argv))


if __name__ == "__main__":
    cli(main)
