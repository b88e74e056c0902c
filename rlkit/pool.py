"""The opponent pool for self-play: built-in baselines plus frozen snapshots of the learner,
one added every `snapshot_every` agent steps (the oldest dropped past `max_snapshots`).

Sampling (one opponent per game): the latest snapshot with probability `latest_prob`, else any
member with probability proportional to (1 - s) ** priority_power, where s is the learner's
recent score against it (an average with rate `score_rate`, from 0.5): opponents the learner
struggles against come up more often (AlphaStar's prioritized fictitious self-play).

Elo: every member has a rating; the first baseline is the anchor, fixed at 0. A new snapshot
starts at the latest one's rating and plays `eval_games` games (both seats) against up to
`eval_opponents` members (the previous snapshot, the anchor, then others at random), updating
both ratings game by game with factor `elo_k` (the anchor stays put).

The whole pool goes into checkpoints: snapshot weights as tensors, the rest as JSON."""
from __future__ import annotations

import numpy as np
import torch

from rlkit import elo
from rlkit.errors import UsageError
from rlkit.players import PolicyPlayer, baselines, names


class OpponentPool:
    def __init__(self, cfg, game: str, make_net, match, seed: int | None = None):
        """`make_net()` builds an untrained policy network; `match(a, b, games, seed)` plays
        two players and returns a's score per game."""
        self.cfg, self.make_net, self.match = cfg, make_net, match
        self.rng = np.random.default_rng(seed)
        self.builtin = baselines(game, seed=seed)
        unknown = [b for b in cfg.baselines if b not in self.builtin]
        if unknown:
            raise UsageError(f"env.selfplay.baselines: no baseline {unknown[0]!r} for {game}; "
                             f"choose from: {names(self.builtin)}")
        self.members: dict[str, dict] = {b: self._member("baseline", 0.0) for b in cfg.baselines}
        self.weights: dict[str, dict[str, torch.Tensor]] = {}
        self.players: dict = {}
        self.last_snapshot: int | None = None

    @staticmethod
    def _member(kind: str, rating: float) -> dict:
        return {"kind": kind, "elo": rating, "score": 0.5, "games": 0}

    @property
    def snapshots(self) -> list[str]:
        return [n for n, m in self.members.items() if m["kind"] == "snapshot"]

    @property
    def latest(self) -> str | None:
        return self.snapshots[-1] if self.snapshots else None

    @property
    def anchor(self) -> str | None:
        return next(iter(self.members), None)

    # --- what the self-play env uses ---
    def probabilities(self) -> np.ndarray:
        """Priority of each member, in `members` order (before the latest-snapshot draw)."""
        w = np.array([(1.0 - m["score"]) ** self.cfg.priority_power for m in self.members.values()])
        return w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))

    def sample(self) -> str:
        if self.latest is not None and self.rng.random() < self.cfg.latest_prob:
            return self.latest
        names = list(self.members)
        return names[self.rng.choice(len(names), p=self.probabilities())]

    def record(self, name: str, score: float) -> None:
        """The learner scored `score` (1 win, 0.5 draw, 0 loss) in a training game against `name`."""
        m = self.members.get(name)
        if m is not None:  # it may have left the pool while its game went on
            m["score"] += self.cfg.score_rate * (float(score) - m["score"])
            m["games"] += 1

    def player(self, name: str):
        if name not in self.players:
            if self.members[name]["kind"] == "baseline":
                self.players[name] = self.builtin[name]()
            else:
                net = self.make_net()
                net.load_state_dict(self.weights[name])
                self.players[name] = PolicyPlayer(net.eval(), name)
        return self.players[name]

    # --- what the training loop uses ---
    def maybe_snapshot(self, policy, step: int) -> dict:
        """Add a snapshot if one is due; returns scalars to log (empty if none was added)."""
        if self.last_snapshot is not None and step - self.last_snapshot < self.cfg.snapshot_every:
            return {}
        self.add_snapshot(policy, step)
        return self.scalars()

    def add_snapshot(self, policy, step: int) -> str:
        name = f"step_{step}"
        start = self.members[self.latest]["elo"] if self.latest else 0.0
        self.weights[name] = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
        self.members[name] = self._member("snapshot", start)
        self.last_snapshot = step
        self.rate(name)
        while len(self.snapshots) > self.cfg.max_snapshots:
            old = self.snapshots[0]
            del self.members[old], self.weights[old]
            self.players.pop(old, None)
        return name

    def rate(self, name: str) -> None:
        others = [n for n in self.members if n != name]
        first = [n for n in dict.fromkeys([*self.snapshots[-2:-1], self.anchor]) if n in others]
        rest = [n for n in others if n not in first]
        picks = first + [rest[i] for i in self.rng.permutation(len(rest))]
        for opp in picks[:self.cfg.eval_opponents]:
            scores = self.match(self.player(name), self.player(opp), self.cfg.eval_games,
                                int(self.rng.integers(2**31)))
            self.apply_results(name, opp, scores)

    def apply_results(self, a: str, b: str, scores) -> None:
        """Elo updates, game by game, for games of `a` against `b` (a's scores); the anchor stays at 0."""
        for s in scores:
            ra, rb = elo.update(self.members[a]["elo"], self.members[b]["elo"], s, self.cfg.elo_k)
            self.members[a]["elo"] = ra if a != self.anchor else self.members[a]["elo"]
            self.members[b]["elo"] = rb if b != self.anchor else self.members[b]["elo"]

    def scalars(self) -> dict:
        out = {"elo/latest": self.members[self.latest]["elo"], "selfplay/pool_size": len(self.members)}
        out.update({f"elo_pool/{n}": m["elo"] for n, m in self.members.items()})
        # The learner's running score, against members it has played in training (algo=alphazero: none).
        out.update({f"selfplay/score_vs/{n}": m["score"] for n, m in self.members.items() if m["games"]})
        return out

    # --- checkpoints: tensors + JSON, never pickle ---
    def state(self) -> dict:
        tensors = {f"{n}/{k}": v for n, w in self.weights.items() for k, v in w.items()}
        meta = {"members": self.members, "last_snapshot": self.last_snapshot,
                "rng": self.rng.bit_generator.state}
        return {"tensors": tensors, "meta": meta}

    def load_state(self, state: dict) -> None:
        """What `state()` wrote; anything else (a damaged or hand-made file) is a ValueError before
        the pool changes: members of known kinds with numbers in range, baselines this game has, and
        each snapshot's weights shaped as this pool's networks."""
        meta = state["meta"]
        members = meta.get("members") if isinstance(meta, dict) else None
        bounds = {"elo": (-1e4, 1e4), "score": (0.0, 1.0), "games": (0, 1e12)}

        def sane(m) -> bool:
            return isinstance(m, dict) and m.get("kind") in ("baseline", "snapshot") and all(
                isinstance(m.get(k), (int, float)) and not isinstance(m[k], bool) and lo <= m[k] <= hi
                for k, (lo, hi) in bounds.items())

        if not isinstance(members, dict) or not members or not all(sane(m) for m in members.values()) \
                or not isinstance(meta.get("last_snapshot", 0), (int, type(None))):
            raise ValueError("its opponent pool's members are not what rlkit writes")
        unknown = [n for n, m in members.items() if m["kind"] == "baseline" and n not in self.builtin]
        if unknown:
            raise ValueError(f"its opponent pool has a baseline {unknown[0][:40]!r} that this game has not")
        weights: dict[str, dict] = {n: {} for n, m in members.items() if m["kind"] == "snapshot"}
        for key, value in state["tensors"].items():
            n, _, k = key.partition("/")
            if n not in weights:
                raise ValueError(f"its opponent pool holds weights of {n[:40]!r}, which is not a snapshot")
            weights[n][k] = value
        shapes = {k: tuple(v.shape) for k, v in self.make_net().state_dict().items()}
        if any({k: tuple(v.shape) for k, v in w.items()} != shapes for w in weights.values()):
            raise ValueError("its opponent pool's snapshots are not shaped as the agent's network")
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        self.members, self.last_snapshot, self.weights = members, meta.get("last_snapshot"), weights
        self.rng, self.players = rng, {}
