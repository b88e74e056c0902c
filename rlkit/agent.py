"""The public face of a trained agent, for use outside rlkit's own commands:

    agent = rlkit.load_agent("runs/doom__ppo__1__.../")   # a run folder or a checkpoint file
    env = agent.make_env()                                # the game, preprocessed as in training
    obs, _ = env.reset(); agent.reset()                   # a new game: memory cleared
    action = agent.act(obs)                               # advances the memory of an agent with a core

Board games: `make_env()` is the PettingZoo game (two seats); in any PettingZoo loop,
    obs, reward, terminated, truncated, info = env.last()
    action = agent.act(obs["observation"], action_mask=obs["action_mask"])
a board-game agent plays its most likely move unless asked to sample, and one loaded with
`load_agent(path, mcts=N)` searches N simulations before each move (its strongest play).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from torch import nn

from rlkit import checkpoint
from rlkit.config import load_config
from rlkit.envs import make_env
from rlkit.envs.board import Game
from rlkit.errors import UsageError
from rlkit.games import RULES, rules_of
from rlkit.nets import Memoryless, make_policy
from rlkit.players import MAX_LOOKAHEAD, MAX_SIMS, Player, PolicyPlayer, baselines, names
from rlkit.schema import DEVICE
from rlkit.search import MCTS, Lookahead
from rlkit.symmetry import Symmetric


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
    def __init__(self, policy, cfg, device, path: Path | None = None, observation_space=None, action_space=None,
                 searcher: Player | None = None):
        self.policy, self.cfg, self.device, self.path = policy, cfg, torch.device(device), path
        self.observation_space, self.action_space = observation_space, action_space  # as trained
        self.state = None  # a core's memory of the game being played (None: a new game)
        self.searcher = searcher  # load_agent(mcts=N): the tree search that chooses every move

    def make_env(self, render_mode=None):
        """A single Gymnasium env with the preprocessing this agent was trained on."""

        env = make_env(self.cfg.env, render_mode=render_mode)
        board = self.cfg.env.family == "board"
        seat = env.possible_agents[0] if board else None
        obs_space, act_space = (env.observation_space(seat)["observation"], env.action_space(seat)) if board \
            else (env.observation_space, env.action_space)
        try:
            self.check_game(obs_space.shape, act_space.n, self.cfg.env.get("game", self.cfg.env.name))
        except UsageError:
            env.close()
            raise
        return env

    def check_game(self, observation_shape, num_actions: int, game: str) -> None:
        """That a game gives what this agent's network takes (a file may say any game)."""
        if self.observation_space is None:
            return
        if (tuple(observation_shape), int(num_actions)) != (self.observation_space.shape, self.action_space.n):
            raise UsageError(f"{self.path}: the agent takes observations {self.observation_space.shape} and "
                             f"{self.action_space.n} actions, but {game} gives {tuple(observation_shape)} and "
                             f"{num_actions}")

    @torch.inference_mode()
    def _see(self, observation, action_mask):
        obs = torch.as_tensor(np.asarray(observation), device=self.device).unsqueeze(0)
        mask = None if action_mask is None else torch.as_tensor(np.asarray(action_mask, dtype=bool),
                                                                 device=self.device).unsqueeze(0)
        state = self.policy.initial_state(1, self.device) if self.state is None else self.state
        logits, value, state = self.policy(obs, mask, state, torch.zeros(1, dtype=torch.bool, device=self.device))
        probs = torch.softmax(logits[0].double(), -1).cpu().numpy()
        return probs / probs.sum(), float(value[0]), state

    def explain(self, observation, action_mask=None) -> tuple[np.ndarray, float]:
        """The policy's action probabilities (float64, masked-out actions at 0) and value estimate
        for `observation`, under what the agent remembers of this game; the memory stays as it was."""
        probs, value, _ = self._see(observation, action_mask)
        return probs, value

    def observe(self, observation, action_mask=None) -> tuple[np.ndarray, float]:
        """`explain`, and the observation taken into the agent's memory: call it once per step of
        the game, as `act` does (for a memoryless agent the two are the same)."""
        probs, value, self.state = self._see(observation, action_mask)
        return probs, value

    def act(self, observation, action_mask=None, deterministic: bool | None = None) -> int:
        """One action for one observation of `make_env()`'s env; masked-out actions are never chosen.
        `deterministic`: the most likely action rather than a sample; by default, board-game
        agents play the most likely and other agents sample. An agent loaded with `mcts=N`
        plays the move its search chooses. Call it once per step: an agent with memory
        (model.core) remembers every observation it acted on."""
        if self.searcher is not None:
            if action_mask is None:
                raise UsageError("an agent that searches needs the legal moves: act(observation, action_mask=...)")
            return self.searcher.act(observation, np.asarray(action_mask, bool))
        probs, _ = self.observe(observation, action_mask)
        greedy = self.cfg.env.family == "board" if deterministic is None else deterministic
        if greedy:
            return int(probs.argmax())
        return int(torch.multinomial(torch.from_numpy(probs), 1).item())

    def reset(self) -> None:
        """Call at the start of every game: clears the memory of an agent with a core."""
        self.state = None


