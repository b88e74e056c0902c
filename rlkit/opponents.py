"""Players for two-player board games, all behind one interface:

    player.act(observation, action_mask) -> int              # one position, as env.last() gives it
    player.act_batch(observations, masks) -> np.ndarray     # [B, ...] and [B, A]: one call for many games

Observations are from the mover's point of view: channel 0 holds the mover's stones, channel 1
the opponent's. Baselines: `random`; `minimax` (perfect tic-tac-toe, memoized; a random choice
among the best moves, the quickest win first); `alphabeta` (Connect Four, a configurable depth,
a heuristic evaluation of the lines of four at the horizon; `alphabeta1`..`alphabeta6` fix the
depth in the name, so an opponent pool can hold one)."""
from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Categorical

from rlkit.errors import UsageError
from rlkit.nets import logp_entropy_value
from rlkit.rollout import PER_ENV
from rlkit.search import LINES, boards, drop, search


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


LINES3 = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


def _ttt_won(stones: int) -> bool:
    """Tic-tac-toe: whether these stones (a bit mask of cells) hold a line of three."""
    return any(all(stones >> i & 1 for i in line) for line in LINES3)


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
            if _ttt_won(theirs):
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
        if _ttt_won(stones[seat]) or _ttt_won(stones[1 - seat]) or stones[0] | stones[1] == 511:
            key = "won" if _ttt_won(stones[seat]) else "lost" if _ttt_won(stones[1 - seat]) else "drawn"
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


C4_THROUGH = [LINES[(LINES == i).any(1)] for i in range(42)]  # the lines of four through each cell


def _c4_wins(stones: np.ndarray, cell: int) -> bool:
    """Connect Four: whether the stone just played on `cell` completes a line of four of `stones`."""
    return bool(stones[C4_THROUGH[cell]].all(1).any())


def _c4_move(mine: np.ndarray, theirs: np.ndarray, col: int):
    """Connect Four, one position: the mover (holding `mine`) drops a stone in `col`. Returns the
    mover's stones after it and the game's result for the side to move next: -1.0 lost, 0.0
    drawn, None still open; (None, None) when the column is full."""
    if (mine | theirs)[col]:  # the column's top cell
        return None, None
    _, after, end = drop(mine[None], theirs[None], np.array([col]))
    return after[0], None if np.isnan(end[0]) else float(end[0])


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
            cell = self.drop(filled, col)
            if cell is None:
                continue
            mine[cell] = True
            if _c4_wins(mine, cell):
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
        cells = [c for c in (self.drop(filled, col) for col in range(7)) if c is not None]
        after = np.repeat(mine[None], len(cells), 0)
        after[np.arange(len(cells)), cells] = True
        m, t = after[:, LINES].sum(2), theirs[LINES].sum(1)
        if (m == 4).any():
            return self.WIN + 1  # a reply completes a line (there was none before): nothing scores higher
        if len(cells) == 1 and filled.sum() == 41:
            return 0.0  # the last cell: a draw
        # evaluate(after, theirs) for every reply; each is minus the evaluation from the other side
        return float(self.score(m, t, after[:, self.CENTRE].sum(1) - theirs[self.CENTRE].sum()).max())

    @staticmethod
    def drop(filled, col):
        for row in range(5, -1, -1):
            if not filled[row * 7 + col]:
                return row * 7 + col
        return None

    def move_values(self, observation) -> dict[int, float]:
        """The exact negamax value of every legal column (each searched with a full window)."""
        observation = np.asarray(observation)
        key = observation.tobytes()
        if key not in self.cache:
            obs = observation.reshape(42, 2).astype(bool)
            mine, theirs = obs[:, 0].copy(), obs[:, 1].copy()
            values = {}
            for col in range(7):
                cell = self.drop(mine | theirs, col)
                if cell is None:
                    continue
                mine[cell] = True
                win = _c4_wins(mine, cell)
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


class Lookahead(Player):
    """A trained Connect Four agent that looks `depth` plies ahead before it moves: every line of
    play to that depth under the rules, a won or drawn game scored exactly (+-1, 0; a sooner win
    higher), every position still open at the end valued by the agent's own value head (one
    batched forward pass, from the point of view of the side to move there), then negamax back
    to the root. Ties go to the policy's preferred move; depth=0 is the policy alone."""

    WIN = 1.0

    def __init__(self, policy, name="policy", depth=2, device="cpu"):
        self.policy, self.depth, self.device = policy, depth, torch.device(device)
        self.name = f"{name}+search{depth}"

    def expand(self, mine, theirs, depth, leaves):
        """The tree below a position whose mover holds `mine`: a float for a decided position, an
        int (an index into `leaves`) for one the network values, or a list of (move, subtree)."""
        if depth == 0:
            leaves.append(boards(mine[None], theirs[None])[0])
            return len(leaves) - 1
        children = []
        for col in range(7):
            after, end = _c4_move(mine, theirs, col)
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


