"""Each board game's rules, once, in arrays, for the players that search them (rlkit.players,
rlkit.search), algo=alphazero and the tests against PettingZoo. Play itself goes through
PettingZoo's games (rlkit/envs/board.py)."""