def pick_device(name: str) -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps`, where this machine has it."""
    if not DEVICE.fullmatch(name):
        raise UsageError(f"device must be one of: auto, cpu, cuda, cuda:N, mps; got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device={name} but CUDA is not available here; choose from: auto, cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device=mps but MPS is not available here; choose from: auto, cpu")
    return torch.device(name)


def check_fits(weights: dict, model_cfg, observation_space, action_space, board: bool, where) -> None:
    """That the network a file's config describes has exactly the shapes of the file's weights,
    found on PyTorch's meta device (no memory, no arithmetic): a config that asks for a network
    larger than the file's own tensors never allocates it."""
    with torch.device("meta"):
        shell = make_policy(model_cfg, observation_space, action_space, board=board)
    want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise UsageError(f"{where}: weights do not fit the network its config describes (first difference: "
                         f"{diff[0][:80]} {have.get(diff[0], 'missing')} vs {want.get(diff[0], 'not in the network')})")


def policy_for(weights: dict, model_cfg, observation_space, action_space, board: bool, where) -> torch.nn.Module:
    """The network a file's config describes, holding the file's weights (checked by `check_fits` first)."""
    check_fits(weights, model_cfg, observation_space, action_space, board, where)
    policy = make_policy(model_cfg, observation_space, action_space, board=board)
    policy.load_state_dict(weights)
    return policy


def check_mcts(mcts: int, game: str | None = None) -> None:
    """That `mcts` simulations per move are in range and, for `game`, that it has rules to search."""
    if not 0 <= mcts <= MAX_SIMS:
        raise UsageError(f"mcts must be 0 to {MAX_SIMS} simulations per move, got {mcts}")
    if mcts and game is not None and game not in RULES:
        raise UsageError(f"mcts={mcts}: the tree search needs a game's rules in arrays ({', '.join(RULES)}); "
                         f"for {game} use mcts=0")


def load_agent(path, device: str = "cpu", mcts: int = 0) -> Agent:
    """A run folder (its newest intact checkpoint; damaged newer ones are named on stderr), a
    checkpoint file, an agent folder, or an exported ONNX agent (`*.onnx`, run by ONNX Runtime on
    the CPU whatever `device` says); `RUN@NAME`: a snapshot of a self-play run's opponent pool
    (step_0, step_50176, ...: the run's history, for an Elo curve in `rlkit.arena`). The file is
    data: see rlkit.checkpoint and rlkit.onnx_agent. `mcts` > 0: a board-game agent whose `act`
    searches that many simulations per move (rlkit.search.MCTS; games with rules in arrays,
    memoryless networks)."""
    check_mcts(mcts)
    agent = _load(Path(path), pick_device(str(device)))
    if mcts:
        game = agent.cfg.env.get("game", agent.cfg.env.name)
        check_mcts(mcts, game)
        if agent.cfg.model.core != "none":
            raise UsageError(f"mcts={mcts}: the tree search rates positions alone; {path} remembers past moves "
                             f"(model.core={agent.cfg.model.core}): use mcts=0")
        agent.searcher = MCTS(agent.policy, Path(path).name, sims=mcts, device=agent.device,
                              game=rules_of(agent.cfg.env))
    return agent


SNAPSHOT = "@"  # RUN@NAME: the snapshot NAME of a self-play run's opponent pool


def split_snapshot(path: Path) -> tuple[Path, str | None]:
    """`RUN@NAME` (a run or checkpoint, then a snapshot of its opponent pool) -> (RUN, NAME)."""
    text = str(path)
    if path.exists() or SNAPSHOT not in text:
        return path, None
    return Path(text.rpartition(SNAPSHOT)[0]), text.rpartition(SNAPSHOT)[2]


def snapshot_weights(ckpt: dict, name: str, file: Path) -> dict:
    """The weights of the pool snapshot `name` in a checkpoint, or a one-line error naming those it has."""
    tensors = (ckpt.get("pool") or {}).get("tensors", {})
    names = sorted({k.split("/")[0] for k in tensors}, key=lambda n: (len(n), n))  # step_N by N
    if name not in names:
        raise UsageError(f"{file} has no snapshot {name!r}; it has: {', '.join(names) or 'none (not a self-play run)'}")
    return {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")}


def _load(path: Path, dev: torch.device) -> Agent:
    path, snapshot = split_snapshot(path)
    if path.suffix == ".onnx" and not path.is_dir():  # an exported agent (rlkit.onnx_agent): ONNX Runtime on the CPU
        from rlkit.onnx_agent import load_onnx

        policy, config, spaces = load_onnx(path)
        return Agent(policy.eval(), config, "cpu", path, *rebuild_spaces(spaces))
    if path.is_dir():
        file, ckpt = checkpoint.load_latest(path, note=lambda line: print(f"note: {line}", file=sys.stderr))
    else:
        file, ckpt = path, checkpoint.load(path)
    obs_space, act_space = rebuild_spaces(ckpt["spaces"])
    board = ckpt["config"].env.family == "board"
    weights = ckpt["model"] if snapshot is None else snapshot_weights(ckpt, snapshot, file)
    policy = policy_for(weights, ckpt["config"].model, obs_space, act_space, board, file).to(dev)
    return Agent(policy.eval(), ckpt["config"], dev, file, obs_space, act_space)


class Uniform(Memoryless, nn.Module):
    """Every legal action equally likely, whatever the observation: the random policy."""

    def __init__(self, num_actions: int):
        super().__init__()
        self.num_actions = num_actions

    def forward(self, obs, action_mask=None):
        logits = torch.zeros((obs.shape[0], self.num_actions), device=obs.device)
        if action_mask is not None:
            logits = logits.masked_fill(~action_mask, float("-inf"))
        return logits, torch.zeros(obs.shape[0], device=obs.device)


def random_agent(overrides) -> Agent:
    """The random policy in the game that training `overrides` give (`env=NAME ...`): what
    `rlkit.watch agent=random` scores, the floor every agent's card is measured against."""
    cfg = load_config(list(overrides))
    env = make_env(cfg.env)
    space = env.action_space(env.possible_agents[0]) if cfg.env.family == "board" else env.action_space
    env.close()
    return Agent(Uniform(int(space.n)).eval(), cfg, "cpu")


def load_player(spec: str, env_cfg, greedy: bool = True, depth: int = 4, seed=None, lookahead: int = 0,
                label: str | None = None, symmetric: bool = False, mcts: int = 0) -> Player:
    """A baseline by name (rlkit.players), or a trained agent from a run folder or checkpoint file,
    named `label` (default: the folder or file name); `lookahead` > 0: the trained agent looks that
    many plies ahead (Connect Four only, see rlkit.search.Lookahead; it plays the best-valued move,
    so `greedy` does not apply); `symmetric`: the trained agent averaged over the board's
    symmetries (rlkit.symmetry.Symmetric); `mcts` > 0: it searches with that many simulations per
    move (games with rules in arrays, see rlkit.search.MCTS). Baselines play as they are."""
    if not 0 <= lookahead <= MAX_LOOKAHEAD:
        raise UsageError(f"lookahead must be 0 to {MAX_LOOKAHEAD} plies (up to 2,401 positions valued per move), "
                         f"got {lookahead}")
    if lookahead and env_cfg.game != "connect_four":
        raise UsageError(f"lookahead={lookahead}: looking ahead needs Connect Four's rules; for {env_cfg.game} use "
                         f"lookahead=0")
    check_mcts(mcts, env_cfg.game)
    if mcts and lookahead:
        raise UsageError(f"choose one search: lookahead={lookahead} (every line to a depth) or mcts={mcts} "
                         f"(simulations)")
    made = baselines(env_cfg.game, depth, seed, env_cfg.get("komi", 7.5))
    if spec in made:
        return made[spec]()
    if not split_snapshot(Path(spec))[0].exists():
        raise UsageError(f"unknown agent {spec!r}: not a run folder or checkpoint file, nor a baseline for "
                         f"{env_cfg.game} ({names(made)})")
    agent = load_agent(spec)
    trained = agent.cfg.env
    if trained.family != "board" or trained.game != env_cfg.game or (
            env_cfg.game == "go" and trained.board_size != env_cfg.board_size):
        what = trained.get("game", trained.name)
        raise UsageError(f"agent {spec} was trained on {what}"
                         f"{f' {trained.board_size}x{trained.board_size}' if what == 'go' else ''}, "
                         f"not on {env_cfg.game}")
    game = Game(env_cfg)
    agent.check_game(game.observation_space.shape, game.num_actions, env_cfg.game)
    if seed is not None:
        torch.manual_seed(seed)
    label = label or Path(spec).name or spec
    policy = agent.policy
    if symmetric:
        policy = Symmetric(policy, env_cfg.game, agent.observation_space.shape, int(agent.action_space.n))
        label += "+sym"
    if lookahead:
        return Lookahead(policy, label, depth=lookahead)
    if mcts:
        return MCTS(policy, label, sims=mcts, game=rules_of(env_cfg))
    return PolicyPlayer(policy, label, greedy=greedy)