class BoardSymmetries:
    """The symmetries of a board game, as maps of observations and moves. Connect Four (moves are
    columns, and gravity rules out turning the board): the mirror image. Tic-tac-toe and Go
    (moves are cells, row-major; Go's pass, the last move, stays): the 8 rotations and
    reflections. Observations are [B, H, W, planes], as PettingZoo gives them. `views[0]` is the
    identity; for each view, `maps` holds (came_from, goes_to): came_from[image's move] = the
    position's own move, goes_to[own move] = the image's move."""

    def __init__(self, game: str, board_shape, num_actions: int):
        h, w = board_shape[:2]
        if game == "connect_four":
            grid, views = torch.arange(w).expand(h, w), [(0, False), (0, True)]
        elif game in ("tictactoe", "go"):
            grid, views = torch.arange(h * w).view(h, w), [(k, f) for f in (False, True) for k in range(4)]
        else:
            raise UsageError(f"the symmetries of connect_four, tictactoe and go are known, not {game}'s")
        self.views, self.maps = views, []
        for view in views:
            moved = self.view(grid[None, :, :, None], *view)[0, :, :, 0]  # moved[cell] = the move that landed there
            came_from = moved[0] if game == "connect_four" else moved.flatten()
            came_from = torch.cat([came_from, torch.arange(len(came_from), num_actions)])  # moves off the board stay
            self.maps.append((came_from, torch.argsort(came_from)))

    @staticmethod
    def view(obs, turns: int, mirror: bool):
        return torch.rot90(obs.flip(2) if mirror else obs, turns, (1, 2))

    @torch.inference_mode()
    def augment(self, policy, batch: dict, generator=None) -> dict:
        """`env.selfplay.augment=true`: a rollout batch ([T, N, ...] tensors, as Rollout.collect
        gives them) and beside it, as N more columns, its image under one symmetry per column
        (other than the identity; chosen at random for tic-tac-toe and Go): boards, moves, masks
        and next boards mapped; rewards, dones and values, so advantages too, copied, since it is
        the same game seen another way.

        The acting policy did not play the images, so they go to PPO as decoupled samples:
        `logprobs` stay the acting policy's for the move actually played (the behaviour), and
        `prox_logprobs` are `policy`'s for the image's move in the image's position, taken here,
        before the update; the originals keep theirs, or their own logprobs (a weight of exactly 1).
        A symmetric policy gets a weight of 1 on every image too (tested)."""
        device = batch["actions"].device
        T, n = batch["actions"].shape
        chosen = torch.randint(1, len(self.views), (n,), generator=generator).to(device)
        parts, order = {}, []
        for v in range(1, len(self.views)):
            cols = (chosen == v).nonzero().flatten()
            if not len(cols):
                continue
            came_from, goes_to = (m.to(device) for m in self.maps[v])
            order.append(cols)
            obs = batch["obs"][:, cols]
            image = {"obs": self.view(obs.flatten(0, 1), *self.views[v]).reshape(obs.shape),
                     "actions": goes_to[batch["actions"][:, cols]],
                     "next_obs": self.view(batch["next_obs"][cols], *self.views[v])}
            if "masks" in batch:
                image["masks"] = batch["masks"][:, cols][..., came_from]
                image["next_mask"] = batch["next_mask"][cols][..., came_from]
            for k, x in image.items():
                parts.setdefault(k, []).append(x)
        order = torch.cat(order)
        image = {k: torch.cat(x, dim=0 if k in PER_ENV else 1) for k, x in parts.items()}
        image.update({k: batch[k][..., order] for k in ("rewards", "dones", "values", "logprobs", "last_value")})
        masks = image["masks"].flatten(0, 1) if "masks" in image else None
        prox, _, _ = logp_entropy_value(policy, image["obs"].flatten(0, 1), image["actions"].flatten(), masks)
        image["prox_logprobs"] = prox.view(T, n)
        own = {**batch, "prox_logprobs": batch.get("prox_logprobs", batch["logprobs"])}
        return {k: torch.cat([own[k], x], dim=0 if k in PER_ENV else 1) for k, x in image.items()}


