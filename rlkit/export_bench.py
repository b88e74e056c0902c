"""The table `python -m rlkit.export to=all measure=true` writes (results.md beside the formats):
for the agent as trained (fp32 PyTorch) and each exported format, its file size, parameter
count, CPU latency at batch 1 and 64 (median of `calls` calls, `threads` threads, on the agent's
own observations) and the score it keeps: frames games over `episodes` episodes (mean and 95%
bootstrap interval), board games over `games` games against alpha-beta at depth 4 (minimax for
tic-tac-toe) from random openings (up to 2 random moves), both seats, greedy."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlkit import checkpoint, provenance, video
from rlkit.agent import load_agent
from rlkit.envs.selfplay import play_match
from rlkit.onnx_agent import load_onnx
from rlkit.players import PolicyPlayer, make_baseline
from rlkit.shrink import games as own_games
from rlkit.shrink import parameters
from rlkit.stats import bootstrap_ci

CALLS = 1000


def latency(policy, obs: torch.Tensor, mask, threads: int, calls: int = CALLS) -> float:
    """Median milliseconds of one call (after 20 warm-up calls)."""
    torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for i in range(calls + 20):
            start = time.perf_counter()
            policy(obs, mask)
            if i >= 20:
                times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def score(agent, opts) -> tuple[float, float, float, str]:
    """(mean, low, high, what was measured) of the agent in its own game."""
    env_cfg = agent.cfg.env
    if env_cfg.family == "board":
        rival = "alphabeta" if env_cfg.game == "connect_four" else "minimax"
        scores = play_match(env_cfg, PolicyPlayer(agent.policy, "agent", greedy=True),
                            make_baseline(env_cfg.game, rival, depth=4, seed=opts["seed"]), opts["games"],
                            opts["seed"], openings=2)
        won, drawn = sum(s == 1 for s in scores), sum(s == 0.5 for s in scores)
        return (*bootstrap_ci(scores), f"{won}-{drawn}-{len(scores) - won - drawn}")
    env = agent.make_env()
    try:
        rets = [video.play(agent, env, seed=opts["seed"] + i, deterministic=opts["deterministic"], render=False).ret
                for i in range(opts["episodes"])]
    finally:
        env.close()
    return (*bootstrap_ci(rets), f"lowest {min(rets):g}")


def size_of(path: Path) -> float:
    return path.stat().st_size / 2**20


def measure(src: Path, folder: Path, opts: dict, made: dict) -> str:
    teacher = load_agent(src)
    obs, masks = own_games(teacher, 64, opts["seed"] + 1, progress=False)
    obs1, obs64 = torch.as_tensor(obs[:1]), torch.as_tensor(obs)
    m1, m64 = (None, None) if masks is None else (torch.as_tensor(masks[:1]), torch.as_tensor(masks))
    with tempfile.TemporaryDirectory() as tmp:  # the agent's weights as shipped: no optimizer state
        fp32 = checkpoint.export(checkpoint.latest(src) if src.is_dir() else src, Path(tmp) / "a.safetensors")
        fp32_mib = size_of(fp32)
    rows = [("fp32 (PyTorch)", teacher, teacher.policy, fp32_mib, parameters(teacher.policy))]
    for kind, file in (("onnx", "agent.onnx"), ("int8", "agent-int8.onnx")):
        rows.append((f"{kind} (ONNX Runtime)", load_agent(folder / file), load_onnx(folder / file, opts["threads"])[0],
                     size_of(folder / file), parameters(teacher.policy)))
    for kind in ("pruned", "distilled"):
        agent = load_agent(folder / kind)
        rows.append((f"{kind} (PyTorch)", agent, agent.policy, size_of(folder / kind / "agent.safetensors"),
                     parameters(agent.policy)))
    threads = torch.get_num_threads()
    lines = [f"Runs made: {provenance.stamp()}", "",
             f"Latency: median of {CALLS} calls, {opts['threads']} thread(s), the agent's own observations. "
             + (f"Score: {opts['games']} games against alpha-beta depth 4, random openings (openings=2), greedy, "
                "both seats; score = (wins + draws/2) / games." if masks is not None else
                f"Score: {opts['episodes']} episodes, {'greedy' if opts['deterministic'] else 'sampled'} actions."),
             "", "| format | file MiB | parameters | batch 1 ms | batch 64 ms | score [95% interval] | |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for label, agent, policy, mib, params in rows:
        b1, b64 = latency(policy, obs1, m1, opts["threads"]), latency(policy, obs64, m64, opts["threads"])
        torch.set_num_threads(threads)
        mean, lo, hi, note = score(agent, opts)
        lines.append(f"| {label} | {mib:.2f} | {params:,} | {b1:.3f} | {b64:.2f} | {mean:.3g} [{lo:.3g}, {hi:.3g}] "
                     f"| {note} |")
    check = made.get("onnx", {})
    lines += ["", f"ONNX against PyTorch on {opts['samples']:,} observations: largest difference "
              f"{check.get('logits', float('nan')):.2g} in logits, {check.get('value', float('nan')):.2g} in value; "
              f"int8's greedy action agrees on {made.get('int8', {}).get('greedy_agree', float('nan')):.1%}."]
    text = "\n".join(lines) + "\n"
    (folder / "results.md").write_text(text)
    return text
