"""Players for two-player board games, all behind one interface (the search players, lookahead
and MCTS, are in rlkit.search; `rlkit.agent.load_player` makes any of them from a name or a run):

    player.act(observation, action_mask) -> int              # one position, as env.last() gives it
    player.act_batch(observations, masks) -> np.ndarray     # [B, ...] and [B, A]: one call for many games

Observations are from the mover's point of view: channel 0 holds the mover's stones, channel 1
the opponent's. Baselines: `random`; `minimax` (perfect tic-tac-toe, memoized; a random choice
among the best moves, the quickest win first); `openspiel` (tic-tac-toe, Connect Four and Go:
OpenSpiel's MCTS bot, 1,000 simulations with random rollouts, rlkit.openspiel_bot); `alphabeta`
(Connect Four, a configurable depth, a heuristic evaluation of the lines of four at the horizon;
`alphabeta1`..`alphabeta6` fix the depth in the name, so an opponent pool can hold one)."""
from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Categorical

from rlkit.errors import UsageError
from rlkit.games import tictactoe
from rlkit.games.connect_four import LINES, landing, wins


class Player:
    name = "player"

    def act(self, observation, action_mask) -> int:
        return int(self.act_batch(np.asarray(observation)[None], np.asarray(action_mask, bool)[None])[0])

    def act_batch(self, observations, masks) -> np.ndarray:
        return np.array([self.choose(o, m.astype(bool)) for o, m in zip(observations, masks)], dtype=np.int64)

    def choose(self, observation, mask) -> int:
        raise NotImplementedError


class RandomPlayer(Player):
    name = "random"

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act_batch(self, observations, masks) -> np.ndarray:
        masks = np.asarray(masks, bool)
        u = self.rng.random(masks.shape) * masks
        return u.argmax(1)  # uniform among the legal moves


class PolicyPlayer(Player):
    """A network `(obs, mask) -> (logits, value)`: sampled moves, or the most likely (greedy)."""

    def __init__(self, policy, name="policy", greedy=False, device="cpu"):
        self.policy, self.name, self.greedy, self.device = policy, name, greedy, torch.device(device)

    @torch.inference_mode()
    def act_batch(self, observations, masks) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observations), device=self.device)
        mask = torch.as_tensor(np.asarray(masks, bool), device=self.device)
        logits, _ = self.policy(obs, mask)
        action = logits.argmax(-1) if self.greedy else Categorical(logits=logits).sample()
        return action.cpu().numpy()


class Minimax(Player):
    """Perfect tic-tac-toe. Cell r*3+c of the observation is move r*3+c."""

    name = "minimax"

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.memo: dict[tuple[int, int], int] = {}

    def value(self, mine: int, theirs: int) -> int:
        """Value for the mover (bit masks of stones): 1 + empty cells left at a win, 0 draw, minus at a loss."""
        key = (mine, theirs)
        if key not in self.memo:
            empty = [i for i in range(9) if not (mine | theirs) >> i & 1]
            if tictactoe.won(theirs):
                self.memo[key] = -(1 + len(empty))  # the player who just moved has won
            else:
                self.memo[key] = max((-self.value(theirs, mine | 1 << i) for i in empty), default=0)
        return self.memo[key]

    def move_values(self, observation) -> dict[int, int]:
        flat = np.asarray(observation).reshape(9, 2)
        mine = sum(1 << i for i in range(9) if flat[i, 0])
        theirs = sum(1 << i for i in range(9) if flat[i, 1])
        return {i: -self.value(theirs, mine | 1 << i) for i in range(9) if not (mine | theirs) >> i & 1}

    def choose(self, observation, mask) -> int:
        values = {a: v for a, v in self.move_values(observation).items() if mask[a]}
        best = max(values.values())
        return int(self.rng.choice([a for a, v in values.items() if v == best]))


def against_minimax(player: Player, seat: int) -> dict[str, int]:
    """Every tic-tac-toe game `player` (deterministic, e.g. greedy) can play in `seat` against
    perfect play, where perfect play means any of the minimax-best moves: an exact check of
    "never loses to minimax" instead of a sample of games. Returns counts of won, drawn, lost."""
    minimax, counts = Minimax(), {"won": 0, "drawn": 0, "lost": 0}

    def planes(mine: int, theirs: int):
        cells = np.array([[mine >> i & 1, theirs >> i & 1] for i in range(9)], dtype=np.int8)
        return cells.reshape(3, 3, 2), ~cells.any(1)

    def play(stones: list[int], mover: int) -> None:
        if tictactoe.won(stones[seat]) or tictactoe.won(stones[1 - seat]) or stones[0] | stones[1] == 511:
            key = "won" if tictactoe.won(stones[seat]) else "lost" if tictactoe.won(stones[1 - seat]) else "drawn"
            counts[key] += 1
            return
        obs, mask = planes(stones[mover], stones[1 - mover])
        if mover == seat:
            moves = [player.act(obs, mask)]
        else:
            values = minimax.move_values(obs)
            moves = [a for a, v in values.items() if v == max(values.values())]
        for a in moves:
            after = list(stones)
            after[mover] |= 1 << int(a)
            play(after, 1 - mover)

    play([0, 0], 0)
    return counts


