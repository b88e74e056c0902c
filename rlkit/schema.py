"""The config schema: every key rlkit knows, with its meaning and the values it may take, in one
table. The defaults live in `configs/` (YAML, visible at a glance); their types are the defaults'
types. This table is the one source for validation (the command line and every loaded file go
through `check_types` and `check_ranges`), for `python -m rlkit.train --help`, and for the
configuration page of the docs; a test keeps every key of every config in it.

Sizes have upper bounds far beyond any agent rlkit trains, so that no value (a typo, or a file
made to do harm) can ask for a network or a game that cannot fit in memory."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlkit.errors import UsageError

BIG = 10**12
# Older spellings of a key's values, read as the current ones (older run folders, agents and commands).
ALIASES: dict[str, dict[bool, str]] = {"amp": {True: "bf16", False: "off"}}
DEVICE = re.compile(r"auto|cpu|cuda|mps|cuda:[0-9]{1,2}")  # ASCII digits: '²'.isdigit() is True


@dataclass(frozen=True)
class Key:
    """`low`..`high` inclusive (above `low` if `above`); `kind`: the type of a key whose default is
    null; `items`: a list's (element type, fewest, most, (lowest, highest) element or None);
    `choices`: the values a string may take."""

    meaning: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    kind: type | None = None
    items: tuple | None = None
    choices: tuple | None = None


def span(low, high, meaning: str) -> Key:
    return Key(meaning, low, high)


def positive(high, meaning: str) -> Key:
    return Key(meaning, 0, high, above=True)


SCHEMA: dict[str, Key] = {
    # the run
    "total_steps": positive(BIG, "agent steps to train (env.step calls summed over all envs)"),
    "minutes": span(0, 10**7, "a wall-clock budget: training ends, as at total_steps, with the update that "
                    "passes it (0: none), over all of a run's resumes; the learning rate anneals over it too"),
    "num_envs": positive(4096, "games stepped at once (per Ray worker with runner=ray)"),
    "seed": span(0, 2**31 - 1, "seeds Python, NumPy, PyTorch and the envs"),
    "device": Key("auto (CUDA when there is one), cpu, cuda, cuda:N or mps"),
    "amp": Key("the encoder's precision: auto (bf16 where the hardware has it, fp16 on CUDA without it, "
               "else fp32), bf16, fp16 (CUDA) or off (fp32); true and false read as bf16 and off",
               choices=("auto", "bf16", "fp16", "off")),
    "compile": Key("torch.compile the policy"),
    "torch_threads": span(0, 1024, "PyTorch's CPU threads (0: PyTorch's default)"),
    "vector": Key("sync: envs stepped here; async: one process each, shared memory", choices=("sync", "async")),
    "overlap": Key("step half the envs in the background while the policy acts for the other half"),
    "async_rollout": Key("collect the next rollout while the algorithm updates (one rollout of lag)"),
    "run_dir": Key("the run folder (default: runs/{env}__{algo}__{seed}__{time})", kind=str),
    "resume": Key("a run folder to continue from its newest intact checkpoint", kind=str),
    "runs_root": Key("where default run folders go"),
    "checkpoint_every": span(0, BIG, "agent steps between periodic checkpoints (0: the final one only)"),
    "keep_checkpoints": span(0, 10**6, "periodic checkpoints kept on disk (the final one always is)"),
    "log_every": positive(BIG, "updates between scalar logs"),
    "video_every": span(0, BIG, "agent steps between evaluation videos in TensorBoard (0: none)"),
    "video_length": positive(10**7, "most agent steps in one evaluation video"),
    "progress": Key("a live progress bar"),
    # env: every family
    "env.name": Key("the env's config file in configs/env/"),
    "env.family": Key("doom, atari, classic or board: which maker builds the game"),
    "env.max_episode_steps": Key("a time limit in agent steps (a truncation; null: the game's own)", 0, 10**9,
                                 above=True, kind=int),
    "env.reward_scale": span(-1e6, 1e6, "the learner sees reward * scale; episode/return stays the game's score"),
    "env.frame_skip": positive(64, "frames (tics) each action is repeated for"),
    "env.frame_stack": positive(64, "observations stacked as the network's input"),
    # env: doom
    "env.scenario": Key("a ViZDoom scenario by name (vizdoom's or envs/doom/), or a .cfg path on the command line"),
    "env.resolution": Key("what ViZDoom renders before the resize (RES_WxH)"),
    "env.grayscale": Key("one gray channel instead of RGB"),
    "env.size": Key("frames fed to the network: [height, width] (doom) or one side (atari)", 8, 1024,
                    items=(int, 2, 2, (8, 1024))),
    "env.actions": Key("buttons: one button per action; combos: every combination of the scenario's buttons "
                       "(move x turn x attack)", choices=("buttons", "combos")),
    "env.buttons": Key("ViZDoom buttons in place of the scenario's (null: the scenario's)", kind=list,
                       items=(str, 1, 32, None)),
    "env.deltas": Key("a delta button's values per tic (degrees for turning), each with both signs",
                      items=(float, 1, 8, (0.01, 180))),
    "env.shaping": Key("VARIABLE:weight terms: a game variable's change times its weight is added to the learner's "
                       "reward; episode/return stays the scenario's score", items=(str, 0, 16, None)),
    "env.variables": Key("VARIABLE:full terms: each game variable (HEALTH, AMMO2, ...) as one more input channel, "
                         "value / full of white", items=(str, 0, 16, None)),
    # env: atari
    "env.game": Key("the game: an ALE game (atari), or tictactoe, connect_four or go (board)"),
    "env.backend": Key("auto (EnvPool if installed), envpool or gymnasium", choices=("auto", "envpool", "gymnasium")),
    "env.noop_max": span(0, 10**4, "up to this many no-ops at reset"),
    "env.episodic_life": Key("a lost life ends the learner's episode (not the game's)"),
    "env.fire_reset": Key("press FIRE at reset in games that need it"),
    "env.clip_rewards": Key("the learner sees the sign of the reward"),
    "env.repeat_action_probability": span(0, 1, "sticky actions: chance the last action repeats"),
    # env: classic
    "env.keep": Key("observation features kept, by index (null: all; cartpole_masked keeps position and angle)",
                    kind=list, items=(int, 1, 64, (0, 4095))),
    "env.obs_scale": Key("each kept feature times its factor (null: as they are; cartpole_masked brings its two to "
                         "about unit size)", kind=list, items=(float, 1, 64, (1e-6, 1e6))),
    "env.id": Key("a Gymnasium id (from a loaded file: one registered in this process, never module:Id)"),
    # env: board games and self-play
    "env.board_size": span(2, 19, "Go's board size"),
    "env.komi": span(-1000, 1000, "Go's komi"),
    "env.selfplay.snapshot_every": positive(BIG, "agent steps between snapshots of the learner joining the pool"),
    "env.selfplay.max_snapshots": positive(1000, "the oldest snapshot leaves the pool past this many"),
    "env.selfplay.latest_prob": span(0, 1, "chance a game is against the latest snapshot (else by priority)"),
    "env.selfplay.priority_power": span(0, 100, "opponents weighted (1 - learner's score against them) ** this"),
    "env.selfplay.score_rate": Key("rate of the learner's running score against each opponent", 0, 1, above=True),
    "env.selfplay.baselines": Key("fixed pool members; the first is the Elo anchor (0)", items=(str, 1, 16, None)),
    "env.selfplay.eval_games": span(0, 10**4, "Elo games (both seats) a new snapshot plays against each of"),
    "env.selfplay.eval_opponents": span(0, 100, "... this many members: the previous snapshot, the anchor, others"),
    "env.selfplay.elo_k": span(0, 1000, "the Elo update's K"),
    "env.selfplay.opening_moves": span(0, 400, "training games open with 0..N uniformly random moves"),
    "env.selfplay.opponent_explore": span(0, 1, "chance an opponent's training move is uniformly random"),
    "env.selfplay.augment": Key("PPO also learns from each batch's image under a board symmetry"),
    # algo
    "algo.name": Key("ppo, reinforce or alphazero (configs/algo/)"),
    "algo.lr": Key("Adam's learning rate", 0, 10, above=True),
    "algo.anneal_lr": Key("the learning rate falls linearly to 0 by total_steps"),
    "algo.seq_len": Key("a core learns through chunks of this many steps, replayed from the state acting had at "
                        "their start; it divides algo.num_steps (null: the whole rollout)", 0, 10**6, above=True,
                        kind=int),
    "algo.num_steps": positive(10**6, "steps per env in each rollout (alphazero: moves per game between updates)"),
    "algo.gamma": span(0, 1, "discount"),
    "algo.gae_lambda": span(0, 1, "GAE's lambda"),
    "algo.epochs": positive(10**4, "passes over each rollout"),
    "algo.minibatches": positive(10**6, "minibatches each pass is cut into"),
    "algo.clip_coef": Key("PPO's clip range for the ratio (and the value, with clip_vloss)", 0, 10, above=True),
    "algo.clip_vloss": Key("clip the value's change as the ratio's"),
    "algo.norm_adv": Key("normalize advantages per minibatch"),
    "algo.ent_coef": span(0, 100, "the entropy bonus' weight"),
    "algo.vf_coef": span(0, 100, "the value loss' weight"),
    "algo.max_grad_norm": Key("gradients clipped to this norm", 0, 1e6, above=True),
    "algo.target_kl": Key("stop an update's epochs once the approximate KL passes this (null: never)", 0, 100,
                          above=True, kind=float),
    "algo.baseline": Key("REINFORCE subtracts a learned value from the return (detached from the policy)"),
    "algo.batch_episodes": positive(10**6, "REINFORCE learns once this many episodes have ended"),
    "algo.baseline_epochs": positive(100, "REINFORCE: gradient steps on the baseline per batch (the policy takes one)"),
    "algo.max_carry": positive(10**7, "REINFORCE keeps at most this many steps a game of episodes still running"),
    "algo.sims": positive(10**5, "tree-search simulations per move"),
    "algo.root": Key("the tree search: puct (AlphaZero) or gumbel (Gumbel AlphaZero: Gumbel-top-k and "
                     "sequential halving at the root, improved-policy targets)", choices=("puct", "gumbel")),
    "algo.considered": positive(4096, "gumbel: the root moves drawn by Gumbel-top-k"),
    "algo.c_puct": Key("PUCT's exploration constant", 0, 100, above=True),
    "algo.dirichlet_alpha": Key("the root noise's concentration (a quarter of the root priors)", 0, 100, above=True),
    "algo.temperature_moves": span(0, 10**4, "the first N moves of a game drawn by visit count"),
    "algo.replay_size": positive(10**7, "positions in the training window"),
    "algo.batch_size": positive(10**6, "positions per gradient step"),
    "algo.replay_ratio": Key("gradient-step samples per move played", 0, 10**4, above=True),
    # model
    "model.name": Key("cnn, impala, mlp or transformer (configs/model/)"),
    "model.hidden": positive(16384, "width of the dense layer after the encoder (cnn on vectors: the MLP's width)"),
    "model.layers": positive(64, "layers (mlp: dense layers; transformer: blocks)"),
    "model.channels": Key("convolution widths: IMPALA's per stage; cnn's per layer (null: Nature's 32, 64, 64 on "
                          "frames, 64 per layer on boards; frames take 1 to 3 layers)", kind=list,
                          items=(int, 1, 8, (1, 1024))),
    "model.patch": positive(256, "the Transformer's patch side in pixels"),
    "model.dim": positive(4096, "the Transformer's width"),
    "model.heads": positive(64, "attention heads (dim must be a multiple)"),
    "model.dropout": span(0, 0.99, "the Transformer's dropout"),
    "model.core": Key("memory between encoder and heads: none, lstm, gru, or transformer (gated, over the last "
                      "model.memory steps)", choices=("none", "lstm", "gru", "transformer")),
    "model.core_size": positive(4096, "the core's width (LSTM/GRU hidden size, the memory Transformer's width)"),
    "model.core_layers": positive(16, "the core's layers (stacked cells, or gated Transformer blocks)"),
    "model.memory": positive(1024, "steps the memory Transformer attends over (core=transformer)"),
    "model.critic_core": Key("the critic gets a core of its own, as sb3-contrib's RecurrentPPO does (else it reads "
                             "the actor's)"),
    "model.critic_encoder": Key("the critic gets an encoder of its own, and a core with a core: a network that "
                                "shares no layer with the actor (else it reads the actor's features)"),
    # runner
    "runner.name": Key("local, or ray (rollouts on Ray actors)"),
    "runner.workers": positive(4096, "Ray workers, each stepping num_envs envs"),
    "runner.cpus_per_worker": Key("Ray CPUs each worker reserves", 0, 1024, above=True),
    "runner.max_restarts": span(0, 10**6, "workers replaced before the run stops with an error"),
    "runner.start_timeout": Key("seconds for all workers to come up", 0, 10**6, above=True),
}


def is_a(value: Any, kind: type) -> bool:
    """int for int (not bool), any number for float, else isinstance."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float:
        return number
    return isinstance(value, int) and not isinstance(value, bool) if kind is int else isinstance(value, kind)


