"""Tic-tac-toe's rules: cell r*3+c is move r*3+c, as in PettingZoo's observation. Batched, as
every game's rules in rlkit.games (the tree search and algo=alphazero; tested move for move
against PettingZoo's game in tests/test_search.py), and on stones held as bit masks of cells
(`won`: the perfect player in rlkit.players)."""
from __future__ import annotations

import numpy as np

from rlkit.games import lines_of, planes, settle

SHAPE, CELLS, NUM_ACTIONS = (3, 3), 9, 9
LINES = lines_of(SHAPE, 3)  # the 8 lines of three


def won(stones: int) -> bool:
    """Whether these stones (a bit mask of cells) hold a line of three."""
    return any(all(stones >> int(i) & 1 for i in line) for line in LINES)


def legal(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """[..., 9] boards -> [..., 9]: the empty cells."""
    return ~(mine | theirs)


def play(mine: np.ndarray, theirs: np.ndarray, cells: np.ndarray):
    """The movers (holding `mine`, [B, 9]) mark `cells` (empty ones); as connect_four.drop."""
    after = mine.copy()
    after[np.arange(len(cells)), cells] = True
    return settle(after, theirs, LINES)


def boards(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """[B, 9] stones -> [B, 3, 3, 2] int8 planes, as PettingZoo shows the mover."""
    return planes(mine, theirs, SHAPE)
