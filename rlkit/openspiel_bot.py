"""OpenSpiel's MCTS bot (Lanctot et al. 2019, `open_spiel.python.algorithms.mcts`) as a baseline
opponent, `openspiel`: 1,000 simulations per move, each valued by one random rollout, UCT's
constant 2 and solved subtrees kept, the settings of OpenSpiel's own MCTS example. It is the
classic search without a network, the bar a learned board-game agent is held to.

Players see only the board (rlkit.players), so the bot's position is rebuilt from it: a
sequence of moves from the empty board, the first player's and the second's alternating, that
ends there (for Connect Four, one that stacks every column from the bottom). A position with no
line of the game's length has none on the way either, so the sequence is always legal."""
from __future__ import annotations

import numpy as np

from rlkit.games import rules
from rlkit.players import Player

SPIEL_NAMES = {"tictactoe": "tic_tac_toe", "connect_four": "connect_four"}
SIMS, UCT_C = 1000, 2.0


def moves_to(game: str, mine: np.ndarray, theirs: np.ndarray) -> list[int]:
    """Moves (PettingZoo's numbering, which OpenSpiel shares for both games) from the empty board
    to the position where the mover holds `mine` and the other side `theirs` ([CELLS] bool)."""
    first, second = (mine, theirs) if mine.sum() == theirs.sum() else (theirs, mine)
    if game == "tictactoe":
        a, b = np.flatnonzero(first), np.flatnonzero(second)
        return [int(m) for pair in zip(a, b) for m in pair] + [int(m) for m in a[len(b):]]
    board = rules(game)
    rows, cols = board.SHAPE[:2]
    owner = np.where(first, 0, np.where(second, 1, -1)).reshape(rows, cols)
    stacks = [[int(x) for x in owner[::-1, c] if x >= 0] for c in range(cols)]  # each column, bottom up
    total, dead = sum(map(len, stacks)), set()

    def extend(heights: tuple, turn: int, moves: list) -> bool:
        if turn == total:
            return True
        if heights in dead:
            return False
        for c in range(cols):
            if heights[c] < len(stacks[c]) and stacks[c][heights[c]] == turn % 2:
                moves.append(c)
                if extend(heights[:c] + (heights[c] + 1,) + heights[c + 1:], turn + 1, moves):
                    return True
                moves.pop()
        dead.add(heights)
        return False

    moves: list[int] = []
    if not extend((0,) * cols, 0, moves):
        raise ValueError("no sequence of moves reaches this board: it is not a Connect Four position")
    return moves


class OpenSpielMCTS(Player):
    """OpenSpiel's MCTS bot for tic-tac-toe or Connect Four."""

    name = "openspiel"

    def __init__(self, game: str, seed=None, sims: int = SIMS):
        import pyspiel
        from open_spiel.python.algorithms import mcts

        self.game, self.spiel = game, pyspiel.load_game(SPIEL_NAMES[game])
        rng = np.random.RandomState(seed)
        self.bot = mcts.MCTSBot(self.spiel, UCT_C, sims, mcts.RandomRolloutEvaluator(1, rng), solve=True,
                                random_state=rng)

    def position(self, observation):
        """The OpenSpiel state of a board as PettingZoo shows it to the mover."""
        stones = np.asarray(observation).reshape(-1, 2).astype(bool)
        state = self.spiel.new_initial_state()
        for move in moves_to(self.game, stones[:, 0], stones[:, 1]):
            state.apply_action(move)
        return state

    def choose(self, observation, mask) -> int:
        move = int(self.bot.step(self.position(observation)))
        if not mask[move]:
            raise ValueError(f"OpenSpiel's bot chose {move}, not a legal move here")
        return move
