"""Compare algorithms, or runs that already exist:

    python -m rlkit.compare env=cartpole algos=[ppo,reinforce,sb3_ppo,sb3_a2c] seeds=5 total_steps=100000
    python -m rlkit.compare env=cartpole_masked algos=[ppo,ppo+lstm,sb3_recurrent_ppo] seeds=3
    python -m rlkit.compare env=defend_the_center algos=[ppo,sample_factory] sf_python=~/sf/bin/python seeds=3
    python -m rlkit.compare runs=[runs/a*,runs/b*]
    python -m rlkit.compare agents=[doom-basic,exports/doom-basic/agent-int8.onnx] episodes=100

`ALGO+CORE` is the algorithm with a memory core (model.core=CORE: lstm, gru, transformer).

Runs every algorithm x seed through the same env pipeline (Stable-Baselines3's PPO, A2C and
DQN as reference peers, see `rlkit.peers`; Sample Factory on Doom, from the interpreter of its own
environment, `sf_python=`, see `rlkit.sample_factory`), one process each, into one folder:

    OUT/{algo}__{seed}/   the runs (open them together: tensorboard --logdir OUT)
    OUT/curves.png        mean return and 95% bootstrap band against agent steps and wall-clock
    OUT/elo.png           self-play runs only: each run's latest snapshot's Elo against agent steps
    OUT/results.md        where the runs were made (date, commit, machine); per algorithm: final
                          return +- CI, IQM, steps to threshold, speed, memory
    OUT/results.csv       the same numbers, unrounded; OUT/episodes.csv every episode of every run

Running the same command again skips finished runs and goes on with interrupted ones.

`agents=[...]` (or `runs=` of agent files and folders) compares trained agents by playing them
on the same seeds instead (names, folders, checkpoints, `.onnx` files; `episodes`, `games`,
`deterministic`): see rlkit.evaluate.compare_agents."""
from __future__ import annotations

import glob
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rlkit import evaluate, sample_factory, stats
from rlkit.algos import ALGOS
from rlkit.config import SEED, RunError, UsageError, cli, command_options, load_config, run_label
from rlkit.cores import CORES
from rlkit.peers import PEERS
from rlkit.plots import plot, plot_elo
from rlkit.stored import run_config

OPTIONS = {"algos": ["ppo", "reinforce"], "seeds": None, "runs": [], "out": None, "threshold": None, "window": 100,
           "smooth": 20, "progress": True, "sf_python": "", "sf_seconds": 10**9,
           "agents": [], "episodes": 100, "games": 200, "deterministic": False}
RANGES = {"threshold": (-1e15, 1e15), "window": (1, 10**6), "smooth": (1, 10**6), "sf_seconds": (1, 10**9),
          "episodes": (1, 10**6), "games": (2, 10**6)}
COLUMNS = ("algo", "runs", "final_return", "final_ci_low", "final_ci_high", "iqm", "reached", "steps_to_threshold",
           "steps_per_s", "wall_s", "peak_rss_mib")


def entry(name: str) -> tuple[str, list[str]]:
    """An `algos` entry: the algorithm and its own overrides (`ppo+lstm`: PPO with model.core=lstm)."""
    algo, _, core = name.partition("+")
    return algo, [f"model.core={core}"] if core else []


