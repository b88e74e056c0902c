"""Stable-Baselines3 as reference peers, on rlkit's own wrapped envs, logging rlkit's metrics:

    python -m rlkit.peers peer=sb3_ppo env=cartpole seed=1 total_steps=100000

`sb3_ppo` takes the env's PPO settings from rlkit's config (rollout length, epochs, minibatch
size, clipping, coefficients, LR schedule) and the same network widths, so it measures the
same algorithm; `sb3_recurrent_ppo` is sb3-contrib's RecurrentPPO with those settings and an
LSTM of rlkit's `model.core_size` and `model.core_layers` (sb3-contrib's default layout: one
LSTM for the actor, another for the critic; rlkit's core serves both heads); `sb3_a2c` and
`sb3_dqn` use Stable-Baselines3's defaults (DQN's replay buffer capped at 100k transitions).
The run folder holds TensorBoard's `episode/return`, `episode/length` and `time/sps`, the
config and `summary.json`, as `rlkit.train` writes them."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rlkit.config import UsageError, cli, command_options, default_run_dir, load_config
from rlkit.encoders import is_image
from rlkit.envs import make_env
from rlkit.logger import Logger

SB3 = ("sb3_ppo", "sb3_recurrent_ppo", "sb3_a2c", "sb3_dqn")
PEERS = (*SB3, "sample_factory")  # Sample Factory runs in its own environment: rlkit.sample_factory


def _vec_env(cfg):
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv


    def make():
        env = make_env(cfg.env)
        shape = env.observation_space.shape
        if is_image(shape) and len(shape) > 3:  # SB3's CNN takes [C, H, W]: fold the stack into C
            env = gym.wrappers.ReshapeObservation(env, (int(np.prod(shape[:-2])), *shape[-2:]))
        return env

    return (SubprocVecEnv if cfg.vector == "async" else DummyVecEnv)([make] * cfg.num_envs)


def _model(peer: str, cfg, vec):
    import torch
    from stable_baselines3 import A2C, DQN, PPO


    image = is_image(vec.observation_space.shape)
    hidden = cfg.model.get("hidden", 64)
    arch = dict(features_extractor_kwargs={"features_dim": hidden}) if image else {}
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    common = dict(env=vec, seed=cfg.seed, device=device, verbose=0, policy="CnnPolicy" if image else "MlpPolicy")
    if peer == "sb3_dqn":
        return DQN(**common, buffer_size=min(100_000, cfg.total_steps),
                   policy_kwargs=dict(net_arch=[] if image else [hidden, hidden], **arch))
    if peer == "sb3_a2c":
        return A2C(**common, policy_kwargs=dict(net_arch=[] if image else [hidden, hidden], **arch))
    a = cfg.algo
    policy_kwargs = dict(net_arch=[], **arch) if image else dict(net_arch=[hidden, hidden], activation_fn=torch.nn.Tanh)
    learner = PPO
    if peer == "sb3_recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        learner, common["policy"] = RecurrentPPO, "CnnLstmPolicy" if image else "MlpLstmPolicy"
        policy_kwargs.update(lstm_hidden_size=cfg.model.core_size, n_lstm_layers=cfg.model.core_layers)
    return learner(**common, n_steps=a.num_steps, batch_size=a.num_steps * cfg.num_envs // a.minibatches,
               n_epochs=a.epochs, learning_rate=(lambda p: a.lr * p) if a.anneal_lr else a.lr, gamma=a.gamma,
               gae_lambda=a.gae_lambda, clip_range=a.clip_coef, clip_range_vf=a.clip_coef if a.clip_vloss else None,
               ent_coef=a.ent_coef, vf_coef=a.vf_coef, max_grad_norm=a.max_grad_norm,
               normalize_advantage=a.norm_adv, target_kl=a.target_kl, policy_kwargs=policy_kwargs)


def run(cfg, peer: str, run_dir=None) -> dict:
    """Train `peer` on `cfg`'s env. Returns {steps, seconds, episodes: [(step, return, seconds)]};
    with `run_dir`, logs there as an rlkit run does."""
    from stable_baselines3.common.callbacks import BaseCallback


    vec = _vec_env(cfg)
    model = _model(peer, cfg, vec)
    logger = None
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        saved = OmegaConf.to_container(cfg, resolve=True)
        OmegaConf.save(OmegaConf.create({**saved, "peer": peer}), Path(run_dir) / "config.yaml")
        logger = Logger(run_dir, cfg, progress=cfg.progress)
    episodes, start = [], time.time()

    class Record(BaseCallback):
        def _on_step(self):
            step = self.num_timesteps
            done = [(float(i["episode"]["r"]), int(i["episode"]["l"])) for i in self.locals["infos"] if "episode" in i]
            episodes.extend((step, r, time.time() - start) for r, _ in done)
            if logger:
                logger.episodes_done(step, done)
                if step % (cfg.num_envs * 128) < cfg.num_envs:
                    logger.scalars(step, {"time/sps": logger.sps(step)})
                logger.advance(step)
            return not cfg.minutes or time.time() - start < 60 * cfg.minutes  # False: SB3 stops (the budget)

    try:
        model.learn(cfg.total_steps, callback=Record())
    finally:
        vec.close()
    seconds = time.time() - start
    if logger:
        print(logger.close(model.num_timesteps, run_dir))
    return {"steps": model.num_timesteps, "seconds": seconds, "episodes": episodes}


def main(argv: list[str]) -> Path:
    opts, rest = command_options(argv, {"peer": "sb3_ppo"}, {"peer": SB3}, passthrough=True)
    if any(a.startswith("algo=") for a in rest):
        raise UsageError("peers take their settings from peer=...; drop algo=")

    cfg = load_config([*rest, "algo=ppo"])
    run_dir = default_run_dir(cfg, opts["peer"])
    run(cfg, opts["peer"], run_dir)
    return run_dir


if __name__ == "__main__":
    cli(main)
