"""Monte Carlo tree search for Connect Four (as AlphaZero's, Silver et al. 2018), many games at a
time, held in arrays: every game's tree is a block of nodes, and each simulation walks all the
trees down together, one ply per step of a loop, with every game's choice made by one array
operation. The new positions of one simulation, one per game, go through the network in one
forward pass. rlkit.opponents.MCTS plays with it (`mcts=N` in arena and play); `algo=alphazero`
trains on its visit counts (rlkit/algos/alphazero.py).

A walk goes down by PUCT, the value so far plus c_puct * prior * sqrt(parent visits + 1) /
(1 + visits), to a finished game (scored exactly: -1 for the side to move when the last move
won, 0 drawn) or to a position the network has not rated, which gets its priors (softmax over
the legal columns) and its value; that value is added to every move on the way, from each
mover's side. Boards are the mover's stones and the other side's, 42 cells each, row-major with
row 0 at the top, as PettingZoo shows them."""
from __future__ import annotations

import numpy as np
import torch

ROWS, COLS = 6, 7


def _lines() -> np.ndarray:
    """The 69 lines of four, as cell indices [69, 4]."""
    lines = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    lines.append([rr * COLS + cc for rr, cc in cells])
    return np.array(lines)


LINES = _lines()


def legal(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """[..., 42] boards -> [..., 7]: the columns with room (their top cell empty)."""
    return ~(mine | theirs)[..., :COLS]


def drop(mine: np.ndarray, theirs: np.ndarray, cols: np.ndarray):
    """The movers (holding `mine`, [B, 42]) drop a stone in `cols` (legal ones). Returns the
    position for the side to move next, as (its stones, the other side's), and the game's result
    for that side: -1.0 lost, 0.0 drawn, NaN still open."""
    filled = (mine | theirs).reshape(-1, ROWS, COLS)
    rows = ROWS - 1 - filled[np.arange(len(cols)), :, cols].sum(1)
    after = mine.copy()
    after[np.arange(len(cols)), rows * COLS + cols] = True
    won = after[:, LINES].all(-1).any(-1)
    full = (after | theirs).all(-1)
    return theirs.copy(), after, np.where(won, -1.0, np.where(full, 0.0, np.nan))


def boards(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """[B, 42] stones -> [B, 6, 7, 2] int8 planes, as PettingZoo shows the mover."""
    return np.stack([mine, theirs], -1).reshape(-1, ROWS, COLS, 2).astype(np.int8)


def rater(policy, device):
    """Priors (softmax over the legal columns, zero elsewhere) and values, clamped to [-1, 1],
    of [B, 42] positions whose legal columns are `ok`, by `policy` (obs, mask) -> (logits, value)."""
    @torch.inference_mode()
    def rate(mine, theirs, ok):
        logits, values = policy(torch.as_tensor(boards(mine, theirs), device=device),
                                torch.as_tensor(ok, device=device))
        priors = torch.softmax(logits.float(), -1).cpu().numpy()
        return priors * ok, values.float().clamp(-1, 1).cpu().numpy()
    return rate


class Trees:
    """The search trees of B games, `size` nodes each at most (one simulation adds one node)."""

    def __init__(self, rate, mine, theirs, mask, size: int, c_puct: float = 1.5, noise=None):
        """Roots: the positions (mine, theirs) [B, 42], moves limited to `mask` [B, 7]. `noise`
        ([B, 7], or None): root priors become 0.75 * prior + 0.25 * noise, for exploration in
        self-play (AlphaZero's Dirichlet noise)."""
        b = len(mine)
        if not np.asarray(mask, bool).any(1).all():
            raise ValueError("every root needs a legal move: a finished or full board cannot be searched")
        self.rate, self.c_puct = rate, c_puct
        self.mine = np.zeros((b, size, ROWS * COLS), bool)
        self.theirs = np.zeros((b, size, ROWS * COLS), bool)
        self.prior = np.zeros((b, size, COLS), np.float32)
        self.legal = np.zeros((b, size, COLS), bool)
        self.visits = np.zeros((b, size, COLS))
        self.total = np.zeros((b, size, COLS))
        self.child = np.full((b, size, COLS), -1, np.int64)
        self.end = np.full((b, size), np.nan)
        self.rated = np.zeros((b, size), bool)
        self.used = np.ones(b, np.int64)
        self.games = np.arange(b)
        self.mine[:, 0], self.theirs[:, 0] = mine, theirs
        self._expand(self.games, np.zeros(b, np.int64))
        self.legal[:, 0] &= np.asarray(mask, bool)
        if noise is not None:
            self.prior[:, 0] = (0.75 * self.prior[:, 0] + 0.25 * noise) * self.legal[:, 0]

    def _expand(self, games, nodes) -> np.ndarray:
        mine, theirs = self.mine[games, nodes], self.theirs[games, nodes]
        ok = legal(mine, theirs)
        priors, values = self.rate(mine, theirs, ok)
        self.prior[games, nodes], self.legal[games, nodes], self.rated[games, nodes] = priors, ok, True
        return values

    def _walk(self):
        """Every game down by PUCT to a finished game or an unrated position. Returns the path
        (per ply: the games still walking, their nodes and moves) and each game's last node."""
        node, walking, path = np.zeros(len(self.games), np.int64), self.games, []
        while len(walking):
            n = node[walking]
            visits, total = self.visits[walking, n], self.total[walking, n]
            q = np.where(visits > 0, total / np.maximum(visits, 1), 0.0)
            u = self.c_puct * self.prior[walking, n] * np.sqrt(visits.sum(1, keepdims=True) + 1) / (1 + visits)
            col = np.argmax(np.where(self.legal[walking, n], q + u, -np.inf), 1)
            nxt = self.child[walking, n, col]
            new = nxt < 0
            if new.any():
                g, parent, c = walking[new], n[new], col[new]
                made = self.used[g]
                self.used[g] += 1
                self.mine[g, made], self.theirs[g, made], self.end[g, made] = drop(
                    self.mine[g, parent], self.theirs[g, parent], c)
                self.child[g, parent, c] = made
                nxt[new] = made
            path.append((walking, n, col))
            node[walking] = nxt
            walking = walking[self.rated[walking, nxt] & np.isnan(self.end[walking, nxt])]
        return path, node

    def simulate(self, sims: int) -> None:
        for _ in range(sims):
            path, leaf = self._walk()
            value = self.end[self.games, leaf]
            fresh = np.flatnonzero(np.isnan(value))
            if len(fresh):
                value[fresh] = self._expand(fresh, leaf[fresh])
            depth = np.zeros(len(self.games), np.int64)
            for walking, _, _ in path:
                depth[walking] += 1
            for ply, (walking, n, col) in enumerate(path):
                # `value` is the leaf's, for its mover; a move `depth - ply` plies above is the
                # other side's when that distance is odd.
                sign = np.where((depth[walking] - ply) % 2, -1.0, 1.0)
                self.visits[walking, n, col] += 1
                self.total[walking, n, col] += sign * value[walking]

    @property
    def root_visits(self) -> np.ndarray:
        return self.visits[:, 0]

    def best(self) -> np.ndarray:
        """The most visited legal move at each root (ties: the higher prior)."""
        root = np.where(self.legal[:, 0], self.visits[:, 0] + 1e-3 * self.prior[:, 0], -np.inf)
        return np.argmax(root, 1)


def search(policy, mine, theirs, mask, sims: int, c_puct: float = 1.5, device="cpu", noise=None) -> Trees:
    """Searched trees of the positions (mine, theirs) [B, 42] with `sims` simulations each."""
    trees = Trees(rater(policy, torch.device(device)), mine, theirs, mask, sims + 1, c_puct, noise)
    trees.simulate(sims)
    return trees
