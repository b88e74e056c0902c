"""Play a board game against an agent in the terminal:

    python -m rlkit.play env=tictactoe agent=runs/tictactoe__ppo__1__.../ [seat=first|second]

`agent` is a run folder, a checkpoint file, or a baseline (random, minimax for tictactoe,
alphabeta for connect_four, with depth=N; openspiel for all three: OpenSpiel's MCTS bot; a
trained Connect Four agent looks N plies ahead with lookahead=N; a trained agent of any of them
searches N simulations per move with mcts=N; symmetric=true averages a
trained agent over the board's symmetries). Type a move when asked: a cell number (tictactoe),
a column (connect_four), or a point like D4 or `pass` (go); `q` gives up. The board is drawn
after every move; a move that cannot be read or is not legal is refused with the legal ones."""
from __future__ import annotations

import sys

import numpy as np

from rlkit.agent import load_player
from rlkit.config import SEED, UsageError, board_env, cli, command_args
from rlkit.envs.board import Game, move_name, parse_move
from rlkit.players import MAX_DEPTH

DEFAULTS = {"env": "", "agent": "", "seat": "first", "greedy": True, "depth": 4, "seed": 0, "lookahead": 0,
            "symmetric": False, "mcts": 0}
RANGES = {"depth": (1, MAX_DEPTH), "seed": SEED}


def play(game: Game, player, human: int, read=input, write=print) -> float | None:
    """One game; returns the person's score (1 win, 0.5 draw, 0 loss), None if abandoned."""
    size = game.observation_space.shape[0]
    symbols = "XO"
    write(f"You are {symbols[human]} ({'first' if human == 0 else 'second'}); the agent is {symbols[1 - human]}.")
    write(game.draw())
    while not game.over:
        obs, mask = game.observe()
        legal = [move_name(game.name, a, size) for a in np.flatnonzero(mask)]
        if game.mover == human:
            try:
                text = read("your move: ")
            except EOFError:
                write("input ended; game abandoned")
                return None
            if text.strip().lower() in ("q", "quit"):
                write("you gave up")
                return None
            action = parse_move(game.name, text, size)
            if action is None or action >= len(mask) or not mask[action]:
                write(f"illegal move {text.strip()!r}; legal moves: {' '.join(legal)}")
                continue
        else:
            action = player.act(obs, mask)
            write(f"agent plays {move_name(game.name, action, size)}")
        game.step(action)
        write(game.draw())
    score = (game.score(human) + 1) / 2
    write({1.0: "you win", 0.5: "draw", 0.0: "you lose"}[score])
    return score


def main(argv: list[str]) -> None:
    args, env_overrides = command_args(argv, DEFAULTS, RANGES)
    if not args["env"] or not args["agent"]:
        raise UsageError("give env=GAME and agent=RUN_FOLDER|CHECKPOINT|BASELINE, e.g. "
                         "python -m rlkit.play env=tictactoe agent=minimax")
    if args["seat"] not in ("first", "second"):
        raise UsageError(f"seat must be one of: first, second; got {args['seat']!r}")
    env_cfg = board_env(args["env"], env_overrides)
    player = load_player(args["agent"], env_cfg, args["greedy"], args["depth"], args["seed"], args["lookahead"],
                          symmetric=args["symmetric"], mcts=args["mcts"])
    game = Game(env_cfg)
    game.reset(args["seed"])
    score = play(game, player, 0 if args["seat"] == "first" else 1)
    if score is None:
        sys.exit(1)


if __name__ == "__main__":
    cli(main)
