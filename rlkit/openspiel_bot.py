"""OpenSpiel's MCTS bot (Lanctot et al. 2019, `pyspiel.MCTSBot`, the C++ twin of
`open_spiel.python.algorithms.mcts`) as a baseline opponent, `openspiel`: 1,000 simulations per
move, each valued by one random rollout, UCT's constant 2 and solved subtrees kept, the settings
of OpenSpiel's own MCTS example. The C++ bot, as the Python one searches, in a fraction of its
time (Go's random rollouts are long). It is the
classic search without a network, the bar a learned board-game agent is held to.

Players see only the board (rlkit.players), so the bot's position is rebuilt from it: a
sequence of moves from the empty board, the first player's and the second's alternating, that
ends there (for Connect Four, one that stacks every column from the bottom). A position with no
line of the game's length has none on the way either, so the sequence is always legal.

Go (`go_moves`): the board before the last move (the observation's second pair of planes) is
set out stone by stone, Black's and White's alternating, the side with fewer stones passing
first; then the last move itself, a stone or a pass, is played, so that a ko it made and a pass
to answer are as in the game. Stones set out one by one never take any (a group left without a
liberty on the way would have none on the finished board either), so the sequence is legal.
OpenSpiel's Go and rlkit's rules agree on the legal moves (tests/test_go.py); the bot's game
ends, as OpenSpiel's does, at most 2 * N * N moves after the position it searches from."""
from __future__ import annotations

import numpy as np

from rlkit.games import rules
from rlkit.players import Player

SPIEL_NAMES = {"tictactoe": "tic_tac_toe", "connect_four": "connect_four", "go": "go"}
SIMS, UCT_C = 1000, 2.0
MEMORY_MB = 1000  # the tree's limit, as in OpenSpiel's C++ MCTS example


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


def go_moves(observation) -> list[int]:
    """Moves from the empty board to the Go position PettingZoo shows as `observation` ([N, N,
    17], rlkit.games.go), the pass numbered N * N."""
    obs = np.asarray(observation).astype(bool)
    n = obs.shape[0] * obs.shape[1]
    flat = obs.reshape(n, -1)
    if not flat[:, :2].any() and not flat[:, 16].any():
        return []  # Black to move on the empty board: the game's start
    last_white = not flat[0, 16]  # the last move's side: not the side to move
    before = {last_white: np.flatnonzero(flat[:, 3]), not last_white: np.flatnonzero(flat[:, 2])}  # colour -> stones
    placed = np.flatnonzero(flat[:, 0] & ~flat[:, 3])
    last = int(placed[0]) if len(placed) else n
    # Black's moves and White's, alternating from Black's, the last of them the side to move's.
    black = max(len(before[False]), len(before[True]) + last_white)  # then the last mover's turn
    white = black - last_white
    queues = {False: [n] * (black - len(before[False])) + before[False].tolist(),
              True: [n] * (white - len(before[True])) + before[True].tolist()}
    moves = [queues[k % 2 == 1][k // 2] for k in range(black + white)]
    if last == n and moves and moves[-1] == n:
        raise ValueError("this Go position cannot be rebuilt for OpenSpiel: two passes in a row would end it")
    return [int(m) for m in moves] + [last]


class OpenSpielMCTS(Player):
    """OpenSpiel's MCTS bot for tic-tac-toe, Connect Four or Go (`komi` for Go; the board size
    is the observation's)."""

    name = "openspiel"

    def __init__(self, game: str, seed=None, sims: int = SIMS, komi: float = 7.5):
        import pyspiel

        self.game, self.komi = game, komi
        self.spiel = pyspiel.load_game(SPIEL_NAMES[game], {"komi": komi} if game == "go" else {})
        seed = int(np.random.default_rng(seed).integers(2**31))
        self.bot = pyspiel.MCTSBot(self.spiel, pyspiel.RandomRolloutEvaluator(1, seed), UCT_C, sims, MEMORY_MB,
                                   True, seed, False)  # solve=True, verbose=False

    def position(self, observation):
        """The OpenSpiel state of a board as PettingZoo shows it to the mover."""
        if self.game == "go":
            import pyspiel

            moves, size = go_moves(observation), np.shape(observation)[0]
            spiel = pyspiel.load_game("go", {"board_size": size, "komi": self.komi,
                                             "max_game_length": len(moves) + 2 * size * size})
            state = spiel.new_initial_state()
        else:
            stones = np.asarray(observation).reshape(-1, 2).astype(bool)
            moves, state = moves_to(self.game, stones[:, 0], stones[:, 1]), self.spiel.new_initial_state()
        for move in moves:
            state.apply_action(move)
        return state

    def choose(self, observation, mask) -> int:
        move = int(self.bot.step(self.position(observation)))
        if not mask[move]:
            raise ValueError(f"OpenSpiel's bot chose {move}, not a legal move here")
        return move