def plan(opts, overrides) -> tuple[Path, list[tuple[str, int]]]:
    """Validate the algorithms and training settings; the output folder and the (algo, seed) runs."""
    valid = (*ALGOS, *PEERS)
    bad = [a for a in opts["algos"] if entry(a)[0] not in valid or "+" in a and (
        entry(a)[0] in PEERS or a.partition("+")[2] not in CORES)]
    if bad:
        raise UsageError(f"unknown algorithm {bad[0]!r}; choose from: {', '.join(valid)} (rlkit's with "
                         f"+{'|+'.join(CORES)} for a memory core, e.g. ppo+lstm)")
    if any(o.split("=", 1)[0] in ("algo", "seed", "run_dir", "resume") for o in overrides):
        raise UsageError("compare sets algo, seed and run_dir itself: use algos=[...] and seeds=N or seeds=[...]")
    seeds = 3 if opts["seeds"] is None else opts["seeds"]
    seeds = list(range(1, seeds + 1)) if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and SEED[0] <= s <= SEED[1] for s in seeds):
        raise UsageError(f"seeds must be a count (seeds=5) or a list (seeds=[1,7]) of seeds from 0 to {SEED[1]}, "
                         f"got {opts['seeds']!r}")
    for algo in opts["algos"]:  # every setting checked before the first run starts
        name, extra = entry(algo)
        cfg = load_config([*overrides, *extra, f"algo={name if name in ALGOS else 'ppo'}"])
        if name == "sample_factory":
            sample_factory.check(cfg, opts["sf_python"])

    out = Path(opts["out"] or Path(cfg.runs_root) / f"compare__{run_label(cfg)}__{'+'.join(opts['algos'])}")
    settings = out / "compare.json"
    before = json.loads(settings.read_text())["overrides"] if settings.is_file() else sorted(overrides)
    if before != sorted(overrides):
        raise UsageError(f"{out} holds a comparison with other settings ({' '.join(before) or 'defaults'}); "
                         f"choose another out=")
    out.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"overrides": sorted(overrides)}) + "\n")
    return out, [(a, s) for a in opts["algos"] for s in seeds]


def finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file() and (
        (run_dir / "checkpoints" / "final.safetensors").is_file() or not (run_dir / "checkpoints").exists())


