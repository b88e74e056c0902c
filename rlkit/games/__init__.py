"""Each board game's rules, once, in arrays, for the players that search them (rlkit.players,
rlkit.search), algo=alphazero and the tests against PettingZoo. Play itself goes through
PettingZoo's games (rlkit/envs/board.py).

A game with rules here is a module with SHAPE (rows, columns), CELLS, NUM_ACTIONS and three
batched functions over boards held as the mover's stones and the other side's ([B, CELLS] bool):
`legal` ([B, NUM_ACTIONS]), `play` (the position after each game's move, for the side to move
next, and the result for that side: -1.0 lost, 0.0 drawn, NaN still open) and `boards` (the
planes PettingZoo shows the mover, [B, rows, columns, 2] int8). `RULES` lists them."""
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


def settle(after: np.ndarray, theirs: np.ndarray, lines: np.ndarray):
    """The position once the movers' stones are `after` (the new stone in): the side to move next
    holds `theirs`; the result for it is -1.0 when `after` holds a line, 0.0 when the board is
    full, NaN otherwise."""
    won = after[:, lines].all(-1).any(-1)
    full = (after | theirs).all(-1)
    return theirs.copy(), after, np.where(won, -1.0, np.where(full, 0.0, np.nan))


def planes(mine: np.ndarray, theirs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[B, cells] stones -> [B, rows, columns, 2] int8 planes, channel 0 the mover's."""
    return np.stack([mine, theirs], -1).reshape(-1, *shape, 2).astype(np.int8)


RULES = ("connect_four", "tictactoe")  # the games with a module of rules here


def rules(game: str):
    """The module of `game`'s rules in arrays, or a one-line error naming the games that have them."""
    if game not in RULES:
        raise UsageError(f"the tree search needs a game's rules in arrays: {', '.join(RULES)} have them, "
                         f"{game} does not")
    return importlib.import_module(f"rlkit.games.{game}")  # one of RULES: rlkit's own modules only
