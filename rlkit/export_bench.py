"""The table `python -m rlkit.export to=all measure=true` writes (results.md beside the formats):
for the agent as trained (fp32 PyTorch) and each exported format, its file size, parameter
count, CPU latency at batch 1 and 64 (median of `calls` calls, `threads` threads, on the agent's
own observations) and the score it keeps (rlkit.evaluate: mean and 95% bootstrap interval).

`actorq` is `python -m rlkit.bench actorq=AGENT` (a shipped agent's name, a run folder or a
checkpoint; a memoryless policy on frames): quantized actors (ActorQ, Lam et al. 2021). It
collects rollouts through the agent's own training pipeline (its envs, backend, batch and
rollout length) with the policy acting as PyTorch fp32, as its ONNX graph in fp32 and as its
int8 graph (rlkit.export's), taking turns for `iters` timed rollouts each after an untimed one;
it times the policy alone at the rollout's batch, and what one refresh of the int8 actor from
new weights costs (export and calibration), against one rollout."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlkit import checkpoint, evaluate, provenance
from rlkit.agent import load_agent
from rlkit.errors import UsageError
from rlkit.onnx_agent import load_onnx
from rlkit.shrink import games as own_games
from rlkit.shrink import parameters
from rlkit.stats import bootstrap_ci


def latency(policy, obs: torch.Tensor, mask, threads: int, calls: int) -> float:
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


def size_of(path: Path) -> float:
    return path.stat().st_size / 2**20


def measure(src: Path, files: dict[str, Path], opts: dict, made: dict, table: Path) -> str:
    """Rows for the agent as trained and each of `files` (kind: onnx, int8, pruned or distilled ->
    its file or folder), written to `table` and returned."""
    teacher = load_agent(src)
    obs, masks = own_games(teacher, 64, opts["seed"] + 1, progress=False)
    obs1, obs64 = torch.as_tensor(obs[:1]), torch.as_tensor(obs)
    m1, m64 = (None, None) if masks is None else (torch.as_tensor(masks[:1]), torch.as_tensor(masks))
    with tempfile.TemporaryDirectory() as tmp:  # the agent's weights as shipped: no optimizer state
        fp32 = checkpoint.export(checkpoint.latest(src) if src.is_dir() else src, Path(tmp) / "a.safetensors")
        fp32_mib = size_of(fp32)
    rows = [("fp32 (PyTorch)", teacher, teacher.policy, fp32_mib, parameters(teacher.policy))]
    for kind, path in files.items():
        agent = load_agent(path)
        if kind in ("onnx", "int8"):
            rows.append((f"{kind} (ONNX Runtime)", agent, load_onnx(path, opts["threads"])[0], size_of(path),
                         parameters(teacher.policy)))
        else:
            rows.append((f"{kind} (PyTorch)", agent, agent.policy, size_of(path / "agent.safetensors"),
                         parameters(agent.policy)))
    threads = torch.get_num_threads()
    lines = [f"Runs made: {provenance.stamp()}", "",
             f"Latency: median of {opts['calls']:,} calls, {opts['threads']} thread(s), the agent's own observations. "
             + "Score: " + evaluate.what(teacher.cfg.env, opts["episodes"], opts["games"], opts["deterministic"]),
             "", "| format | file MiB | parameters | batch 1 ms | batch 64 ms | score [95% interval] | |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for label, agent, policy, mib, params in rows:
        b1, b64 = (latency(policy, o, m, opts["threads"], opts["calls"]) for o, m in ((obs1, m1), (obs64, m64)))
        torch.set_num_threads(threads)
        got, note = evaluate.scores(agent, opts["episodes"], opts["games"], opts["seed"], opts["deterministic"])
        mean, lo, hi = bootstrap_ci(got)
        lines.append(f"| {label} | {mib:.2f} | {params:,} | {b1:.3f} | {b64:.2f} | {mean:.3g} [{lo:.3g}, {hi:.3g}] "
                     f"| {note} |")
    notes = [f"{kind} against PyTorch on {made[kind]['checked']:,} observations: largest difference "
             f"{made[kind]['logits']:.2g} in logits, {made[kind]['value']:.2g} in value, greedy action the same on "
             f"{made[kind]['greedy_agree']:.1%}" for kind in ("onnx", "int8") if kind in made]
    text = "\n".join(lines + ([""] + [f"{n}." for n in notes] if notes else [])) + "\n"
    table.write_text(text)
    return text


def actorq(opts, rest, command, sha):
    """`python -m rlkit.bench actorq=AGENT` (see rlkit.bench): returns {actor: steps/s} and the report."""
    from rlkit.agent import spaces_of
    from rlkit.envs import backend
    from rlkit.onnx_agent import CALIBRATION, quantize, write_onnx
    from rlkit.rollout import make_rollout
    from rlkit.watch import resolve

    if rest:
        raise UsageError(f"actorq= measures the agent's own training settings; drop {rest[0]!r}")
    agent = load_agent(resolve(str(opts["actorq"])))
    cfg = agent.cfg
    if cfg.env.family == "board" or agent.policy.recurrent:
        raise UsageError(f"actorq= takes an agent without memory on frames; {opts['actorq']} is "
                         f"{'a board game' if cfg.env.family == 'board' else f'model.core={cfg.model.core}'}")
    agent.policy.amp_dtype = None  # PyTorch acts in fp32, as the ONNX graphs do
    obs, _ = own_games(agent, CALIBRATION, cfg.seed, progress=False)
    actors = {"PyTorch fp32": agent.policy}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        begin = time.perf_counter()  # what following the learner would cost: the graph anew, calibrated anew
        write_onnx(agent.policy, cfg, spaces_of(agent.observation_space, agent.action_space), obs, None, fp32)
        quantize(fp32, obs, None, int8)
        refresh = time.perf_counter() - begin
        actors["ONNX Runtime fp32"], actors["ONNX Runtime int8"] = load_onnx(fp32)[0], load_onnx(int8)[0]
    rollout = make_rollout(cfg, torch.device("cpu"), cfg.seed, bootstrap=True)
    steps, batch = cfg.algo.num_steps * cfg.num_envs, rollout.next_obs
    times = {name: [] for name in actors}
    try:
        for policy in actors.values():  # untimed: envs started, first calls made
            rollout.collect(policy)
        for i in range(opts["iters"]):
            for name, policy in actors.items():
                begin = time.perf_counter()
                rollout.collect(policy)
                times[name].append(time.perf_counter() - begin)
            print(f"iteration {i + 1}: " + ", ".join(f"{n} {steps / t[-1]:,.0f} steps/s" for n, t in times.items()),
                  flush=True)
        threads = torch.get_num_threads()
        acting = {name: latency(policy, batch, None, threads, 200) / 1e3 for name, policy in actors.items()}
    finally:
        rollout.close()
    rates = {name: steps / float(np.median(t)) for name, t in times.items()}
    base = rates["PyTorch fp32"]
    lines = [f"| actor | collection steps/s (median of {opts['iters']}) | vs PyTorch fp32 | policy ms per step "
             f"(batch {cfg.num_envs}) | policy's share of collection |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {r:,.0f} | {r / base:.2f}x | {1e3 * acting[n]:.2f} | "
              f"{acting[n] * cfg.algo.num_steps * r / steps:.0%} |" for n, r in rates.items()]
    rollout_s = steps / rates["ONNX Runtime int8"]
    report = (f"### {cfg.env.name}: quantized actors (ActorQ), agent {opts['actorq']}\n\n"
              f"{provenance.stamp(sha)}; the agent's training pipeline: {cfg.num_envs} envs "
              f"({backend(cfg.env) if backend(cfg.env) == 'envpool' else cfg.vector}, overlap={cfg.overlap}), "
              f"{cfg.algo.num_steps} steps per rollout; PyTorch with {torch.get_num_threads()} threads, ONNX Runtime "
              f"with its default threads.\n\n    {command}\n\n" + "\n".join(lines) +
              f"\n\nRefreshing the int8 actor from the learner's weights (export and calibration on {CALIBRATION:,} "
              f"observations): {refresh:.1f} s, {refresh / rollout_s:.1f}x one int8 rollout ({rollout_s:.2f} s).\n")
    return rates, report