class Symmetric(torch.nn.Module):
    """A board-game policy averaged over the board's symmetries (BoardSymmetries): the network
    sees every symmetric image of the position, each image's move logits are mapped back to the
    position's own moves, and logits and values are averaged (a geometric mean of the policies),
    so that what the network learned on one side of the board counts on the other. Measured on the
    shipped Connect Four agent against alpha-beta depth 4 (BENCHMARKS.md): from the empty board,
    where 200 games are a few dozen lines, it won all 200 with search=3 (87.5% without); from
    random openings it made no difference beyond noise (70% and 73%)."""

    def __init__(self, policy, game: str, board_shape, num_actions: int):
        super().__init__()
        self.policy, self.symmetries = policy, BoardSymmetries(game, board_shape, num_actions)

    def forward(self, obs, action_mask=None):
        logits = values = 0
        sym = self.symmetries
        for view, (came_from, goes_to) in zip(sym.views, sym.maps):
            image_mask = None if action_mask is None else action_mask[:, came_from]
            image_logits, value = self.policy(sym.view(obs, *view), image_mask)
            logits, values = logits + image_logits[:, goes_to], values + value
        return logits / len(sym.views), values / len(sym.views)


def baselines(game: str, depth: int = 4, seed=None) -> dict:
    """The built-in opponents for `game`: name -> a function making one."""
    out = {"random": lambda: RandomPlayer(seed)}
    if game == "tictactoe":
        out["minimax"] = lambda: Minimax(seed)
    if game == "connect_four":
        out["alphabeta"] = lambda: AlphaBeta(depth, seed)  # the depth asked for (depth=N)
        out.update({f"alphabeta{d}": (lambda d=d: AlphaBeta(d, seed)) for d in range(1, MAX_DEPTH + 1)})
    return out


MAX_SIMS = 10_000  # simulations per move (800 took 468 s for a 200-game arena on this project's 2-core CPU)
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


def load_player(spec: str, env_cfg, greedy: bool = True, depth: int = 4, seed=None, search: int = 0,
                label: str | None = None, symmetric: bool = False, mcts: int = 0) -> Player:
    """A baseline by name, or a trained agent from a run folder or checkpoint file, named `label`
    (default: the folder or file name); `search` > 0: the trained agent looks that many plies ahead
    (Connect Four only, see Lookahead; it plays the best-valued move, so `greedy` does not apply);
    `symmetric`: the trained agent averaged over the board's symmetries (see Symmetric); `mcts` > 0:
    it searches with that many simulations per move (Connect Four only, see MCTS). Baselines play
    as they are."""
    from pathlib import Path

    from rlkit.agent import load_agent

    if not 0 <= search <= 4:
        raise UsageError(f"search must be 0 to 4 plies (up to 2,401 positions valued per move), got {search}")
    if search and env_cfg.game != "connect_four":
        raise UsageError(f"search={search}: looking ahead needs Connect Four's rules; for {env_cfg.game} use search=0")
    if not 0 <= mcts <= MAX_SIMS:
        raise UsageError(f"mcts must be 0 to {MAX_SIMS} simulations per move, got {mcts}")
    if mcts and env_cfg.game != "connect_four":
        raise UsageError(f"mcts={mcts}: the tree search needs Connect Four's rules; for {env_cfg.game} use mcts=0")
    if mcts and search:
        raise UsageError(f"choose one search: search={search} (every line to a depth) or mcts={mcts} (simulations)")
    made = baselines(env_cfg.game, depth, seed)
    if spec in made:
        return made[spec]()
    if not Path(spec).exists():
        raise UsageError(f"unknown agent {spec!r}: not a run folder or checkpoint file, nor a baseline for "
                         f"{env_cfg.game} ({names(made)})")
    agent = load_agent(spec)
    trained = agent.cfg.env
    if trained.family != "board" or trained.game != env_cfg.game or (
            env_cfg.game == "go" and trained.board_size != env_cfg.board_size):
        what = trained.get("game", trained.name)
        raise UsageError(f"agent {spec} was trained on {what}"
                         f"{f' {trained.board_size}x{trained.board_size}' if what == 'go' else ''}, "
                         f"not on {env_cfg.game}")
    if seed is not None:
        torch.manual_seed(seed)
    label = label or Path(spec).name or spec
    policy = agent.policy
    if symmetric:
        policy = Symmetric(policy, env_cfg.game, agent.observation_space.shape, int(agent.action_space.n))
        label += "+sym"
    if search:
        return Lookahead(policy, label, depth=search)
    if mcts:
        return MCTS(policy, label, sims=mcts)
    return PolicyPlayer(policy, label, greedy=greedy)
