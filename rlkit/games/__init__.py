"""Each board game's rules, once, in arrays, for the players that search them (rlkit.players,
rlkit.search), algo=alphazero and the tests against PettingZoo. Play itself goes through
PettingZoo's games (rlkit/envs/board.py).

A position is what PettingZoo shows the side to move: its observation, [rows, columns, planes]
bool (for Connect Four and tic-tac-toe the mover's stones and the other side's; for Go also the
last positions and the colour to move, from which ko and passes follow), so a player's
observation is a position as it is. A game with rules here has SHAPE (the observation's),
NUM_ACTIONS, MAX_MOVES (a cap for self-play, or None when every game ends by itself) and two
batched functions over positions [B, *SHAPE]: `legal` ([B, NUM_ACTIONS]) and `play` (the
positions after each game's move, as the side to move next sees them, and the result for that
side: 1.0 won, -1.0 lost, 0.0 drawn, NaN still open). The empty board is all zeros. `RULES`
lists the games; `rules` gives a game's rules."""
from __future__ import annotations

import importlib

import numpy as np

from rlkit.errors import UsageError


def lines_of(shape: tuple[int, int], length: int) -> np.ndarray:
    """Every straight line of `length` cells on a board of `shape` (rows, columns), in rows,
    columns and both diagonals, as row-major cell indices [lines, length]."""
    rows, cols = shape
    lines = []
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(length)]
                if all(0 <= rr < rows and 0 <= cc < cols for rr, cc in cells):
                    lines.append([rr * cols + cc for rr, cc in cells])
    return np.array(lines)


def stones(pos: np.ndarray):
    """[B, rows, columns, 2] positions -> the mover's stones and the other side's, [B, cells] each."""
    flat = pos.reshape(len(pos), -1, 2)
    return flat[..., 0], flat[..., 1]


def position(mine: np.ndarray, theirs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[B, cells] stones -> [B, rows, columns, 2] positions, channel 0 the mover's."""
    return np.stack([mine, theirs], -1).reshape(-1, *shape, 2)


def settle(after: np.ndarray, theirs: np.ndarray, lines: np.ndarray, shape: tuple[int, int]):
    """The position once the movers' stones are `after` (the new stone in), for the side to move
    next, which holds `theirs`; and the result for it: -1.0 when `after` holds a line, 0.0 when
    the board is full, NaN otherwise."""
    won = after[:, lines].all(-1).any(-1)
    full = (after | theirs).all(-1)
    return position(theirs, after, shape), np.where(won, -1.0, np.where(full, 0.0, np.nan))


RULES = ("connect_four", "tictactoe", "go")  # the games with rules here


def rules(game: str, board_size: int = 9, komi: float = 7.5):
    """`game`'s rules (Go's for this board size and komi), or a one-line error naming the games
    that have them."""
    if game not in RULES:
        raise UsageError(f"the tree search needs a game's rules in arrays: {', '.join(RULES)} have them, "
                         f"{game} does not")
    if game == "go":
        from rlkit.games.go import Go

        return Go(board_size, komi)
    return importlib.import_module(f"rlkit.games.{game}")  # one of RULES: rlkit's own modules only


def rules_of(env_cfg):
    """The rules of the game an env config plays (`env.board_size` and `env.komi` for Go)."""
    return rules(env_cfg.game, **{k: env_cfg[k] for k in ("board_size", "komi") if k in env_cfg})
