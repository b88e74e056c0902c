"""An agent's score in its own game, the same way wherever rlkit reports one (`rlkit.export
measure=true`, `rlkit.compare agents=`): frames games over `episodes` episodes from seeds
`seed`, `seed`+1, ...; board games over `games` games against alpha-beta at depth 4 (minimax
for tic-tac-toe) from random openings (up to 2 random moves), both seats, greedy. Episode i
of one agent meets the same seed as episode i of another, so scores pair up."""
from __future__ import annotations

from rlkit import video
from rlkit.envs.selfplay import play_match
from rlkit.players import PolicyPlayer, make_baseline


def what(env_cfg, episodes: int, games: int, deterministic: bool) -> str:
    """One sentence: what `scores` measures in this game."""
    if env_cfg.family == "board":
        return (f"{games} games against alpha-beta depth 4, random openings (openings=2), greedy, both seats; "
                "score = (wins + draws/2) / games.")
    return f"{episodes} episodes, {'greedy' if deterministic else 'sampled'} actions."


def scores(agent, episodes: int, games: int, seed: int, deterministic: bool) -> tuple[list[float], str]:
    """(one score per episode or game, a note: the lowest return, or won-drawn-lost)."""
    env_cfg = agent.cfg.env
    if env_cfg.family == "board":
        rival = "alphabeta" if env_cfg.game == "connect_four" else "minimax"
        got = play_match(env_cfg, PolicyPlayer(agent.policy, "agent", greedy=True),
                         make_baseline(env_cfg.game, rival, depth=4, seed=seed), games, seed, openings=2)
        won, drawn = sum(s == 1 for s in got), sum(s == 0.5 for s in got)
        return got, f"{won}-{drawn}-{len(got) - won - drawn}"
    env = agent.make_env()
    try:
        got = [video.play(agent, env, seed=seed + i, deterministic=deterministic, render=False).ret
               for i in range(episodes)]
    finally:
        env.close()
    return got, f"lowest {min(got):g}"
