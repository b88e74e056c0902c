"""Round-robin tournament between board-game agents, in both seats:

    python -m rlkit.arena env=connect_four agents=[runs/a,random,alphabeta] games=100 depth=4

`agents`: run folders, checkpoint files, snapshots of a self-play run's opponent pool
(`RUN@step_50176`: its history, for an Elo curve over training), or baselines (random; minimax
for tictactoe; alphabeta for connect_four, depth=N; openspiel). Every pair plays `games` games, each agent first in half
of them. Trained agents play their most likely move (greedy=false: sample); with lookahead=N
(Connect Four) they look N plies ahead over their learned value first (rlkit.search.Lookahead),
with mcts=N they search N simulations per move as AlphaZero does (rlkit.search.MCTS);
with symmetric=true they are averaged over the board's symmetries (rlkit.symmetry.Symmetric).
`openings=N` starts each game with 0..N uniformly random moves: greedy agents against a search
otherwise replay a few lines (each pairing's count of distinct games shows it). Prints each
pairing's result and a table of win/draw/loss with Elo ratings (maximum likelihood over all
games; `random` at 0 when it plays, else the mean at 0) and bootstrap 95% intervals."""
from __future__ import annotations

import itertools

import numpy as np

from rlkit import elo
from rlkit.agent import load_player
from rlkit.config import SEED, UsageError, board_env, cli, command_args
from rlkit.envs.selfplay import play_match
from rlkit.players import MAX_DEPTH, against_minimax, baselines

DEFAULTS = {"env": "", "agents": [], "games": 100, "depth": 4, "greedy": True, "seed": 0, "lookahead": 0,
            "symmetric": False, "mcts": 0, "openings": 0}
RANGES = {"depth": (1, MAX_DEPTH), "seed": SEED}


def tournament(env_cfg, players: list, games: int, seed: int = 0, openings: int = 0):
    """All games of the round robin as (i, j, score of i), and each pairing's number of distinct games."""
    results, distinct = [], {}
    for i, j in itertools.combinations(range(len(players)), 2):
        lines: list = []
        scores = play_match(env_cfg, players[i], players[j], games, seed + 1000 * i + j, openings, lines)
        results += [(i, j, s) for s in scores]
        distinct[i, j] = len(set(lines))
    return results, distinct


def table(names: list[str], results, seed: int = 0) -> str:
    n = len(names)
    wdl = np.zeros((n, 3), dtype=int)
    for i, j, s in results:
        k = {1.0: 0, 0.5: 1, 0.0: 2}[s]
        wdl[i, k] += 1
        wdl[j, 2 - k] += 1
    anchor = names.index("random") if "random" in names else None
    ratings = elo.fit(n, results, anchor)
    low, high = elo.interval(n, results, anchor, seed=seed)
    width = max(len(s) for s in names + ["agent"])
    lines = [f"{'agent':<{width}}  {'W':>5} {'D':>5} {'L':>5}  {'score':>6}  {'Elo':>6}  95% interval"]
    for k in np.argsort(-ratings):
        w, d, lo = wdl[k]
        score = (w + 0.5 * d) / max(w + d + lo, 1)
        lines.append(f"{names[k]:<{width}}  {w:5d} {d:5d} {lo:5d}  {score:6.1%}  {ratings[k]:6.0f}  "
                     f"[{low[k]:.0f}, {high[k]:.0f}]")
    return "\n".join(lines)


def pairings(names: list[str], results, distinct: dict | None = None) -> str:
    lines = []
    for i, j in itertools.combinations(range(len(names)), 2):
        s = [r[2] for r in results if r[0] == i and r[1] == j]
        lines.append(f"{names[i]} vs {names[j]}: {s.count(1.0)} won, {s.count(0.5)} drawn, {s.count(0.0)} lost"
                     + (f" ({distinct[i, j]} distinct games)" if distinct else ""))
    return "\n".join(lines)


def exhaustive(names, players, specs) -> str:
    """Tic-tac-toe: every game each greedy trained agent can play against perfect play (any of
    minimax's best moves), in each seat: "never loses to minimax" checked exactly."""
    lines = []
    for name, player, spec in zip(names, players, specs):
        if spec in baselines("tictactoe"):  # only trained agents are checked
            continue
        seats = [against_minimax(player, seat) for seat in (0, 1)]
        lost = sum(c["lost"] for c in seats)
        lines.append(f"{name} against every line of perfect play: " + "; ".join(
            f"{'first (X)' if seat == 0 else 'second (O)'} {c['won']} won, {c['drawn']} drawn, {c['lost']} lost"
            for seat, c in enumerate(seats)) + (" -- never loses" if lost == 0 else f" -- loses {lost} lines"))
    return "\n".join(lines)


def main(argv: list[str]) -> str:
    args, env_overrides = command_args(argv, DEFAULTS, RANGES)
    specs = [str(s).strip() for s in args["agents"] if str(s).strip()]
    if not args["env"] or len(specs) < 2:
        raise UsageError("give env=GAME and at least two agents, e.g. "
                         "python -m rlkit.arena env=tictactoe agents=[runs/a,random,minimax]")
    if args["games"] < 1:
        raise UsageError(f"games must be > 0, got {args['games']}")
    if args["openings"] < 0:
        raise UsageError(f"openings must be >= 0 random moves, got {args['openings']}")
    env_cfg = board_env(args["env"], env_overrides)
    players = [load_player(s, env_cfg, args["greedy"], args["depth"], args["seed"], args["lookahead"], label=s,
                           symmetric=args["symmetric"], mcts=args["mcts"])
               for s in specs]
    names = [p.name for p in players]
    if len(set(names)) < len(names):
        raise UsageError(f"each agent may appear once; got {', '.join(specs)}")
    results, distinct = tournament(env_cfg, players, args["games"], args["seed"], args["openings"])
    out = f"{pairings(names, results, distinct)}\n\n{table(names, results, args['seed'])}"
    if env_cfg.game == "tictactoe" and "minimax" in specs and args["greedy"]:
        out += "\n\n" + exhaustive(names, players, specs)
    print(out)
    return out


if __name__ == "__main__":
    cli(main)
