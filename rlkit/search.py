"""Monte Carlo tree search for the board games with rules in arrays (rlkit.games: Connect Four,
tic-tac-toe, Go), as AlphaZero's (Silver et al. 2018), many games at a time: every game's tree
is a block of nodes, and each simulation walks all the trees down together, one ply per step of
a loop, with every game's choice made by one array operation. The new positions of one
simulation, one per game, go through the network in one forward pass. `MCTS` below plays with it
(`mcts=N` in arena, play and `rlkit.load_agent`); `algo=alphazero` trains on it
(rlkit/algos/alphazero.py).

A walk goes down to a finished game (scored exactly by the rules, for the side to move there)
or to a position the network has not rated, which gets its priors (softmax over the legal
moves) and its value; that value is added to every move on the way, from each mover's
side. Two ways to choose the moves on the way (`root`):

- `puct`: everywhere the value so far plus c_puct * prior * sqrt(parent visits + 1) / (1 +
  visits); the move played is the most visited.
- `gumbel` (Gumbel AlphaZero, rlkit.gumbel): at the root, the `considered` moves with the
  highest logit + Gumbel noise, the simulations shared among them by sequential halving, and
  the move played the survivor with the best logit + noise + sigma(completed Q); below the root,
  the move whose visit share lags the improved policy the most. No Dirichlet noise: the Gumbel
  draws are the exploration.

Positions are what PettingZoo shows the mover (rlkit.games), so a player's observation is a root
as it is."""
from __future__ import annotations

import numpy as np
import torch

from rlkit import gumbel as gz
from rlkit.games import connect_four, position
from rlkit.players import Player


def rater(policy, device):
    """Priors (softmax over the legal moves, zero elsewhere) and values, clamped to [-1, 1], of
    positions (rlkit.games: the observations the network sees) whose legal moves are `ok`, by
    `policy` (obs, mask) -> (logits, value)."""
    @torch.inference_mode()
    def rate(pos, ok):
        logits, values = policy(torch.as_tensor(pos.astype(np.int8), device=device),
                                torch.as_tensor(ok, device=device))
        priors = torch.softmax(logits.float(), -1).cpu().numpy()
        return priors * ok, values.float().clamp(-1, 1).cpu().numpy()
    return rate


