"""AlphaZero-style self-play (Silver et al. 2018) for the board games with rules in arrays
(rlkit.games: Connect Four, tic-tac-toe, Go): `algo=alphazero`.

Every move of every game is chosen by a tree search (rlkit.search) over the network being
trained, which plays both seats. Each position is kept with the search's policy target and,
once its game is over, the result from its mover's side. The network learns to predict both:
the policy by cross-entropy to the target, the value by squared error to the result. The
search is the policy-improvement step, so the network learns from a stronger player than itself
at every move, and its value head learns from finished games rather than from its own guesses.

`algo.root` chooses the search (rlkit.search). `puct`, as in AlphaZero: the target is the
visit distribution; exploration is Dirichlet noise on the root priors, and for the first
`temperature_moves` moves of each game the move is drawn in proportion to the visit counts
(after that, the most visited). `gumbel`, as in Gumbel AlphaZero (Danihelka et al. 2022): the
target is the improved policy, softmax(logits + sigma(completed Q)), which improves on the
network even with a few simulations per move; the move played is the one sequential halving
keeps among the `considered` drawn by Gumbel-top-k, which is the exploration. Each game opens
with 0..`env.selfplay.opening_moves` uniformly random moves, not kept. A game that reaches its
rules' MAX_MOVES (Go: twice the points of the board) ends there, scored as it stands. A Go
player passes only when every legal point is one of its own eyes (rlkit.games.go.Go.play_on).
Positions go into a window of the last `replay_size`; after each round of `num_steps` moves in
every game the network takes `replay_ratio` * (moves made) / `batch_size` gradient steps on
minibatches drawn from the window, each position seen as itself or as one of its images under
the board's symmetries (Connect Four's mirror image; tic-tac-toe's and Go's rotations and
reflections), at random.

"Steps" here are moves, both seats' (with PPO's self-play env they are the learner's moves
only). Checkpoints keep the window, so a resumed run trains on the positions it had (its games
in progress start over). The opponent pool takes snapshots and rates them (Elo) as it does for
PPO; no game is played against it."""
from __future__ import annotations

from functools import cache

import numpy as np
import torch

from rlkit import search
from rlkit.algos.common import step
from rlkit.envs.selfplay import make_pool
from rlkit.errors import UsageError
from rlkit.games import RULES, rules_of
from rlkit.nets import log_policy
from rlkit.symmetry import BoardSymmetries

ASYNC_ROLLOUT = False  # the search plays with the network being trained: no lagged copy
AUGMENT = False        # the update takes the board's symmetric images itself


def make_collector(cfg, device: torch.device, seed: int) -> SearchSelfPlay:
    if cfg.runner.name != "local":
        raise UsageError(f"algo=alphazero runs on runner=local only, not runner={cfg.runner.name}")
    return SearchSelfPlay(cfg, device, seed)


