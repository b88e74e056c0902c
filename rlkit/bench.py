"""Benchmark rlkit against its peers in one run, on this machine:

    python -m rlkit.bench env=doom threshold=80                  # raw env, rlkit PPO, SB3 PPO
    python -m rlkit.bench env=cartpole threshold=475 append=true # ... and add the table to BENCHMARKS.md

Measures, with identical envs and hyperparameters: the vector env's raw throughput (random
actions), rlkit training, and Stable-Baselines3 PPO training (the same Nature CNN or MLP
widths, rollout length, epochs, minibatch size, clipping, coefficients and LR schedule). It
reports steps/s and, when `threshold` is given, the agent steps and wall-clock seconds each
learner needed for the mean return of the last `window` episodes to reach it.
Any other key=value is a training override (algo=reinforce, total_steps=..., seed=...)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from rlkit.config import RunError, UsageError, cli, command_options, load_config
from rlkit.stats import crossing

BENCH_KEYS = {"threshold": None, "window": 100, "peer": "sb3", "append": False, "raw_steps": 5000}


def split_args(argv):
    """Bench options (threshold=, window=, peer=, append=, raw_steps=) vs training overrides."""
    opts, rest = command_options(argv, BENCH_KEYS, {"peer": ("sb3", "none")}, passthrough=True)
    if not (opts["threshold"] is None or isinstance(opts["threshold"], (int, float))):
        raise UsageError(f"threshold must be a number, got {opts['threshold']!r}")
    return opts, rest


def raw_throughput(cfg, steps_per_env):
    from rlkit.envs import make_vec

    envs = make_vec(cfg)
    envs.reset(seed=cfg.seed)
    start = time.perf_counter()
    for _ in range(steps_per_env):
        envs.step(envs.action_space.sample())
    sps = steps_per_env * cfg.num_envs / (time.perf_counter() - start)
    envs.close()
    return sps


def run(module: str, overrides: list[str], run_dir: Path) -> dict:
    """One learner in its own process (its own peak memory; ale_py and EnvPool never share one).
    Returns {steps, seconds, peak_rss_mib, episodes: [(step, return, seconds)]}."""
    from rlkit.compare import load_run

    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        code = subprocess.call([sys.executable, "-m", module, *overrides, f"run_dir={run_dir}", "progress=false"],
                               stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        raise RunError(f"{module} failed (exit {code}); see {log}")
    loaded = load_run(run_dir)
    return {**{k: loaded["summary"][k] for k in ("steps", "seconds", "peak_rss_mib")},
            "episodes": loaded["episodes"]}


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def table(opts, raw, results) -> str:
    thr, win = opts["threshold"], opts["window"]
    head = f"mean of last {win} >= {thr:g}" if thr is not None else "threshold"
    lines = [f"| run | steps | wall s | steps/s | vs raw env | steps to {head} | seconds to it | final mean return "
             f"| peak MiB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             f"| raw env, random actions | | | {raw:,.0f} | 1.00 | | | | |"]
    for name, r in results.items():
        sps = r["steps"] / r["seconds"]
        hit = crossing(r["episodes"], thr, win)
        final = np.mean([x for _, x, _ in r["episodes"][-win:]]) if r["episodes"] else float("nan")
        reach = (f"{hit[0]:,} | {hit[1]:.0f}" if hit else "not reached | -") if thr is not None else "- | -"
        lines.append(f"| {name} | {r['steps']:,} | {r['seconds']:.0f} | {sps:,.0f} | {sps / raw:.2f} | {reach} "
                     f"| {final:.1f} | {r['peak_rss_mib']:.0f} |")
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        ratio = (ra["steps"] / ra["seconds"]) / (rb["steps"] / rb["seconds"])
        lines.append(f"\nsteps/s, {a} / {b}: **{ratio:.2f}x**")
        ha, hb = crossing(ra["episodes"], thr, win), crossing(rb["episodes"], thr, win)
        if ha and hb:
            lines[-1] += f"; wall-clock to the threshold, {b} / {a}: **{hb[1] / ha[1]:.2f}x** (above 1: rlkit faster)"
    return "\n".join(lines)


def main(argv):
    opts, rest = split_args(argv)
    cfg = load_config(rest)
    # The peer is always SB3 PPO (rlkit.peers), with this env's PPO settings.
    command, sha = "python -m rlkit.bench " + " ".join(argv), commit()
    print(f"{command}\n{machine()}, commit {sha}")
    raw = raw_throughput(cfg, opts["raw_steps"] // cfg.num_envs or 1)
    print(f"raw env throughput: {raw:,.0f} steps/s")
    from rlkit.envs import backend
    from rlkit.train import run_label

    folder = Path(cfg.runs_root) / f"bench__{run_label(cfg)}__{time.strftime('%Y%m%d-%H%M%S')}"
    results = {f"rlkit {cfg.algo.name}": run("rlkit.train", rest, folder / f"rlkit_{cfg.algo.name}")}
    if opts["peer"] == "sb3":
        results["SB3 PPO"] = run("rlkit.peers", [a for a in rest if not a.startswith("algo")], folder / "sb3_ppo")
    report = (f"### {cfg.env.name}: rlkit {cfg.algo.name} ({cfg.model.name}) vs "
              f"{'Stable-Baselines3 PPO' if opts['peer'] == 'sb3' else 'raw env'}\n\n"
              f"{date.today().isoformat()}, commit {sha}, {machine()}; {cfg.num_envs} envs (rlkit: "
              f"{backend(cfg.env) if backend(cfg.env) == 'envpool' else cfg.vector}, SB3: {cfg.vector}), "
              f"seed {cfg.seed}.\n\n    {command}\n\n{table(opts, raw, results)}\n")
    print("\n" + report)
    if opts["append"]:
        with open(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", "a") as f:
            f.write("\n" + report)
    return results


if __name__ == "__main__":
    cli(main)
