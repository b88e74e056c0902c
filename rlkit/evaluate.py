"""An agent's score in its own game, the same way wherever rlkit reports one (`rlkit.export
measure=true`, `rlkit.compare agents=`): frames games over `episodes` episodes from seeds
`seed`, `seed`+1, ...; board games over `games` games against alpha-beta at depth 4 (minimax
for tic-tac-toe) from random openings (up to 2 random moves), both seats, greedy. Episode i
of one agent meets the same seed as episode i of another, so scores pair up."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rlkit import provenance, video
from rlkit.envs.selfplay import play_match
from rlkit.errors import UsageError
from rlkit.players import PolicyPlayer, make_baseline
from rlkit.stats import bootstrap_ci


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


def is_agent(spec: str) -> bool:
    """A file (checkpoint or exported agent) or an agent folder, rather than a run folder."""
    return Path(spec).is_file() or (Path(spec) / "agent.safetensors").is_file()


def compare_agents(specs, episodes: int, games: int, deterministic: bool, out, progress: bool = True) -> Path:
    """`rlkit.compare agents=[...]`: every agent (a shipped name, a folder, a checkpoint or an
    exported file) of one game played on the same seeds; OUT/agents.md and OUT/agents.csv hold
    each one's score with its 95% interval and its difference from the first agent's, paired by
    seed, with its interval. Returns OUT."""
    from rlkit.agent import load_agent
    from rlkit.watch import resolve

    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs) or len(specs) < 1:
        raise UsageError(f"agents must be a list of agents (agents=[doom-basic,exports/agent-int8.onnx]), "
                         f"got {specs!r}")
    agents = [load_agent(resolve(spec)) for spec in specs]
    names = sorted({a.cfg.env.name for a in agents})
    if len(names) > 1:
        raise UsageError(f"agents=[...] must all play one game; these play {', '.join(names)}")
    out = Path(out or f"runs/compare__{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    rows, first = [], None
    bar = tqdm(list(zip(specs, agents)), desc="agents", unit="agent", disable=not progress)
    for spec, agent in bar:
        bar.set_postfix_str(spec)
        got, note = scores(agent, episodes, games, 0, deterministic)
        first = got if first is None else first
        diff = bootstrap_ci(np.subtract(got, first)) if rows else (0.0, 0.0, 0.0)
        rows.append((spec, *bootstrap_ci(got), *diff, note))
    bar.close()
    with open(out / "agents.csv", "w") as f:
        f.write("agent,mean,ci_low,ci_high,diff,diff_low,diff_high,note\n")
        f.writelines(",".join(str(v) for v in row) + "\n" for row in rows)
    lines = [f"Made: {provenance.stamp()}", "",
             f"{names[0]}: {what(agents[0].cfg.env, episodes, games, deterministic)} Seeds 0, 1, 2, ..., the same "
             f"for each agent.",
             "", f"| agent | score [95% interval] | minus {specs[0]}'s, paired [95% interval] | |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {spec} | {m:.3g} [{lo:.3g}, {hi:.3g}] | {d:+.3g} [{dlo:+.3g}, {dhi:+.3g}] | {note} |"
              for spec, m, lo, hi, d, dlo, dhi, note in rows]
    text = "\n".join(lines) + "\n"
    (out / "agents.md").write_text(text)
    print(text + f"\ntable: {out / 'agents.md'}, numbers: {out / 'agents.csv'}")
    return out