class SearchSelfPlay:
    """The collector of `algo=alphazero`: `cfg.num_envs` games at a time, both seats searched.
    A `Collector` (rlkit.algos), as rlkit.rollout.Rollout is."""

    def __init__(self, cfg, device: torch.device, seed: int):
        if cfg.env.get("game") not in RULES:
            raise UsageError(f"algo=alphazero searches with a game's rules in arrays; env={cfg.env.name} has none "
                             f"(use env={' or env='.join(RULES)}, or algo=ppo)")

        if cfg.algo.replay_size < cfg.algo.batch_size:
            raise UsageError(f"algo.replay_size ({cfg.algo.replay_size}) must hold at least one minibatch "
                             f"(algo.batch_size={cfg.algo.batch_size})")
        self.pool, self.observation_space, self.action_space = make_pool(cfg)
        self.cfg, self.device, self.restarts = cfg.algo, device, 0
        self.num_envs = g = cfg.num_envs
        self.name, self.game = cfg.env.game, rules_of(cfg.env)
        a = self.game.NUM_ACTIONS
        self.openings = cfg.env.selfplay.opening_moves
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((g, *self.game.SHAPE), bool)
        self.opened = np.zeros(g, np.int64)  # random opening moves
        self.history: list[list] = [[] for _ in range(g)]  # per game, per searched move: (board, mask, target)
        size = self.cfg.replay_size
        self.window = {"obs": np.zeros((size, *self.game.SHAPE), np.int8), "masks": np.zeros((size, a), bool),
                       "pi": np.zeros((size, a), np.float32), "z": np.zeros(size, np.float32)}
        self.filled = self.next = 0
        for i in range(g):
            self._new_game(i)

    def _new_game(self, i: int) -> None:
        """Game i starts over, with 0..`openings` random moves."""
        game = self.game
        pos = np.zeros((1, *game.SHAPE), bool)
        opened = self.rng.integers(self.openings + 1)
        for _ in range(opened):
            move = self.rng.choice(np.flatnonzero(game.legal(pos)[0]))
            pos, end = game.play(pos, np.array([move]))
            if not np.isnan(end[0]):  # too many random moves for this game: start over with none
                pos, opened = np.zeros_like(pos), 0
                break
        self.pos[i], self.opened[i], self.history[i] = pos[0], opened, []

    def _keep(self, i: int, end: float) -> None:
        """Game i's positions into the window, each with the result for its mover (`end` is the
        result for the side to move after the last move: -1 it lost, 0 drawn)."""
        obs, masks, pi = (np.stack(x[::-1]) for x in zip(*self.history[i]))  # the last move first
        n, size = len(obs), self.cfg.replay_size
        # k plies before the last move: the last mover's result (-end) when k is even.
        z = np.where(np.arange(n) % 2 == 0, -end, end)
        skip = max(0, n - size)  # a game longer than the window: its first-written places are overwritten
        places = (self.next + np.arange(skip, n)) % size
        for key, x in (("obs", obs), ("masks", masks), ("pi", pi), ("z", z)):
            self.window[key][places] = x[skip:]
        self.next, self.filled = (self.next + n) % size, min(self.filled + n, size)

    def collect(self, policy):
        """`num_steps` searched moves in every game. Returns the window (tensors sharing the
        window's memory: the update runs between collections, never beside one; `new`: the moves
        made) and the games finished: (the first player's result, +1/0/-1, number of moves)."""
        cfg, game, episodes = self.cfg, self.game, []
        a, puct = game.NUM_ACTIONS, cfg.root == "puct"
        for _ in range(cfg.num_steps):
            legal = mask = game.legal(self.pos)
            if hasattr(game, "play_on"):  # Go: no pass while a point other than one's own eyes is open
                mask = game.play_on(self.pos, legal)  # the search's; the network learns over every legal move
            noise = draws = None
            if puct:
                noise = self.rng.dirichlet(np.full(a, cfg.dirichlet_alpha), self.num_envs) * mask
                noise /= noise.sum(1, keepdims=True)
            else:
                draws = self.rng.gumbel(size=mask.shape)
            trees = search.search(policy, self.pos, mask, cfg.sims, cfg.c_puct, self.device, noise,
                                  game=game, gumbel=draws, considered=cfg.considered)
            targets = trees.targets().astype(np.float32)
            moves = trees.best()
            obs = self.pos.astype(np.int8)
            for i, history in enumerate(self.history):
                if puct and len(history) < cfg.temperature_moves:
                    moves[i] = self.rng.choice(a, p=targets[i] / targets[i].sum())
                history.append((obs[i], legal[i], targets[i]))
            self.pos, end = game.play(self.pos, moves)
            if game.MAX_MOVES:
                length = self.opened + np.array([len(h) for h in self.history])
                capped = np.flatnonzero(np.isnan(end) & (length >= game.MAX_MOVES))
                end[capped] = game.result(self.pos[capped])
            for i in np.flatnonzero(~np.isnan(end)):
                self._keep(i, end[i])
                length = self.opened[i] + len(self.history[i])
                first = -end[i] if length % 2 else end[i]  # the first player made the last move when the count is odd
                episodes.append((float(first), int(length)))
                self._new_game(i)
        n = self.filled
        batch = {k: torch.from_numpy(v[:n]) for k, v in self.window.items()}
        batch["new"], batch["game"] = cfg.num_steps * self.num_envs, self.name
        return batch, episodes

    def state(self) -> dict:
        """The window's positions, oldest first, for a checkpoint (rlkit.checkpoint)."""
        order = (self.next - self.filled + np.arange(self.filled)) % self.cfg.replay_size  # next == filled until full
        return {"tensors": {k: torch.from_numpy(v[order]) for k, v in self.window.items()}, "meta": {}}

    def load_state(self, state: dict) -> None:
        """Refill the window from a checkpoint (the newest positions if it holds more than fit)."""
        saved = {k: v.cpu().numpy() for k, v in state["tensors"].items()}
        n = min(len(saved["z"]), self.cfg.replay_size)
        for key, window in self.window.items():
            window[:n] = saved[key][len(saved[key]) - n:]
        self.filled, self.next = n, n % self.cfg.replay_size

    def close(self) -> None:
        pass


