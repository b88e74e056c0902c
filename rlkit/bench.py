"""Benchmark rlkit against its peers in one run, on this machine:

    python -m rlkit.bench env=doom threshold=80                  # raw env, rlkit PPO, SB3 PPO
    python -m rlkit.bench env=cartpole threshold=475 append=true # ... and add the report to the benchmarks archive
    python -m rlkit.bench env=doom scaling=1,2,4                 # runner=ray: collection steps/s per worker count
    python -m rlkit.bench env=cartpole_masked model.core=transformer lengths=500,5000   # a core's cost per step
    python -m rlkit.bench env=doom threshold=80 peer=sample_factory sf_python=~/sf/bin/python   # Doom's peer

Measures, with identical envs and hyperparameters: the vector env's raw throughput (random
actions), rlkit training, and Stable-Baselines3 PPO training (the same Nature CNN or MLP
widths, rollout length, epochs, minibatch size, clipping, coefficients and LR schedule), or
with `peer=sample_factory` Sample Factory 2.1.1 on the same Doom scenario, frames and seed, run
from the interpreter of its own environment (`sf_python=`, `sf_seconds=` a wall-clock budget;
see `rlkit.sample_factory`: its scores are means of 100 episodes, taken as they are). It
reports steps/s and, when `threshold` is given, the agent steps and wall-clock seconds each
learner needed for the mean return of the last `window` episodes to reach it.
`repeats=N` runs rlkit and the peer N times each, taking turns, and reports the ratio of every
pair and their median: on a shared or throttling machine one short run can be off by tens of
percent. Any other key=value is a training override (algo=reinforce, total_steps=..., seed=...).

`scaling=1,2,4` measures instead rollout collection on a Ray instance (runner=ray, no learner
updates) with each number of workers, `iters` timed iterations each after one untimed one that
starts the workers, as steps/s and as efficiency against linear scaling of the 1-worker rate;
one vector env stepped with random actions in this process is the peer.

`lengths=500,5000` measures instead what a core costs as an episode grows: one game's policy
acting step by step (batch 1, observations drawn from the env's space), its steps/s over the
last 500 steps of an episode of each length, beside the same encoder without a core.

`actorq=AGENT` measures instead int8 actors in training's rollouts (rlkit.export_bench.actorq)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rlkit import sample_factory
from rlkit.compare import load_run
from rlkit.config import RunError, UsageError, cli, command_options, load_config, run_label
from rlkit.envs import backend, make_vec
from rlkit.export_bench import actorq
from rlkit.nets import make_policy
from rlkit.provenance import commit, stamp
from rlkit.stats import crossing, window_of

BENCH_KEYS = {"threshold": None, "window": 100, "peer": "sb3", "append": False, "raw_steps": 5000, "scaling": None,
              "iters": 5, "repeats": 1, "lengths": None, "sf_python": "", "sf_seconds": 10**9, "actorq": ""}
TIMED = 500  # lengths=: the steps timed at the end of each episode


def split_args(argv):
    """Bench options (threshold=, window=, peer=, append=, raw_steps=) vs training overrides."""
    # `scaling=1,2,4` and `lengths=...` are lists (Hydra would read bare commas as a sweep).
    argv = [f"{a.split('=')[0]}=[{a.split('=', 1)[1]}]" if a.startswith(("scaling=", "lengths=")) and "[" not in a
            else a for a in argv]
    opts, rest = command_options(argv, BENCH_KEYS, {"peer": ("sb3", "sample_factory", "none")}, passthrough=True,
                                 ranges={"threshold": (-1e15, 1e15), "window": (1, 10**6), "raw_steps": (1, 10**9),
                                         "iters": (1, 10**4), "sf_seconds": (1, 10**9)})
    for key, low, what in (("scaling", 1, "worker counts like 1,2,4"),
                           ("lengths", TIMED, f"episode lengths from {TIMED} to 1000000 like 500,5000")):
        got = opts[key] if isinstance(opts[key], list) or opts[key] is None else [opts[key]]
        if got is not None and not (got and all(type(n) is int and low <= n <= 10**6 for n in got)):
            raise UsageError(f"{key} must be {what}; got {opts[key]!r}")
        opts[key] = got
    if opts["repeats"] < 1:
        raise UsageError(f"repeats must be >= 1, got {opts['repeats']}")
    stray = [k for k in ("sf_python", "sf_seconds") if opts[k] != BENCH_KEYS[k]]
    if stray and opts["peer"] != "sample_factory":
        raise UsageError(f"{stray[0]}= goes with peer=sample_factory; the peer is {opts['peer']}")
    return opts, rest


def raw_throughput(cfg, steps_per_env):

    envs = make_vec(cfg)
    envs.reset(seed=cfg.seed)
    for _ in range(max(1, steps_per_env // 10)):  # untimed: threads started, caches warm
        envs.step(envs.action_space.sample())
    start = time.perf_counter()
    for _ in range(steps_per_env):
        envs.step(envs.action_space.sample())
    sps = steps_per_env * cfg.num_envs / (time.perf_counter() - start)
    envs.close()
    return sps


def run(module: str, overrides: list[str], run_dir: Path) -> dict:
    """One learner in its own process (its own peak memory; ale_py and EnvPool never share one).
    Returns {steps, seconds, peak_rss_mib, episodes: [(step, return, seconds)], means}: `means` is
    the number of episodes each logged return already averages (Sample Factory's), or None."""

    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        code = subprocess.call([sys.executable, "-m", module, *overrides, f"run_dir={run_dir}", "progress=false"],
                               stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        raise RunError(f"{module} failed (exit {code}); see {log}")
    loaded = load_run(run_dir)
    return {**{k: loaded["summary"][k] for k in ("steps", "seconds", "peak_rss_mib")}, "episodes": loaded["episodes"],
            "means": loaded["summary"].get("episode_means"), "precision": loaded["summary"].get("precision", "fp32")}


def table(opts, raw, results) -> str:
    thr, win = opts["threshold"], opts["window"]
    head = f"mean of last {win} >= {thr:g}" if thr is not None else "threshold"
    lines = [f"| run | precision | steps | wall s | steps/s | vs raw env | steps to {head} | seconds to it "
             f"| final mean return | peak MiB |", "| --- | --- |" + " ---: |" * 8,
             f"| raw env, random actions | | | | {raw:,.0f} | 1.00 | | | | |"]
    for name, r in results.items():
        sps = r["steps"] / r["seconds"]
        hit = crossing(r["episodes"], thr, span(r, win))
        final = f"{np.mean([x for _, x, _ in r['episodes'][-span(r, win):]]):.1f}" if r["episodes"] \
            else "no episode ended"
        reach = (f"{hit[0]:,} | {hit[1]:.0f}" if hit else "not reached | -") if thr is not None else "- | -"
        lines.append(f"| {name} | {r['precision']} | {r['steps']:,} | {r['seconds']:.0f} | {sps:,.0f} "
                     f"| {sps / raw:.2f} | {reach} | {final} | {r['peak_rss_mib']:.0f} |")
    items = list(results.items())  # with a peer: rlkit, peer, rlkit, peer, ...
    pairs = [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)] if opts.get("peer", "sb3") != "none" \
        else []
    if len(pairs) == 1:
        ((a, ra), (b, rb)), = pairs
        lines.append(f"\nsteps/s, {a} / {b}: **{_ratio(ra, rb):.2f}x**")
        ha, hb = crossing(ra["episodes"], thr, span(ra, win)), crossing(rb["episodes"], thr, span(rb, win))
        if ha and hb:
            lines[-1] += f"; wall-clock to the threshold, {b} / {a}: **{hb[1] / ha[1]:.2f}x** (above 1: rlkit faster)"
    elif pairs:  # repeats: rlkit and the peer took turns, so slow spells of the machine hit both
        ratios = [_ratio(ra, rb) for (_, ra), (_, rb) in pairs]
        lines.append(f"\nsteps/s, rlkit / peer, run by run: {', '.join(f'{r:.2f}x' for r in ratios)}; "
                     f"median **{np.median(ratios):.2f}x**")
    return "\n".join(lines)


def span(result: dict, window: int) -> int:
    return window_of(result.get("means"), window)


def _ratio(a: dict, b: dict) -> float:
    return (a["steps"] / a["seconds"]) / (b["steps"] / b["seconds"])


def ray_scaling(cfg, counts, iters):
    """Collection steps/s with each worker count, on one Ray instance (started here if needed)."""
    import torch
    from omegaconf import OmegaConf

    from rlkit.distributed import RayCollector, ray, start_ray

    started = start_ray(OmegaConf.merge(cfg.runner, {"workers": max(counts)}))
    rates = {}
    try:
        for n in counts:
            collector = RayCollector(OmegaConf.merge(cfg, {"runner": {"workers": n}}), torch.device("cpu"), cfg.seed)
            policy = make_policy(cfg.model, collector.observation_space, collector.action_space)
            try:
                collector.collect(policy)  # starts the workers: not timed
                start = time.perf_counter()
                for _ in range(iters):
                    collector.collect(policy)
                rates[n] = iters * cfg.algo.num_steps * collector.num_envs / (time.perf_counter() - start)
            finally:
                collector.close()
            print(f"{n} worker(s): {rates[n]:,.0f} steps/s", flush=True)
    finally:
        if started:
            ray.shutdown()
    return rates


def scaling_table(raw, rates) -> str:
    one = rates[min(rates)] / min(rates)
    lines = ["| run | steps/s | vs raw env | speed-up | efficiency vs linear |",
             "| --- | ---: | ---: | ---: | ---: |",
             f"| one vector env, random actions, no policy | {raw:,.0f} | 1.00 | | |"]
    for n, sps in rates.items():
        lines.append(f"| runner=ray, {n} worker{'s' if n > 1 else ''} | {sps:,.0f} | {sps / raw:.2f} | "
                     f"{sps / one:.2f}x | {sps / (n * one):.0%} |")
    return "\n".join(lines)


def main_scaling(opts, rest, command, sha):
    cfg = load_config([*rest, "runner=ray"] if not any(a.startswith("runner=") for a in rest) else rest)
    if cfg.runner.name != "ray":
        raise UsageError("scaling= measures runner=ray; drop runner=local")
    raw = raw_throughput(cfg, opts["raw_steps"] // cfg.num_envs or 1)
    print(f"raw env throughput: {raw:,.0f} steps/s")
    rates = ray_scaling(cfg, opts["scaling"], opts["iters"])
    report = (f"### {cfg.env.name}: rollout collection on Ray, {', '.join(map(str, rates))} workers\n\n"
              f"{stamp(sha)}; {cfg.num_envs} envs ({cfg.vector}) and "
              f"{cfg.algo.num_steps} steps per worker per iteration, model {cfg.model.name}, local Ray instance "
              f"unless RAY_ADDRESS was set ({os.environ.get('RAY_ADDRESS') or 'unset'}).\n\n    {command}\n\n"
              f"{scaling_table(raw, rates)}\n")
    return rates, report


ARCHIVE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-archive.md"


def archive(report: str) -> None:
    """`append=true`: the full report goes to the benchmarks archive (BENCHMARKS.md is one table of
    current claims, one row each, written by hand from these reports)."""
    with open(ARCHIVE, "a") as f:
        f.write("\n" + report)
    print(f"appended to {ARCHIVE}")


def acting_rates(cfg, lengths) -> dict:
    """{(core, length): steps/s over the last TIMED steps of an episode of `length`}, for cfg's
    core and for none, one game acting step by step."""
    import torch
    from omegaconf import OmegaConf

    probe = make_vec(OmegaConf.merge(cfg, {"num_envs": 1, "vector": "sync", "overlap": False}))
    space, actions = probe.single_observation_space, probe.single_action_space
    probe.close()
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(TIMED)]))
    rates = {}
    for core in dict.fromkeys((cfg.model.core, "none")):
        torch.manual_seed(cfg.seed)
        policy = make_policy(OmegaConf.merge(cfg.model, {"core": core}), space, actions).eval()
        for n in lengths:
            state, go_on = policy.initial_state(1), torch.zeros(1, dtype=torch.bool)
            with torch.inference_mode():
                for t in range(n):
                    if t == n - TIMED:
                        begin = time.perf_counter()
                    _, _, state = policy(obs[t % TIMED][None], None, state, go_on)
            rates[core, n] = TIMED / (time.perf_counter() - begin)
            print(f"core={core}, episode of {n:,} steps: {rates[core, n]:,.0f} steps/s at its end", flush=True)
    return rates


