"""The table `python -m rlkit.export to=all measure=true` writes (results.md beside the formats):
for the agent as trained (fp32 PyTorch) and each exported format, its file size, parameter
count, CPU latency at batch 1 and 64 (median of `calls` calls, `threads` threads, on the agent's
own observations) and the score it keeps (rlkit.evaluate: mean and 95% bootstrap interval)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlkit import checkpoint, evaluate, provenance
from rlkit.agent import load_agent
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
