"""Self-play: a Gymnasium vector env in which the learner plays one seat of each game (drawn at
random for every game) and opponents play the other inside `step`, one batched forward pass per
opponent for all the games where it is to move.

The learner only ever sees its own seat: every observation is from its point of view, a game's
result is the reward of the learner's last move (a loss caused by the opponent's reply included),
and a game ends the learner's episode. Legal moves travel as `info["action_mask"]` ([N, A] bool)
on reset and on every step, for the observation returned with it. Finished games restart in the
same step (Gymnasium's SAME_STEP autoreset); `info["final_info"]["episode"]` holds the learner's
score (+1/0/-1) and its number of moves.

Opponents come from a source with `sample() -> key`, `player(key) -> Player` and
`record(key, learner_score)`: the opponent pool (rlkit.pool) in training, `Fixed` elsewhere."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from rlkit.envs.board import Game
from rlkit.nets import make_policy
from rlkit.pool import OpponentPool


class Fixed:
    """One opponent for every game."""

    def __init__(self, player):
        self.one = player

    def sample(self):
        return "fixed"

    def player(self, key):
        return self.one

    def record(self, key, score):
        pass


SEATS = {"first": 0, "second": 1}


class SelfPlay(gym.vector.VectorEnv):
    """`seats`: the learner's seat in each game: random, alternate (env i: seat i % 2), first, second.
    Variety for training (both off in matches): each game opens with 0..`opening_moves` uniformly
    random moves, and each opponent move is a uniformly random legal one with probability
    `opponent_explore`, so the learner meets positions its opponents' own play would not reach."""

    def __init__(self, env_cfg, num_envs: int, opponents, seats: str = "random", opening_moves: int = 0,
                 opponent_explore: float = 0.0):
        self.games = [Game(env_cfg) for _ in range(num_envs)]
        self.opponents, self.seat_rule = opponents, seats
        self.opening_moves, self.opponent_explore = opening_moves, opponent_explore
        self.num_envs = num_envs
        self.single_observation_space = self.games[0].observation_space
        self.single_action_space = gym.spaces.Discrete(self.games[0].num_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.seat = np.zeros(num_envs, dtype=np.int64)
        self.opponent = [None] * num_envs  # each game's opponent: its key, and the player itself
        self.player = [None] * num_envs     # (held for the whole game: the pool may drop it meanwhile)
        self.rng = np.random.default_rng()
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        for i in range(self.num_envs):
            self._new_game(i, None if seed is None else seed + i)
        self._to_first_move(range(self.num_envs))
        return self._observe()

    def _to_first_move(self, indices) -> None:
        """New games up to the learner's first move (the opponent moves first where it holds the
        first seat). A game that ends before then (a random opening, then the opponent's winning
        reply or its second pass in Go) is no game for the learner: a new one replaces it."""
        while len(indices):
            self._opponents_move(indices)
            indices = [i for i in indices if self.games[i].over]
            for i in indices:
                self._new_game(i)

    def _new_game(self, i: int, seed=None) -> None:
        game = self.games[i]
        game.reset(seed)
        rule = self.seat_rule
        self.seat[i] = self.rng.integers(2) if rule == "random" else i % 2 if rule == "alternate" else SEATS[rule]
        self.opponent[i] = self.opponents.sample()
        self.player[i] = self.opponents.player(self.opponent[i])
        for _ in range(self.rng.integers(self.opening_moves + 1)):
            game.step(self.rng.choice(np.flatnonzero(game.observe()[1])))
            if game.over:  # an opening that ends the game: this game starts from the empty board
                game.reset()
                break

    def _opponents_move(self, indices) -> None:
        """Until the learner is to move (or the game is over): each opponent moves in all its games at once."""
        while True:
            waiting = [i for i in indices if not self.games[i].over and self.games[i].mover != self.seat[i]]
            if not waiting:
                return
            for key in dict.fromkeys(self.opponent[i] for i in waiting):
                group = [i for i in waiting if self.opponent[i] == key]
                obs, masks = zip(*(self.games[i].observe() for i in group))
                actions = self.player[group[0]].act_batch(np.stack(obs), np.stack(masks))
                for k in np.flatnonzero(self.rng.random(len(group)) < self.opponent_explore):
                    actions[k] = self.rng.choice(np.flatnonzero(masks[k]))
                for i, a in zip(group, actions):
                    self.games[i].step(a)

    def _observe(self, extra=None):
        obs, masks = zip(*(g.observe(s) for g, s in zip(self.games, self.seat)))
        info = {"action_mask": np.stack(masks), "seat": self.seat.copy(), **(extra or {})}
        return np.stack(obs), info

    def step(self, actions):
        actions = np.asarray(actions).reshape(self.num_envs)
        lengths = np.zeros(self.num_envs, dtype=np.int64)
        for g, a in zip(self.games, actions):
            g.step(a)  # raises on an illegal move: the learner's mask must be used
        self._opponents_move(range(self.num_envs))
        done = np.array([g.over for g in self.games])
        reward = np.zeros(self.num_envs, dtype=np.float32)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(done):
            g = self.games[i]
            reward[i] = g.score(self.seat[i])
            lengths[i] = (g.moves + (1 - self.seat[i])) // 2  # the learner's own moves
            final_obs[i] = g.observe(self.seat[i])[0]
            self.opponents.record(self.opponent[i], (reward[i] + 1) / 2)
            self._new_game(i)
        if done.any():
            self._to_first_move(np.flatnonzero(done))
        extra = {}
        if done.any():
            episode = {"r": reward.copy(), "l": lengths, "_r": done, "_l": done}
            extra = {"final_info": {"episode": episode, "_episode": done}, "final_obs": final_obs,
                     "_final_obs": done}
        obs, info = self._observe(extra)
        return obs, reward, done, np.zeros(self.num_envs, dtype=bool), info

    @property
    def rules_time(self) -> float:
        """Seconds spent inside the game rules (PettingZoo) so far, all games together."""
        return sum(g.rules_time for g in self.games)

    def close_extras(self, **kwargs):
        for g in self.games:
            g.env.close()


def play_match(env_cfg, first, second, games: int, seed: int = 0, openings: int = 0,
               lines: list | None = None) -> list[float]:
    """`games` games between two players, `first` in seat 0 of the even-numbered games and seat 1
    of the odd ones, all batched; each game opens with 0..`openings` uniformly random moves.
    Returns `first`'s score per game (1 win, 0.5 draw, 0 loss). `lines`, if given, receives one
    key per game (its seat, every position `first` saw, the last one and the result): equal keys,
    the same game."""
    envs = SelfPlay(env_cfg, games, Fixed(second), seats="alternate", opening_moves=openings)
    obs, info = envs.reset(seed=seed)
    scores = [None] * games
    seen = [[i % 2] for i in range(games)] if lines is not None else None
    while any(s is None for s in scores):
        if seen is not None:
            for i in (i for i in range(games) if scores[i] is None):
                seen[i].append(obs[i].tobytes())
        obs, reward, done, _, info = envs.step(first.act_batch(obs, info["action_mask"]))
        for i in np.flatnonzero(done):
            if scores[i] is None:
                scores[i] = (float(reward[i]) + 1) / 2
                if seen is not None:
                    seen[i] += [info["final_obs"][i].tobytes(), scores[i]]  # how it ended
    envs.close()
    if seen is not None:
        lines += [tuple(k) for k in seen]
    return scores


def make_pool(cfg):
    """A new opponent pool for `cfg`'s game, and the game's observation and action spaces."""

    probe = Game(cfg.env)
    space, actions = probe.observation_space, gym.spaces.Discrete(probe.num_actions)
    probe.env.close()
    pool = OpponentPool(cfg.env.selfplay, cfg.env.game, lambda: make_policy(cfg.model, space, actions, board=True),
                        lambda a, b, n, seed: play_match(cfg.env, a, b, n, seed), seed=cfg.seed)
    return pool, space, actions


def make(cfg, pool=None) -> SelfPlay:
    """The self-play vector env of `cfg` (`cfg.num_envs` games); its opponent pool is `envs.pool`,
    a new one unless `pool` is given (an env rebuilt after a failure keeps its pool)."""
    if pool is None:
        pool, _, _ = make_pool(cfg)
    sp = cfg.env.selfplay
    envs = SelfPlay(cfg.env, cfg.num_envs, pool, opening_moves=sp.opening_moves, opponent_explore=sp.opponent_explore)
    envs.pool = pool
    return envs
