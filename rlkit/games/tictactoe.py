"""Tic-tac-toe's rules: cell r*3+c is move r*3+c; stones as bit masks of cells."""
from __future__ import annotations

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


def won(stones: int) -> bool:
    """Whether these stones (a bit mask of cells) hold a line of three."""
    return any(all(stones >> i & 1 for i in line) for line in LINES)