class AlphaBeta(Player):
    """Connect Four negamax with alpha-beta pruning to `depth` plies. Wins score +-1e6 (sooner is
    better); at the horizon, each line of four open to one side scores 1, 10 or 100 for 1, 2 or
    3 stones in it, plus 3 per stone in the centre column. Row 5 of the observation is the bottom."""

    WEIGHTS = np.array([0.0, 1.0, 10.0, 100.0, 0.0])
    ORDER = (3, 2, 4, 1, 5, 0, 6)  # centre first: better pruning
    WIN = 1e6
    CENTRE = np.arange(3, 42, 7)  # the cells of the centre column
    CACHE = 200_000  # positions whose move values are kept (cleared when full)

    def __init__(self, depth=4, seed=None):
        self.depth, self.name, self.rng = depth, f"alphabeta{depth}", np.random.default_rng(seed)
        self.cache: dict[bytes, dict[int, float]] = {}  # exact values, so repeated positions are free

    def score(self, m, t, centre):
        """The horizon evaluation from the stones of each side in every line (m, t: [..., lines])
        and the mover's lead in the centre column; batched over leading axes."""
        return (self.WEIGHTS[m] * (t == 0)).sum(-1) - (self.WEIGHTS[t] * (m == 0)).sum(-1) + 3.0 * centre

    def evaluate(self, mine, theirs) -> float:
        return float(self.score(mine[LINES].sum(1), theirs[LINES].sum(1),
                                mine[self.CENTRE].sum() - theirs[self.CENTRE].sum()))

    def negamax(self, mine, theirs, depth, alpha, beta) -> float:
        filled = mine | theirs
        if filled.all():
            return 0.0
        if depth == 0:
            return self.evaluate(mine, theirs)
        if depth == 1:
            return self.horizon(mine, theirs, filled)
        best = -np.inf
        for col in self.ORDER:
            cell = landing(filled, col)
            if cell is None:
                continue
            mine[cell] = True
            if wins(mine, cell):
                value = self.WIN + depth
            else:
                value = -self.negamax(theirs, mine, depth - 1, -beta, -alpha)
            mine[cell] = False
            best, alpha = max(best, value), max(alpha, value)
            if alpha >= beta:
                break
        return best

    def horizon(self, mine, theirs, filled) -> float:
        """negamax one ply above the horizon, exactly (no pruning): all replies valued in one
        batched evaluation, the search's main cost. Exact values keep alpha-beta's root exact."""
        cells = [c for c in (landing(filled, col) for col in range(7)) if c is not None]
        after = np.repeat(mine[None], len(cells), 0)
        after[np.arange(len(cells)), cells] = True
        m, t = after[:, LINES].sum(2), theirs[LINES].sum(1)
        if (m == 4).any():
            return self.WIN + 1  # a reply completes a line (there was none before): nothing scores higher
        if len(cells) == 1 and filled.sum() == 41:
            return 0.0  # the last cell: a draw
        # evaluate(after, theirs) for every reply; each is minus the evaluation from the other side
        return float(self.score(m, t, after[:, self.CENTRE].sum(1) - theirs[self.CENTRE].sum()).max())

    def move_values(self, observation) -> dict[int, float]:
        """The exact negamax value of every legal column (each searched with a full window)."""
        observation = np.asarray(observation)
        key = observation.tobytes()
        if key not in self.cache:
            obs = observation.reshape(42, 2).astype(bool)
            mine, theirs = obs[:, 0].copy(), obs[:, 1].copy()
            values = {}
            for col in range(7):
                cell = landing(mine | theirs, col)
                if cell is None:
                    continue
                mine[cell] = True
                win = wins(mine, cell)
                values[col] = self.WIN + self.depth if win else -self.negamax(
                    theirs, mine, self.depth - 1, -np.inf, np.inf)
                mine[cell] = False
            if len(self.cache) >= self.CACHE:
                self.cache.clear()
            self.cache[key] = values
        return self.cache[key]

    def choose(self, observation, mask) -> int:
        values = {c: v for c, v in self.move_values(observation).items() if mask[c]}
        best = max(values.values())
        return int(self.rng.choice([c for c, v in values.items() if v == best]))


def baselines(game: str, depth: int = 4, seed=None, komi: float = 7.5) -> dict:
    """The built-in opponents for `game` (Go: with `komi`): name -> a function making one."""
    out = {"random": lambda: RandomPlayer(seed)}
    if game == "tictactoe":
        out["minimax"] = lambda: Minimax(seed)
    if game == "connect_four":
        out["alphabeta"] = lambda: AlphaBeta(depth, seed)  # the depth asked for (depth=N)
        out.update({f"alphabeta{d}": (lambda d=d: AlphaBeta(d, seed)) for d in range(1, MAX_DEPTH + 1)})
    if game in ("tictactoe", "connect_four", "go"):
        from rlkit.openspiel_bot import OpenSpielMCTS  # pyspiel only when chosen

        out["openspiel"] = lambda: OpenSpielMCTS(game, seed, komi=komi)
    return out


MAX_SIMS = 10_000  # simulations per move at most (mcts=N)
MAX_LOOKAHEAD = 4  # plies at most (lookahead=N): up to 7**4 = 2,401 positions valued per move
MAX_DEPTH = 6  # alphabeta1 .. alphabeta6: a fixed depth whatever depth=N says (e.g. in an opponent pool)


def names(made: dict) -> str:
    """The baselines of `made` for a message: alphabeta1..alphabeta6 as one entry."""
    plain = [n for n in made if not (n.startswith("alphabeta") and n[9:].isdigit())]
    return ", ".join(plain + ([f"alphabeta1..alphabeta{MAX_DEPTH}"] if len(plain) < len(made) else []))


def make_baseline(game: str, name: str, depth: int = 4, seed=None) -> Player:
    made = baselines(game, depth, seed)
    if name not in made:
        raise UsageError(f"no baseline {name!r} for {game}; choose from: {names(made)}")
    return made[name]()
