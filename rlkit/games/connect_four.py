"""Connect Four's rules, once, in arrays: boards are the mover's stones and the other side's,
42 cells each, row-major with row 0 at the top, as PettingZoo shows them. Batched (`legal`,
`drop`: many games at a time, for the tree search and algo=alphazero) and for one
position (`landing`, `wins`, `move`: alpha-beta and lookahead); tested move for move against
PettingZoo's game (tests/test_search.py)."""
from __future__ import annotations

import numpy as np

from rlkit.games import lines_of, position, settle, stones

ROWS, COLS = 6, 7
SHAPE, NUM_ACTIONS, MAX_MOVES = (ROWS, COLS, 2), COLS, None
LINES = lines_of((ROWS, COLS), 4)  # the 69 lines of four


def legal(pos: np.ndarray) -> np.ndarray:
    """[B, 6, 7, 2] positions -> [B, 7]: the columns with room (their top cell empty)."""
    return ~pos[:, 0].any(-1)


def drop(pos: np.ndarray, cols: np.ndarray):
    """The movers drop a stone in `cols` (legal ones). Returns the positions for the side to move
    next and the game's result for that side: -1.0 lost, 0.0 drawn, NaN still open."""
    mine, theirs = stones(pos)
    filled = (mine | theirs).reshape(-1, ROWS, COLS)
    rows = ROWS - 1 - filled[np.arange(len(cols)), :, cols].sum(1)
    after = mine.copy()
    after[np.arange(len(cols)), rows * COLS + cols] = True
    return settle(after, theirs, LINES, (ROWS, COLS))


play = drop  # the name every game's rules give it (rlkit.games)


THROUGH = [LINES[(LINES == i).any(1)] for i in range(ROWS * COLS)]  # the lines of four through each cell


def landing(filled: np.ndarray, col: int) -> int | None:
    """The cell a stone dropped in `col` lands on (`filled`: [42] bool), or None if the column is full."""
    for row in range(ROWS - 1, -1, -1):
        if not filled[row * COLS + col]:
            return row * COLS + col
    return None


def wins(stones: np.ndarray, cell: int) -> bool:
    """Whether the stone just played on `cell` completes a line of four of `stones`."""
    return bool(stones[THROUGH[cell]].all(1).any())


def move(mine: np.ndarray, theirs: np.ndarray, col: int):
    """One position: the mover (holding `mine`) drops a stone in `col`. Returns the mover's stones
    after it and the game's result for the side to move next: -1.0 lost, 0.0 drawn, None still
    open; (None, None) when the column is full."""
    if (mine | theirs)[col]:  # the column's top cell
        return None, None
    after, end = drop(position(mine[None], theirs[None], (ROWS, COLS)), np.array([col]))
    return after[0, ..., 1].flatten(), None if np.isnan(end[0]) else float(end[0])
