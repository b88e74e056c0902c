"""Tic-tac-toe's rules: cell r*3+c is move r*3+c, as in PettingZoo's observation. Batched, as
every game's rules in rlkit.games (the tree search and algo=alphazero; tested move for move
against PettingZoo's game in tests/test_search.py), and on stones held as bit masks of cells
(`won`: the perfect player in rlkit.players)."""
from __future__ import annotations

import numpy as np

from rlkit.games import lines_of, settle, stones

SHAPE, NUM_ACTIONS, MAX_MOVES = (3, 3, 2), 9, None
LINES = lines_of(SHAPE[:2], 3)  # the 8 lines of three


def won(stones: int) -> bool:
    """Whether these stones (a bit mask of cells) hold a line of three."""
    return any(all(stones >> int(i) & 1 for i in line) for line in LINES)


def legal(pos: np.ndarray) -> np.ndarray:
    """[B, 3, 3, 2] positions -> [B, 9]: the empty cells."""
    return ~pos.any(-1).reshape(len(pos), 9)


def play(pos: np.ndarray, cells: np.ndarray):
    """The movers mark `cells` (empty ones); as connect_four.drop."""
    mine, theirs = stones(pos)
    after = mine.copy()
    after[np.arange(len(cells)), cells] = True
    return settle(after, theirs, LINES, SHAPE[:2])
