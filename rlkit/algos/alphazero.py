"""AlphaZero-style self-play for Connect Four (Silver et al. 2018): `algo=alphazero`.

Every move of every game is chosen by a tree search (rlkit.search) over the network being
trained, which plays both seats. Each position is kept with the search's visit counts and, once
its game is over, the result from its mover's side. The network learns to predict both: the
policy by cross-entropy to the visit distribution, the value by squared error to the result. The
search is the policy-improvement step, so the network learns from a stronger player than itself
at every move, and its value head learns from finished games rather than from its own guesses.

Exploration, as in AlphaZero: Dirichlet noise on the root priors, and for the first
`temperature_moves` moves of each game the move is drawn in proportion to the visit counts (after
that, the most visited). Each game opens with 0..`env.selfplay.opening_moves` uniformly random
moves, not kept. Positions go into a window of the last `replay_size`; after each round of
`num_steps` moves in every game the network takes `replay_ratio` * (moves made) / `batch_size`
gradient steps on minibatches drawn from the window, each position seen as itself or its mirror
image (the board's one symmetry under gravity), at random.

"Steps" here are moves, both seats' (with PPO's self-play env they are the learner's moves
only). Checkpoints keep the window, so a resumed run trains on the positions it had (its games
in progress start over). The opponent pool
takes snapshots and rates them (Elo) as it does for PPO; no game is played against it."""
from __future__ import annotations

import numpy as np
import torch

from rlkit import search
from rlkit.algos.common import step
from rlkit.envs.selfplay import make_pool
from rlkit.errors import UsageError
from rlkit.games import connect_four as c4
from rlkit.nets import log_policy
from rlkit.symmetry import BoardSymmetries

MIRROR = BoardSymmetries("connect_four", (c4.ROWS, c4.COLS), c4.COLS)  # views[1]: the mirror image
ASYNC_ROLLOUT = False  # the search plays with the network being trained: no lagged copy
AUGMENT = False        # the update mirrors positions itself


def make_collector(cfg, device: torch.device, seed: int) -> SearchSelfPlay:
    if cfg.runner.name != "local":
        raise UsageError(f"algo=alphazero runs on runner=local only, not runner={cfg.runner.name}")
    return SearchSelfPlay(cfg, device, seed)


class SearchSelfPlay:
    """The collector of `algo=alphazero`: `cfg.num_envs` games at a time, both seats searched.
    A `Collector` (rlkit.algos), as rlkit.rollout.Rollout is."""

    def __init__(self, cfg, device: torch.device, seed: int):
        if cfg.env.get("game") != "connect_four":
            raise UsageError(f"algo=alphazero searches with Connect Four's rules; env={cfg.env.name} cannot use it "
                             f"(use env=connect_four, or algo=ppo)")

        if cfg.algo.replay_size < cfg.algo.batch_size:
            raise UsageError(f"algo.replay_size ({cfg.algo.replay_size}) must hold at least one minibatch "
                             f"(algo.batch_size={cfg.algo.batch_size})")
        self.pool, self.observation_space, self.action_space = make_pool(cfg)
        self.cfg, self.device, self.restarts = cfg.algo, device, 0
        self.num_envs = g = cfg.num_envs
        self.openings = cfg.env.selfplay.opening_moves
        self.rng = np.random.default_rng(seed)
        self.mine, self.theirs = np.zeros((g, 42), bool), np.zeros((g, 42), bool)
        self.opened = np.zeros(g, np.int64)  # random opening moves
        self.history: list[list] = [[] for _ in range(g)]  # per game, per searched move: (board, mask, visit shares)
        size = self.cfg.replay_size
        self.window = {"obs": np.zeros((size, 6, 7, 2), np.int8), "masks": np.zeros((size, 7), bool),
                       "pi": np.zeros((size, 7), np.float32), "z": np.zeros(size, np.float32)}
        self.filled = self.next = 0
        for i in range(g):
            self._new_game(i)

    def _new_game(self, i: int) -> None:
        """Game i starts over, with 0..`openings` random moves."""
        mine, theirs = np.zeros((1, 42), bool), np.zeros((1, 42), bool)
        opened = self.rng.integers(self.openings + 1)
        for _ in range(opened):  # a game cannot end within the first 6 moves
            col = self.rng.choice(np.flatnonzero(c4.legal(mine, theirs)[0]))
            mine, theirs, _ = c4.drop(mine, theirs, np.array([col]))
        self.mine[i], self.theirs[i], self.opened[i], self.history[i] = mine[0], theirs[0], opened, []

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
        cfg, episodes = self.cfg, []
        for _ in range(cfg.num_steps):
            mask = c4.legal(self.mine, self.theirs)
            noise = self.rng.dirichlet(np.full(7, cfg.dirichlet_alpha), self.num_envs) * mask
            noise /= noise.sum(1, keepdims=True)
            trees = search.search(policy, self.mine, self.theirs, mask, cfg.sims, cfg.c_puct, self.device, noise)
            visits = trees.root_visits
            shares = visits / visits.sum(1, keepdims=True)
            moves = trees.best()
            obs, targets = c4.boards(self.mine, self.theirs), shares.astype(np.float32)
            for i, history in enumerate(self.history):
                if len(history) < cfg.temperature_moves:
                    moves[i] = self.rng.choice(7, p=shares[i])
                history.append((obs[i], mask[i], targets[i]))
            self.mine, self.theirs, end = c4.drop(self.mine, self.theirs, moves)
            for i in np.flatnonzero(~np.isnan(end)):
                self._keep(i, end[i])
                length = self.opened[i] + len(self.history[i])
                first = -end[i] if length % 2 else end[i]  # the first player made the last move when the count is odd
                episodes.append((float(first), int(length)))
                self._new_game(i)
        n = self.filled
        batch = {k: torch.from_numpy(v[:n]) for k, v in self.window.items()}
        batch["new"] = cfg.num_steps * self.num_envs
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


def update(policy, optimizer, batch, cfg) -> dict:
    """`replay_ratio` * batch["new"] / `batch_size` gradient steps on minibatches of the window:
    cross-entropy of the policy to the search's visit shares, squared error of the value to the
    game's result, each position mirrored at random. Nothing until the window holds a minibatch."""
    size = batch["z"].shape[0]
    if size < cfg.batch_size:
        return {}
    device = next(policy.parameters()).device
    losses = []
    for _ in range(max(1, round(cfg.replay_ratio * batch["new"] / cfg.batch_size))):
        idx = torch.randint(size, (cfg.batch_size,))
        obs, masks, pi, z = (batch[k][idx] for k in ("obs", "masks", "pi", "z"))
        flip = torch.rand(cfg.batch_size) < 0.5
        obs = torch.where(flip[:, None, None, None], MIRROR.view(obs, *MIRROR.views[1]), obs)
        masks, pi = (torch.where(flip[:, None], x[:, MIRROR.maps[1][0]], x) for x in (masks, pi))
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
