"""Every game behind one `make_vec(cfg)`: a Gymnasium vector env of preprocessed games.

Each single env records the game's own score (`info["episode"]`) below any reward scaling or
clipping, so `episode/return` is always what the game says. Vector envs reset in the SAME step
an episode ends: the returned observation starts the next episode and the last one's final
observation is in `info["final_obs"]`, which the rollout uses to bootstrap truncations.

Board games (`family: board`) train by self-play: `make_vec` gives the self-play vector env
(rlkit/envs/selfplay.py) and `make_env` the PettingZoo game itself (two seats, AEC API)."""
from __future__ import annotations

import signal

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlkit.envs import atari, board, classic, doom, doom_checks, selfplay
from rlkit.errors import UsageError

FAMILIES = {"doom": doom.make, "atari": atari.make, "classic": classic.make, "board": board.make_game}


def check_game(env_cfg) -> None:
    """The game a loaded file (checkpoint, agent folder, run folder) asks for comes only from
    rlkit's own catalogue: a Gymnasium id registered in this process (no `module:` ids), one of
    ALE's games, a board game of rlkit's table, a Doom scenario by name from vizdoom's and
    `envs/doom`'s (never a path: a .cfg may name a program for ViZDoom to start), with buttons
    and game variables by ViZDoom's names."""
    if env_cfg.family == "classic":
        classic.check_id(env_cfg.id)
    elif env_cfg.family == "atari":
        atari.check_game(env_cfg.game)
    elif env_cfg.family == "doom":
        doom_checks.check_scenario_name(env_cfg.scenario)
        doom_checks.check_resolution(env_cfg.resolution)
        doom_checks.check_names("Button", env_cfg.get("buttons"))
        doom_checks.parse_shaping(env_cfg.get("shaping"))
        doom_checks.parse_variables(env_cfg.get("variables"))
    elif env_cfg.game not in board.GAMES:
        raise UsageError(f"unknown board game {env_cfg.game[:40]!r}; choose from: {', '.join(board.GAMES)}")


def make_env(env_cfg, render_mode=None) -> gym.Env:
    """One preprocessed game, exactly as the learner sees it."""
    families = FAMILIES
    if env_cfg.family not in families:
        raise UsageError(f"unknown env family {env_cfg.family!r}; choose from: {', '.join(families)}")
    env = families[env_cfg.family](env_cfg, render_mode=render_mode)
    if env_cfg.family == "board":
        return env
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise UsageError(f"env {env_cfg.name}: only discrete action spaces are supported, got {env.action_space}")
    return env


def _ignoring_sigint(fn):
    """Env worker processes leave Ctrl-C to the trainer, which stops them cleanly."""

    def make():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return fn()

    return make


def backend(env_cfg) -> str:
    """Which implementation steps this env: "envpool" (C++ threads; Atari) or "gymnasium"."""
    choice = env_cfg.get("backend", "gymnasium")
    if choice not in ("auto", "envpool", "gymnasium"):
        raise UsageError(f"env.backend must be one of: auto, envpool, gymnasium; got {choice!r}")
    if env_cfg.family != "atari" or choice == "gymnasium":
        if choice == "envpool":
            raise UsageError(f"env.backend=envpool is for Atari games; {env_cfg.name} runs on gymnasium")
        return "gymnasium"
    if choice == "envpool" and not atari.envpool_available():
        raise UsageError("env.backend=envpool needs EnvPool: pip install envpool (Linux), or env.backend=gymnasium")
    return "envpool" if atari.envpool_available() else "gymnasium"


def make_vec(cfg, pool=None, num_envs: int | None = None, first: int = 0) -> gym.vector.VectorEnv:
    """`cfg.num_envs` copies of `cfg.env`, stepped together: EnvPool's threads for Atari when
    installed, else Gymnasium's vector env (sync, or async with shared memory). Board games:
    the self-play env, with `pool` as its opponent pool (default: a new one). `num_envs` and
    `first` make a part of the whole (games first..first+num_envs-1, seeded as in the whole)."""
    if cfg.env.family == "board":
        return selfplay.make(cfg, pool)
    n = num_envs or cfg.num_envs
    if backend(cfg.env) == "envpool":
        return atari.EnvPoolAtari(cfg.env, n, cfg.seed + first)
    make_env(cfg.env).close()  # fail here, in this process, on bad settings
    fns = [lambda: make_env(cfg.env) for _ in range(n)]
    if cfg.vector == "async":
        fns = [_ignoring_sigint(fn) for fn in fns]
        envs = gym.vector.AsyncVectorEnv(fns, shared_memory=True, autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.action_space.seed(cfg.seed + first)
    return envs


def make_groups(cfg, pool=None):
    """The envs a local rollout steps: one vector env, or with `overlap=true` two halves that step
    in the background in turn (EnvPool's threads, or vector=async's processes) while the policy
    acts for the other half (see rlkit.rollout.Rollout)."""
    if not cfg.get("overlap", False):  # runs saved before the key existed resume without it
        return make_vec(cfg, pool)
    if cfg.env.family == "board" or backend(cfg.env) != "envpool" and cfg.vector != "async":
        raise UsageError("overlap=true needs envs that step in the background: env.backend=envpool (Atari) "
                         "or vector=async; board games step their opponents in this process")
    if cfg.num_envs < 2 or cfg.num_envs % 2:
        raise UsageError(f"overlap=true splits the envs in two halves: num_envs must be even, got {cfg.num_envs}")
    half = cfg.num_envs // 2
    return [make_vec(cfg, num_envs=half, first=g * half) for g in range(2)]