def main_lengths(opts, rest, command, sha):
    cfg = load_config(rest)
    rates, core, lengths = acting_rates(cfg, opts["lengths"]), cfg.model.core, opts["lengths"]
    lines = [f"| episode length | core={core}: steps/s over its last {TIMED} steps | core=none | ratio |",
             "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {n:,} | {rates[core, n]:,.0f} | {rates['none', n]:,.0f} | {rates[core, n] / rates['none', n]:.2f} |"
              for n in lengths]
    lines.append(f"\ncore={core}: steps/s at {lengths[-1]:,} steps / at {lengths[0]:,}: "
                 f"**{rates[core, lengths[-1]] / rates[core, lengths[0]]:.2f}x**")
    report = (f"### {cfg.env.name}: acting cost per step against episode length, model {cfg.model.name}\n\n"
              f"{stamp(sha)}; one game, batch 1, fp32.\n\n"
              f"    {command}\n\n" + "\n".join(lines) + "\n")
    return rates, report


def main(argv):
    opts, rest = split_args(argv)
    command, sha = "python -m rlkit.bench " + " ".join(argv), commit()
    print(f"{command}\n{stamp(sha)}")
    measure = main_scaling if opts["scaling"] else main_lengths if opts["lengths"] else \
        actorq if opts["actorq"] else main_learners
    results, report = measure(opts, rest, command, sha)
    print("\n" + report)
    if opts["append"]:
        archive(report)
    return results