def type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(type(value), "a list")


def number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_types(cfg: DictConfig, base: DictConfig, prefix: str = "") -> None:
    """Every value of `cfg` must have the type of its default in `base` (ints pass for floats; a
    null default takes its schema `kind` or null), lists their schema element type and length."""
    for key in base:
        ref, value, path = base[key], cfg[key], f"{prefix}{key}"
        if isinstance(value, bool) and path in ALIASES:
            value = cfg[key] = ALIASES[path][value]
        rule = SCHEMA.get(path, Key(""))
        if isinstance(ref, DictConfig):
            if not isinstance(value, DictConfig):
                raise UsageError(f"{path} must be a group of keys ({', '.join(map(str, ref.keys()))}), got {value!r}")
            check_types(value, ref, path + ".")
        elif ref is None and (rule.kind is not list or value is None):
            if rule.kind is None and value is not None:
                raise UsageError(f"{path} must be null, got {value!r}")
            if value is not None and not is_a(value, rule.kind):
                raise UsageError(f"{path} must be {type_name(rule.kind())} or null, got {value!r}")
            if rule.kind is float and value is not None:
                cfg[key] = float(value)
        elif isinstance(ref, ListConfig) or rule.kind is list:  # a list, or a list-or-null key given a value
            if not isinstance(value, ListConfig):
                raise UsageError(f"{path} must be a list{' or null' if ref is None else ''}, got {value!r}")
            kind, fewest, most, bounds = rule.items or (object, 0, 64, None)
            if not fewest <= len(value) <= most or not all(is_a(v, kind) for v in value) or bounds and not all(
                    bounds[0] <= v <= bounds[1] for v in value):
                count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
                within = f" from {bounds[0]} to {bounds[1]}" if bounds else ""
                raise UsageError(f"{path} must be a list of {count} {kind.__name__}s{within}, got {list(value)!r}")
        else:
            ok = isinstance(value, bool) if isinstance(ref, bool) else is_a(value, float) if isinstance(ref, float) \
                else type(value) is type(ref)
            if not ok:
                wanted = f"one of: {', '.join(rule.choices)};" if rule.choices else f"{type_name(ref)},"
                raise UsageError(f"{path} must be {wanted} got {value!r}")
            if isinstance(ref, float):
                cfg[key] = float(value)


