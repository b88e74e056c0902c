"""Monte Carlo tree search for Connect Four (as AlphaZero's, Silver et al. 2018), many games at a
time, held in arrays: every game's tree is a block of nodes, and each simulation walks all the
trees down together, one ply per step of a loop, with every game's choice made by one array
operation. The new positions of one simulation, one per game, go through the network in one
forward pass. `MCTS` below plays with it (`mcts=N` in arena and play); `algo=alphazero`
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

from rlkit.games.connect_four import COLS, ROWS, boards, drop, legal, move
from rlkit.players import Player


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


class MCTS(Player):
    """A trained Connect Four agent that searches before it moves, as AlphaZero does (Silver et
    al. 2018): `sims` simulations per move of rlkit.search's tree search over the agent's priors
    and value head; the move is the most visited (ties: the policy's choice). Every game of a
    batch searches in step, so that each simulation's new positions go through the network in
    one forward pass."""

    def __init__(self, policy, name="policy", sims=200, c_puct=1.5, device="cpu"):
        self.policy, self.sims, self.c_puct, self.device = policy, sims, c_puct, torch.device(device)
        self.name = f"{name}+mcts{sims}"

    def act_batch(self, observations, masks) -> np.ndarray:
        stones = np.asarray(observations).reshape(len(observations), 42, 2).astype(bool)
        trees = search(self.policy, stones[..., 0], stones[..., 1], masks, self.sims, self.c_puct, self.device)
        return trees.best().astype(np.int64)


class Lookahead(Player):
    """A trained Connect Four agent that looks `depth` plies ahead before it moves: every line of
    play to that depth under the rules, a won or drawn game scored exactly (+-1, 0; a sooner win
    higher), every position still open at the end valued by the agent's own value head (one
    batched forward pass, from the point of view of the side to move there), then negamax back
    to the root. Ties go to the policy's preferred move; depth=0 is the policy alone."""

    WIN = 1.0

    def __init__(self, policy, name="policy", depth=2, device="cpu"):
        self.policy, self.depth, self.device = policy, depth, torch.device(device)
        self.name = f"{name}+lookahead{depth}"

    def expand(self, mine, theirs, depth, leaves):
        """The tree below a position whose mover holds `mine`: a float for a decided position, an
        int (an index into `leaves`) for one the network values, or a list of (move, subtree)."""
        if depth == 0:
            leaves.append(boards(mine[None], theirs[None])[0])
            return len(leaves) - 1
        children = []
        for col in range(7):
            after, end = move(mine, theirs, col)
            if after is None:
                continue
            if end is None:
                sub = self.expand(theirs, after, depth - 1, leaves)
            else:  # a loss for the side to move next (a sooner one scored higher), or a draw
                sub = end * (self.WIN + 1e-3 * depth)
            children.append((col, sub))
        return children

    def backup(self, tree, values) -> float:
        if isinstance(tree, float):
            return tree
        if isinstance(tree, int):
            return float(values[tree])
        return max(-self.backup(sub, values) for _, sub in tree)

    @torch.inference_mode()
    def act_batch(self, observations, masks) -> np.ndarray:
        observations, masks = np.asarray(observations), np.asarray(masks, bool)
        obs = torch.as_tensor(observations, device=self.device)
        logits, _ = self.policy(obs, torch.as_tensor(masks, device=self.device))
        prefer = logits.float().cpu().numpy()
        if self.depth == 0:
            return prefer.argmax(1)
        moves = []
        for observation, mask, pref in zip(observations, masks, prefer):
            flat = observation.reshape(42, 2).astype(bool)
            leaves: list[np.ndarray] = []
            tree = self.expand(flat[:, 0], flat[:, 1], self.depth, leaves)
            values = np.zeros(0)
            if leaves:
                batch = torch.as_tensor(np.stack(leaves).astype(observation.dtype), device=self.device)
                # A guess never outranks a proven result: the value head is not bounded by itself.
                values = self.policy(batch)[1].float().clamp(-self.WIN, self.WIN).cpu().numpy()
            scores = {col: -self.backup(sub, values) for col, sub in tree if mask[col]}
            best = max(scores.values())
            moves.append(max((c for c, v in scores.items() if v >= best - 1e-9), key=lambda c: pref[c]))
        return np.array(moves, dtype=np.int64)
