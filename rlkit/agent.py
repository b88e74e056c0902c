"""The public face of a trained agent, for use outside rlkit's own commands:

    agent = rlkit.load_agent("runs/doom__ppo__1__.../")   # a run folder or a checkpoint file
    env = agent.make_env()                                # the game, preprocessed as in training
    obs, _ = env.reset(); agent.reset()
    action = agent.act(obs)

Board games: `make_env()` is the PettingZoo game (two seats); in any PettingZoo loop,
    obs, reward, terminated, truncated, info = env.last()
    action = agent.act(obs["observation"], action_mask=obs["action_mask"])
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces as gym_spaces

from rlkit import checkpoint
from rlkit.config import UsageError, with_new_defaults
from rlkit.nets import make_policy


def spaces_of(observation_space, action_space) -> dict:
    return {"obs_shape": list(observation_space.shape), "obs_dtype": str(observation_space.dtype),
            "num_actions": int(action_space.n)}


def rebuild_spaces(spaces: dict):
    shape, dtype = tuple(spaces["obs_shape"]), np.dtype(spaces["obs_dtype"])
    if dtype == np.bool_:  # Go's planes
        low, high = 0, 1
    elif np.issubdtype(dtype, np.integer):  # frames (uint8), tic-tac-toe and Connect Four planes (int8)
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    else:
        low, high = -np.inf, np.inf
    return gym_spaces.Box(low, high, shape, dtype), gym_spaces.Discrete(spaces["num_actions"])


class Agent:
    def __init__(self, policy, cfg, device, path: Path | None = None, observation_space=None, action_space=None):
        self.policy, self.cfg, self.device, self.path = policy, cfg, torch.device(device), path
        self.observation_space, self.action_space = observation_space, action_space  # as trained

    def make_env(self, render_mode=None):
        """A single Gymnasium env with the preprocessing this agent was trained on."""
        from rlkit.envs import make_env

        return make_env(self.cfg.env, render_mode=render_mode)

    @torch.inference_mode()
    def explain(self, observation, action_mask=None) -> tuple[np.ndarray, float]:
        """The policy's action probabilities (float64, masked-out actions at 0) and value estimate."""
        obs = torch.as_tensor(np.asarray(observation), device=self.device).unsqueeze(0)
        mask = None if action_mask is None else torch.as_tensor(np.asarray(action_mask, dtype=bool),
                                                                 device=self.device).unsqueeze(0)
        logits, value = self.policy(obs, mask)
        probs = torch.softmax(logits[0].double(), -1).cpu().numpy()
        return probs / probs.sum(), float(value[0])

    def act(self, observation, action_mask=None, deterministic: bool = False) -> int:
        """One action for one observation of `make_env()`'s env; masked-out actions are never chosen."""
        probs, _ = self.explain(observation, action_mask)
        if deterministic:
            return int(probs.argmax())
        return int(torch.multinomial(torch.from_numpy(probs), 1).item())

    def reset(self) -> None:
        """Call between episodes. Today's policies keep no state; recurrent ones will."""


def load_agent(path, device: str = "cpu") -> Agent:
    path = Path(path)
    file = checkpoint.latest(path) if path.is_dir() else path
    ckpt = checkpoint.load(file, device)
    ckpt["config"], _ = with_new_defaults(ckpt["config"])
    obs_space, act_space = rebuild_spaces(ckpt["spaces"])
    board = ckpt["config"].env.family == "board"
    policy = make_policy(ckpt["config"].model, obs_space, act_space, board=board).to(device)
    try:
        policy.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"{file}: weights do not fit the network its config describes "
                         f"({str(e).splitlines()[0][:160]})") from None
    return Agent(policy.eval(), ckpt["config"], device, file, obs_space, act_space)