def check_ranges(cfg: DictConfig) -> None:
    """Every number within its schema range (and finite), every choice from its list, the device
    by its pattern, the Transformer's width a multiple of its heads, no memory core for a board game,
and algo.seq_len a divisor of algo.num_steps."""
    for key, rule in SCHEMA.items():
        value = OmegaConf.select(cfg, key)
        if value is None or isinstance(value, ListConfig):
            continue
        if rule.choices and value not in rule.choices:
            raise UsageError(f"{key} must be one of: {', '.join(rule.choices)}; got {value!r}")
        if rule.low is None or isinstance(value, (str, bool)):
            continue
        low, high = rule.low, rule.high
        if not math.isfinite(value):
            raise UsageError(f"{key} must be a finite number, got {value}")
        if rule.above and value <= low or value < low:
            raise UsageError(f"{key} must be {'>' if rule.above else '>='} {number(low)}, got {value}")
        if value > high:
            raise UsageError(f"{key} must be in {'(' if rule.above else '['}{number(low)}, {number(high)}], "
                             f"got {value}")
    if not DEVICE.fullmatch(str(cfg.device)):
        raise UsageError(f"device must be one of: auto, cpu, cuda, cuda:N, mps; got {str(cfg.device)!r}")
    model, algo = cfg.model, cfg.algo
    if "heads" in model and model.dim % model.heads:
        raise UsageError(f"model.dim ({model.dim}) must be a multiple of model.heads ({model.heads})")
    if model.get("core", "none") != "none" and cfg.env.get("family") == "board":
        raise UsageError(f"model.core={model.core}: board games show the whole position in every observation, "
                         f"and search rates positions out of any game's order; use model.core=none")
    if algo.get("seq_len") and algo.num_steps % algo.seq_len:
        raise UsageError(f"algo.seq_len ({algo.seq_len}) must divide algo.num_steps ({algo.num_steps})")


def describe(cfg: DictConfig) -> str:
    """Every key of `cfg` with its value, its range or choices, and its meaning: `--help`."""
    lines = []
    for key in leaves(cfg):
        rule, value = SCHEMA[key], OmegaConf.select(cfg, key)
        allowed = f" [{', '.join(rule.choices)}]" if rule.choices else \
            "" if rule.low is None else f" {'(' if rule.above else '['}{number(rule.low)}, {number(rule.high)}]"
        shown = "null" if value is None else list(value) if isinstance(value, ListConfig) else value
        lines.append(f"  {key}={shown}{allowed}\n      {rule.meaning}")
    return "\n".join(lines)


def leaves(cfg: DictConfig, prefix: str = ""):
    for key, value in cfg.items():
        if isinstance(value, DictConfig):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def groups(cfg: DictConfig, prefix: str = ""):
    for key, value in cfg.items():
        if isinstance(value, DictConfig):
            yield f"{prefix}{key}"
            yield from groups(value, f"{prefix}{key}.")