class Trees:
    """The search trees of B games, `size` nodes each at most (one simulation adds one node)."""

    def __init__(self, rate, pos, mask, size: int, c_puct: float = 1.5, noise=None,
                 game=connect_four, gumbel=None, considered: int = 16):
        """Roots: the positions `pos` [B, *game.SHAPE] of `game` (its rules, rlkit.games),
        moves limited to `mask` [B, A]. `noise` ([B, A], or None): root priors
        become 0.75 * prior + 0.25 * noise, for exploration in self-play (AlphaZero's Dirichlet
        noise). `gumbel` ([B, A] draws of Gumbel(0, 1), or None for PUCT): the Gumbel root over
        the `considered` best moves by logit + `gumbel`."""
        b = len(pos)
        if not np.asarray(mask, bool).any(1).all():
            raise ValueError("every root needs a legal move: a finished or full board cannot be searched")
        self.rate, self.c_puct, self.game = rate, c_puct, game
        a = game.NUM_ACTIONS
        self.pos = np.zeros((b, size, *game.SHAPE), bool)
        self.prior = np.zeros((b, size, a), np.float32)
        self.value = np.zeros((b, size))  # the network's, for the node's mover
        self.legal = np.zeros((b, size, a), bool)
        self.visits = np.zeros((b, size, a))
        self.total = np.zeros((b, size, a))
        self.child = np.full((b, size, a), -1, np.int64)
        self.end = np.full((b, size), np.nan)
        self.rated = np.zeros((b, size), bool)
        self.used = np.ones(b, np.int64)
        self.games = np.arange(b)
        self.pos[:, 0] = pos
        self._expand(self.games, np.zeros(b, np.int64))
        self.legal[:, 0] &= np.asarray(mask, bool)
        if noise is not None:
            self.prior[:, 0] = (0.75 * self.prior[:, 0] + 0.25 * noise) * self.legal[:, 0]
        self.gumbel, self.sims = None, 0
        if gumbel is not None:
            self.gumbel = np.where(self.legal[:, 0], gumbel, 0.0)
            keys = np.where(self.legal[:, 0], self.gumbel + gz.logits_of(self.prior[:, 0], self.legal[:, 0]), -np.inf)
            rank = np.argsort(np.argsort(-keys, 1, kind="stable"), 1)
            self.considering = np.minimum(considered, self.legal[:, 0].sum(1))  # moves considered per root
            self.considered = rank < self.considering[:, None]

    def _expand(self, games, nodes) -> np.ndarray:
        pos = self.pos[games, nodes]
        ok = self.game.legal(pos)
        priors, values = self.rate(pos, ok)
        self.prior[games, nodes], self.legal[games, nodes], self.rated[games, nodes] = priors, ok, True
        self.value[games, nodes] = values
        return values

    def _sigma_plus_logits(self, games, nodes) -> np.ndarray:
        """logits + sigma(completed Q) of these nodes' moves, -inf for illegal ones."""
        legal, visits = self.legal[games, nodes], self.visits[games, nodes]
        completed = gz.completed_q(visits, self.total[games, nodes], self.prior[games, nodes], self.value[games, nodes])
        return gz.logits_of(self.prior[games, nodes], legal) + gz.sigma(completed, visits, legal)

    def _root_scores(self) -> np.ndarray:
        """Gumbel + logits + sigma at each root, -inf outside the considered moves."""
        root = np.zeros(len(self.games), np.int64)
        return np.where(self.considered, self.gumbel + self._sigma_plus_logits(self.games, root), -np.inf)

    def _choose(self, walking, n, at_root: bool) -> np.ndarray:
        """The move each walking game takes at its node `n`."""
        visits = self.visits[walking, n]
        if self.gumbel is None:  # PUCT
            q = np.where(visits > 0, self.total[walking, n] / np.maximum(visits, 1), 0.0)
            u = self.c_puct * self.prior[walking, n] * np.sqrt(visits.sum(1, keepdims=True) + 1) / (1 + visits)
            return np.argmax(np.where(self.legal[walking, n], q + u, -np.inf), 1)
        if at_root:  # sequential halving: the best-scored considered move with this phase's visit count
            scores = self._root_scores()
            due = self.schedule[self.considering, self.sims][:, None]
            ready = np.where(visits == due, scores, -np.inf)
            return np.argmax(np.where(np.isfinite(ready).any(1, keepdims=True), ready, scores), 1)
        scores = self._sigma_plus_logits(walking, n)
        policy = np.exp(scores - scores.max(1, keepdims=True))
        policy /= policy.sum(1, keepdims=True)
        lag = policy - visits / (1 + visits.sum(1, keepdims=True))
        return np.argmax(np.where(self.legal[walking, n], lag, -np.inf), 1)

    def _walk(self):
        """Every game down to a finished game or an unrated position. Returns the path (per ply:
        the games still walking, their nodes and moves) and each game's last node."""
        node, walking, path = np.zeros(len(self.games), np.int64), self.games, []
        while len(walking):
            n = node[walking]
            col = self._choose(walking, n, at_root=not path)
            nxt = self.child[walking, n, col]
            new = nxt < 0
            if new.any():
                g, parent, c = walking[new], n[new], col[new]
                made = self.used[g]
                self.used[g] += 1
                self.pos[g, made], self.end[g, made] = self.game.play(self.pos[g, parent], c)
                self.child[g, parent, c] = made
                nxt[new] = made
            path.append((walking, n, col))
            node[walking] = nxt
            walking = walking[self.rated[walking, nxt] & np.isnan(self.end[walking, nxt])]
        return path, node

    def simulate(self, sims: int) -> None:
        if self.gumbel is not None:  # each root's visit schedule, by its number of considered moves
            self.schedule = np.stack([gz.halving(m, self.sims + sims) for m in range(self.game.NUM_ACTIONS + 1)])
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
            self.sims += 1

    @property
    def root_visits(self) -> np.ndarray:
        return self.visits[:, 0]

    def targets(self) -> np.ndarray:
        """What the network learns the root's policy from: the visit shares (PUCT), or the
        improved policy softmax(logits + sigma(completed Q)) (Gumbel)."""
        if self.gumbel is None:
            return self.visits[:, 0] / self.visits[:, 0].sum(1, keepdims=True)
        return gz.improved(self.prior[:, 0], self.legal[:, 0], self.visits[:, 0], self.total[:, 0], self.value[:, 0])

    def best(self) -> np.ndarray:
        """The move to play at each root. PUCT: the most visited legal move (ties: the higher
        prior). Gumbel: of the considered moves visited most, the best by Gumbel + logits + sigma."""
        if self.gumbel is not None:
            scores = self._root_scores()
            most = np.where(self.considered, self.visits[:, 0], -1).max(1, keepdims=True)
            return np.argmax(np.where(self.considered & (self.visits[:, 0] == most), scores, -np.inf), 1)
        root = np.where(self.legal[:, 0], self.visits[:, 0] + 1e-3 * self.prior[:, 0], -np.inf)
        return np.argmax(root, 1)


def search(policy, pos, mask, sims: int, c_puct: float = 1.5, device="cpu", noise=None,
           game=connect_four, gumbel=None, considered: int = 16) -> Trees:
    """Searched trees of the positions `pos` [B, *game.SHAPE] of `game` with `sims`
    simulations each (see Trees for the rest)."""
    trees = Trees(rater(policy, torch.device(device)), pos, mask, sims + 1, c_puct, noise,
                  game, gumbel, considered)
    trees.simulate(sims)
    return trees


class MCTS(Player):
    """A trained agent of a game with rules in arrays (rlkit.games) that searches before it
    moves, as AlphaZero does (Silver et al. 2018): `sims` simulations per move of the PUCT tree
    search over the agent's priors and value head; the move is the most visited (ties: the
    policy's choice). Every game of a batch searches in step, so that each simulation's new
    positions go through the network in one forward pass."""

    def __init__(self, policy, name="policy", sims=200, c_puct=1.5, device="cpu", game=connect_four):
        """`game`: the game's rules (rlkit.games.rules)."""
        self.policy, self.sims, self.c_puct, self.device = policy, sims, c_puct, torch.device(device)
        self.game = game
        self.name = f"{name}+mcts{sims}"

    def act_batch(self, observations, masks) -> np.ndarray:
        trees = search(self.policy, np.asarray(observations).astype(bool), np.asarray(masks, bool), self.sims,
                       self.c_puct, self.device, game=self.game)
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
            leaves.append(position(mine[None], theirs[None], connect_four.SHAPE[:2])[0].astype(np.int8))
            return len(leaves) - 1
        children = []
        for col in range(7):
            after, end = connect_four.move(mine, theirs, col)
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