def command(algo: str, seed: int, run_dir: Path, overrides, opts=OPTIONS) -> list[str]:
    """The command that trains one run, or continues it when it was interrupted."""
    algo, extra = entry(algo)
    if algo in PEERS:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a peer cannot resume: its partial log is dropped
        if algo == "sample_factory":
            return ["rlkit.sample_factory", f"python={opts['sf_python']}", f"seconds={opts['sf_seconds']}", *overrides,
                    f"seed={seed}", f"run_dir={run_dir}"]
        return ["rlkit.peers", f"peer={algo}", *overrides, f"seed={seed}", f"run_dir={run_dir}", "progress=false"]
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("*.safetensors")):
        return ["rlkit.train", f"resume={run_dir}", "progress=false"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # started but nothing saved yet
    return ["rlkit.train", *overrides, *extra, f"algo={algo}", f"seed={seed}", f"run_dir={run_dir}", "progress=false"]


def run_all(out: Path, runs, overrides, opts) -> list[str]:
    """Train the runs not finished yet, one process each. Returns the failed ones."""
    from tqdm import tqdm

    todo = [(a, s) for a, s in runs if not finished(out / f"{a}__{s}")]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to run", flush=True)
    (out / "logs").mkdir(exist_ok=True)
    failed = []
    bar = tqdm(todo, unit="run", disable=not opts["progress"], dynamic_ncols=True)
    for algo, seed in bar:
        bar.set_postfix_str(f"{algo} seed {seed}")
        run_dir, log = out / f"{algo}__{seed}", out / "logs" / f"{algo}__{seed}.txt"
        with open(log, "a") as f:
            code = subprocess.call([sys.executable, "-m", *command(algo, seed, run_dir, overrides, opts)],
                                   stdout=f, stderr=subprocess.STDOUT)
        if code == 130:
            raise KeyboardInterrupt
        if code != 0 or not finished(run_dir):
            failed.append(f"{algo} seed {seed} (exit {code}, log {log})")
            bar.write(f"failed: {failed[-1]}", file=sys.stderr)
    bar.close()
    return failed


def load_run(run_dir: Path) -> dict:
    """Episodes (step, return, seconds since the run started) and summary of one run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1})
    try:
        events.Reload()
    except Exception as e:  # TensorBoard's reader raises what it meets in a damaged events file  # noqa: BLE001
        raise UsageError(f"{run_dir}: its TensorBoard events cannot be read ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if "episode/return" in events.Tags()["scalars"]:
        started = summary.get("started")  # a peer's log converted after it ran starts when the peer did
        start = started if isinstance(started, (int, float)) and not isinstance(started, bool) \
            and math.isfinite(started) else events.FirstEventTimestamp()
        episodes = [(e.step, e.value, e.wall_time - start) for e in events.Scalars("episode/return")]
    elif (run_dir / "config.yaml").is_file():  # a run too short for any episode to end (e.g. a Pong bench)
        episodes = []
    else:
        raise UsageError(f"{run_dir} logged no episode/return and has no config.yaml: is it an rlkit run folder?")
    elo = [(e.step, e.value) for e in events.Scalars("elo/latest")] if "elo/latest" in events.Tags()["scalars"] else []
    config, peer = run_config(run_dir)
    return {"dir": run_dir, "episodes": episodes, "elo": elo, "summary": summary,
            "algo": peer or (label(config) if config else run_dir.name),
            "seed": config.seed if config else None, "env": config.env.name if config else "?"}


def label(config) -> str:
    core = config.model.get("core", "none")
    return config.algo.name + ("" if core == "none" else f"+{core}")


def tabulate(groups: dict[str, list[dict]], threshold, window: int) -> list[dict]:
    rows = []
    for algo, runs in groups.items():
        spans = [stats.window_of(run["summary"].get("episode_means"), window) for run in runs]
        finals = [np.mean([r for _, r, _ in run["episodes"][-w:]]) for run, w in zip(runs, spans) if run["episodes"]]
        mean, lo, hi = stats.bootstrap_ci(finals)
        hits = [stats.crossing(run["episodes"], threshold, w) for run, w in zip(runs, spans)]
        reached = [h[0] for h in hits if h]
        singles = [r for run, w in zip(runs, spans) if w == window for _, r, _ in run["episodes"][-window:]]

        def summary(key, runs=runs):  # one number of each run's summary.json, where it has it
            return [r["summary"][key] for r in runs if r["summary"].get(key) is not None]

        rows.append({"algo": algo, "runs": len(runs), "final_return": mean, "final_ci_low": lo, "final_ci_high": hi,
                     "iqm": stats.iqm(singles),
                     "reached": len(reached) if threshold is not None else None,
                     "steps_to_threshold": float(np.median(reached)) if reached else None,
                     "steps_per_s": _mean(summary("sps")), "wall_s": _mean(summary("seconds")),
                     "peak_rss_mib": max(summary("peak_rss_mib"), default=None)})
    return rows


def _mean(values):
    return float(np.mean(values)) if values else None


def markdown(rows, threshold, window: int) -> str:
    def f(value, spec):
        return "-" if value is None or value != value else format(value, spec)

    reach = f"steps to mean of {window} >= {threshold:g} (median; runs reaching it)" if threshold is not None \
        else "steps to threshold"
    lines = [f"| algorithm | runs | final return (mean of last {window}, 95% CI) | IQM | {reach} | steps/s | "
             f"wall s | peak MiB |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        hit = "-" if r["reached"] is None else f"{f(r['steps_to_threshold'], ',.0f')} ({r['reached']}/{r['runs']})"
        lines.append(f"| {r['algo']} | {r['runs']} | {f(r['final_return'], '.1f')} [{f(r['final_ci_low'], '.1f')}, "
                     f"{f(r['final_ci_high'], '.1f')}] | {f(r['iqm'], '.1f')} | {hit} | {f(r['steps_per_s'], ',.0f')} "
                     f"| {f(r['wall_s'], '.0f')} | {f(r['peak_rss_mib'], '.0f')} |")
    return "\n".join(lines) + "\n"


def existing(patterns: list[str]) -> dict[str, list[Path]]:
    """Run folders matched by each pattern; one pattern groups them by algorithm, several by pattern."""
    files = [p for p in patterns if evaluate.is_agent(p)]
    if files:
        raise UsageError(f"{files[0]} is an agent, not a run folder: runs=[...] takes run folders (learning "
                         f"curves) or agents (played on the same seeds), not both")
    found = {p: sorted(Path(d) for d in glob.glob(p) if (Path(d) / "config.yaml").is_file()) for p in patterns}
    empty = [p for p, dirs in found.items() if not dirs]
    if empty:
        raise UsageError(f"no run folders match {empty[0]!r}")
    return found


def report(out: Path, groups: dict[str, list[dict]], opts) -> str:
    rows = tabulate(groups, opts["threshold"], opts["window"])
    with open(out / "results.csv", "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        f.writelines(",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) + "\n" for r in rows)
    with open(out / "episodes.csv", "w") as f:
        f.write("algo,seed,run,step,seconds,return\n")
        for algo, runs in groups.items():
            f.writelines(f"{algo},{run['seed']},{run['dir'].name},{s},{t:.3f},{r}\n"
                         for run in runs for s, r, t in run["episodes"])
    env = sorted({run["env"] for runs in groups.values() for run in runs})
    plot(groups, out / "curves.png", ", ".join(env), opts["smooth"])
    table = markdown(rows, opts["threshold"], opts["window"])
    elo = any(run["elo"] for runs in groups.values() for run in runs)
    (out / "elo.png").unlink(missing_ok=True)  # not one left from other runs in a reused folder
    if elo:
        plot_elo(groups, out / "elo.png", ", ".join(env))
    made = sorted({m[:300] if isinstance(m := run["summary"].get("made"), str) and m.isprintable() else
                   "not recorded" for runs in groups.values() for run in runs})  # a run folder's word, as text
    (out / "results.md").write_text(f"# {', '.join(env)}\n\nRuns made: {'; '.join(made)}\n\n![curves](curves.png)\n\n"
                                    + ("![elo](elo.png)\n\n" if elo else "") + table)
    return table


def main(argv: list[str]) -> Path:
    opts, overrides = command_options(argv, OPTIONS, passthrough=True, ranges=RANGES)
    if opts["out"] is not None and Path(str(opts["out"])).exists() and not Path(str(opts["out"])).is_dir():
        raise UsageError(f"out={opts['out']} is a file; give a folder for the runs and results")
    failed = []
    if opts["agents"] or opts["runs"] and all(evaluate.is_agent(p) for p in opts["runs"]):
        if opts["agents"] and opts["runs"] or overrides:
            raise UsageError(f"agents play as they are; drop "
                             f"{repr(overrides[0]) if overrides else 'runs= (agents= names them)'}")
        return evaluate.compare_agents(opts["agents"] or opts["runs"], opts["episodes"], opts["games"],
                                       opts["deterministic"], opts["out"], opts["progress"])
    if opts["runs"]:
        if overrides:
            raise UsageError(f"runs=[...] compares existing runs; drop {overrides[0]!r}")
        found = existing(opts["runs"])
        out = Path(opts["out"] or f"runs/compare__{time.strftime('%Y%m%d-%H%M%S')}")
        out.mkdir(parents=True, exist_ok=True)
        loaded = {p: [load_run(d) for d in dirs] for p, dirs in found.items()}
        groups: dict[str, list[dict]] = {}
        for pattern, runs in loaded.items():
            for run in runs:
                groups.setdefault(run["algo"] if len(found) == 1 else pattern, []).append(run)
    else:
        out, runs = plan(opts, overrides)
        try:
            failed = run_all(out, runs, overrides, opts)
        except KeyboardInterrupt:
            print(f"\nstopped; run the same command again to go on (finished runs are kept in {out})",
                  file=sys.stderr)
            sys.exit(130)
        groups = {}
        for algo, seed in runs:
            if finished(out / f"{algo}__{seed}"):
                groups.setdefault(algo, []).append(load_run(out / f"{algo}__{seed}"))
    print(report(out, groups, opts))
    print(f"plot: {out / 'curves.png'}" + (f", {out / 'elo.png'}" if (out / "elo.png").is_file() else "")
          + f"\ntable: {out / 'results.md'}\nnumbers: {out / 'results.csv'}, "
          f"{out / 'episodes.csv'}\nall runs in TensorBoard: tensorboard --logdir {out}")
    if opts["runs"] == [] and failed:
        raise RunError(f"{len(failed)} run(s) failed (the table holds the others), first: {failed[0]}")
    return out


if __name__ == "__main__":
    cli(main)