@cache
def symmetries(game: str, shape: tuple, num_actions: int) -> BoardSymmetries:
    return BoardSymmetries(game, shape, num_actions)


def images(game: str, obs, masks, pi):
    """Each position (boards [B, H, W, planes], masks and targets [B, A]) as itself or as one of
    its images under `game`'s symmetries, drawn uniformly for each."""
    sym = symmetries(game, tuple(obs.shape[1:3]), masks.shape[1])
    # Uniform over the views, and for Connect Four's two the very draws of the mirror-only update
    # this replaced (view 1 where a uniform draw is below 0.5), so seeded runs repeat exactly.
    chosen = len(sym.views) - 1 - (torch.rand(len(obs)) * len(sym.views)).long()
    obs, masks, pi = obs.clone(), masks.clone(), pi.clone()
    for v in range(1, len(sym.views)):
        rows = (chosen == v).nonzero().flatten()
        came_from = sym.maps[v][0]  # came_from[the image's move] = the position's own move
        obs[rows] = sym.view(obs[rows], *sym.views[v])
        masks[rows], pi[rows] = masks[rows][:, came_from], pi[rows][:, came_from]
    return obs, masks, pi


def update(policy, optimizer, batch, cfg) -> dict:
    """`replay_ratio` * batch["new"] / `batch_size` gradient steps on minibatches of the window:
    cross-entropy of the policy to the search's targets, squared error of the value to the game's
    result, each position seen under one of batch["game"]'s symmetries at random. Nothing until
    the window holds a minibatch."""
    size = batch["z"].shape[0]
    if size < cfg.batch_size:
        return {}
    device = next(policy.parameters()).device
    losses = []
    for _ in range(max(1, round(cfg.replay_ratio * batch["new"] / cfg.batch_size))):
        idx = torch.randint(size, (cfg.batch_size,))
        obs, masks, pi = images(batch["game"], *(batch[k][idx] for k in ("obs", "masks", "pi")))
        z = batch["z"][idx]
        obs, masks, pi, z = (x.to(device, non_blocking=True) for x in (obs, masks, pi, z))
        logits, value = policy(obs, masks)
        logp = log_policy(logits)
        policy_loss = -(pi * logp).sum(-1).mean()
        value_loss = ((value - z) ** 2).mean()
        step(policy, optimizer, policy_loss + cfg.vf_coef * value_loss, cfg.max_grad_norm)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1).mean()
        losses.append(torch.stack([policy_loss.detach(), value_loss.detach(), entropy]))
    policy_loss, value_loss, entropy = torch.stack(losses).mean(0).tolist()
    return {"loss/policy": policy_loss, "loss/value": value_loss, "loss/entropy": entropy,
            "stats/window": size, "stats/gradient_steps": len(losses)}