def main_learners(opts, rest, command, sha):
    cfg = load_config(rest)
    if opts["peer"] == "sample_factory":
        sample_factory.check(cfg, opts["sf_python"])
    # The peer is SB3 PPO (rlkit.peers) with this env's PPO settings; for a policy with memory,
    # sb3-contrib's RecurrentPPO with an LSTM of the core's size.
    raw = raw_throughput(cfg, opts["raw_steps"] // cfg.num_envs or 1)
    print(f"raw env throughput: {raw:,.0f} steps/s")

    folder = Path(cfg.runs_root) / f"bench__{run_label(cfg)}__{time.strftime('%Y%m%d-%H%M%S')}"
    recurrent = cfg.model.core != "none"
    peer, peer_name = ("sample_factory", "Sample Factory") if opts["peer"] == "sample_factory" else \
        ("sb3_recurrent_ppo", "sb3-contrib RecurrentPPO") if recurrent else ("sb3_ppo", "SB3 PPO")
    results, repeats = {}, opts["repeats"]
    for i in range(1, repeats + 1):  # taking turns: a slow spell of the machine hits both learners
        tag, suffix = (f" #{i}", f"_{i}") if repeats > 1 else ("", "")
        results[f"rlkit {cfg.algo.name}{tag}"] = run("rlkit.train", rest, folder / f"rlkit_{cfg.algo.name}{suffix}")
        if opts["peer"] == "sample_factory":
            results[f"{peer_name}{tag}"] = run("rlkit.sample_factory", [
                f"python={opts['sf_python']}", f"seconds={opts['sf_seconds']}", *rest], folder / f"{peer}{suffix}")
        elif opts["peer"] == "sb3":
            results[f"{peer_name}{tag}"] = run("rlkit.peers", [f"peer={peer}", *(a for a in rest if not
                                                                                  a.startswith("algo"))],
                                               folder / f"{peer}{suffix}")
    core = f", core {cfg.model.core}" if recurrent else ""
    report = (f"### {cfg.env.name}: rlkit {cfg.algo.name} ({cfg.model.name}{core}) vs "
              f"{peer_name if opts['peer'] != 'none' else 'raw env'}\n\n"
              f"{stamp(sha)}; {cfg.num_envs} envs (rlkit: "
              f"{backend(cfg.env) if backend(cfg.env) == 'envpool' else cfg.vector}, "
              f"{'Sample Factory: its own workers' if peer == 'sample_factory' else 'SB3: ' + cfg.vector}), "
              f"seed {cfg.seed}.\n\n    {command}\n\n{table(opts, raw, results)}\n")
    return results, report


if __name__ == "__main__":
    cli(main)
