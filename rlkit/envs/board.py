"""Two-player board games from PettingZoo classic (Tic-Tac-Toe, Connect Four, Go).

`make_game(env_cfg)` is the PettingZoo AEC env itself, with PettingZoo's own wrappers, so what
an agent sees in training is exactly `env.last()[0]` of that env: the board from the mover's
point of view (`observation`, channels last) and the legal moves (`action_mask`). `Game` wraps
one AEC env with seat numbers (0 moves first) for the self-play env, matches and `rlkit.play`.
All three games score only at the end: +1 win, -1 loss, 0 draw (Go: area score with komi).
PettingZoo's Go has no move limit (two greedy players that never pass can play on for ever), so
`Game` ends a Go game after 2 * N * N moves, OpenSpiel's limit and self-play's
(`rlkit.games.go.Go.MAX_MOVES`), scored as the board stands, as PettingZoo scores it."""
from __future__ import annotations

import importlib
import time

import numpy as np

from rlkit.errors import UsageError
from rlkit.games import rules_of

# game -> (PettingZoo module, keyword arguments taken from the env config)
GAMES = {
    "tictactoe": ("pettingzoo.classic.tictactoe_v3", ()),
    "connect_four": ("pettingzoo.classic.connect_four_v3", ()),
    "go": ("pettingzoo.classic.go_v5", ("board_size", "komi")),
}


def make_game(env_cfg, render_mode=None):
    """The PettingZoo AEC env of `env_cfg.game`."""
    if env_cfg.game not in GAMES:
        raise UsageError(f"unknown board game {env_cfg.game!r}; choose from: {', '.join(GAMES)}")
    module, keys = GAMES[env_cfg.game]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"board games need PettingZoo's classic games: pip install 'pettingzoo[classic]' "
                         f"({e})") from None
    kwargs = {k: env_cfg[k] for k in keys}
    if env_cfg.game == "go" and not 2 <= env_cfg.board_size <= 19:
        raise UsageError(f"env.board_size must be in 2..19, got {env_cfg.board_size}")
    return mod.env(render_mode=render_mode, **kwargs)


class Game:
    """One game with seats 0 (moves first) and 1. Moves are checked against the legal mask."""

    def __init__(self, env_cfg):
        self.name = env_cfg.game
        self.env = make_game(env_cfg)
        self.env.reset()
        self.seats = list(self.env.possible_agents)
        space = self.env.observation_space(self.seats[0])
        self.observation_space, self.num_actions = space["observation"], int(space["action_mask"].shape[0])
        self.moves = 0
        self.rules_time = 0.0  # seconds spent in PettingZoo (reset, observe, step), for benchmarks
        self.go = rules_of(env_cfg) if self.name == "go" else None
        self.capped = None  # the result for each seat of a game ended by the move limit

    def reset(self, seed=None) -> None:
        t = time.perf_counter()
        self.env.reset(seed=seed)
        self.moves, self.capped = 0, None
        self.rules_time += time.perf_counter() - t

    @property
    def mover(self) -> int:
        return self.seats.index(self.env.agent_selection)

    @property
    def over(self) -> bool:
        e = self.env
        return self.capped is not None or any(e.terminations.values()) or any(e.truncations.values())

    def observe(self, seat: int | None = None):
        """(observation, legal-move mask as bool) of `seat` (default: the mover), as `env.last()` gives it."""
        t = time.perf_counter()
        obs = self.env.observe(self.seats[self.mover if seat is None else seat])
        self.rules_time += time.perf_counter() - t
        return obs["observation"], obs["action_mask"].astype(bool)

    def step(self, action: int) -> None:
        action = int(action)
        legal = self.observe()[1]
        if not 0 <= action < len(legal) or not legal[action]:
            raise ValueError(f"illegal move {action} in {self.name}; legal: {np.flatnonzero(legal).tolist()}")
        t = time.perf_counter()
        self.env.step(action)
        self.moves += 1
        self.rules_time += time.perf_counter() - t
        if self.go is not None and self.moves >= self.go.MAX_MOVES and not self.over:
            mover = self.mover
            r = float(self.go.result(self.observe()[0][None].astype(bool))[0])
            self.capped = {mover: r, 1 - mover: -r}

    def score(self, seat: int) -> float:
        """The final reward of `seat`: +1 win, -1 loss, 0 draw."""
        if self.capped is not None:
            return self.capped[seat]
        return float(self.env.rewards[self.seats[seat]])

    def draw(self) -> str:
        return draw(self.name, *self.stones())

    def stones(self):
        """Two [H, W] bool planes: seat 0's stones and seat 1's."""
        obs, _ = self.observe()
        mine, theirs = obs[..., 0].astype(bool), obs[..., 1].astype(bool)
        if self.name == "go":  # Go's plane 0 holds the last move's side, plane 1 the mover's (rlkit.games.go)
            mine, theirs = theirs, mine
        return (mine, theirs) if self.mover == 0 else (theirs, mine)


SYMBOLS = {"tictactoe": "XO", "connect_four": "XO", "go": "XO"}


def draw(game: str, first, second) -> str:
    """A text board: X for the first seat, O for the second, and how to name each move."""
    h, w = first.shape
    cell = np.full((h, w), ".", dtype=object)
    cell[first], cell[second] = SYMBOLS[game][0], SYMBOLS[game][1]
    if game == "tictactoe":  # empty cells show their move number
        for r, c in zip(*np.nonzero(cell == ".")):
            cell[r, c] = str(r * w + c)
        return "\n---+---+---\n".join(" " + " | ".join(row) for row in cell)
    if game == "connect_four":
        return "\n".join(" ".join(row) for row in cell) + "\n" + " ".join(str(c) for c in range(w))
    letters = "ABCDEFGHJKLMNOPQRST"[:w]  # Go: no I, as on real boards
    rows = [f"{h - r:2d} " + " ".join(cell[r]) for r in range(h)]
    return "\n".join(rows + ["   " + " ".join(letters)])


def parse_move(game: str, text: str, size: int) -> int | None:
    """A move typed by a person: a number (tictactoe 0-8, connect_four column 0-6), or for Go a
    point like D4 or `pass`. None when it cannot be read."""
    text = text.strip().lower()
    if not text.isascii():  # '²' is a digit to str.isdigit, but no number to int()
        return None
    if game != "go":
        return int(text) if text.isdigit() and len(text) <= 3 else None
    if text == "pass":
        return size * size
    letters = "abcdefghjklmnopqrst"[:size]
    if len(text) >= 2 and text[0] in letters and text[1:].isdigit() and 1 <= int(text[1:]) <= size:
        return (size - int(text[1:])) * size + letters.index(text[0])
    return None


def move_name(game: str, action: int, size: int) -> str:
    if game != "go":
        return str(action)
    if action == size * size:
        return "pass"
    return "ABCDEFGHJKLMNOPQRST"[action % size] + str(size - action // size)
