"""Sample Factory (APPO, what Doom users pick today) as a peer, run in a virtual environment of
its own and logged as an rlkit run:

    python3 -m venv ~/sf && ~/sf/bin/pip install torch==2.13.0 'sample-factory[vizdoom]==2.1.1'
    python -m rlkit.sample_factory python=~/sf/bin/python env=defend_the_center seed=1 seconds=1800
    python -m rlkit.compare env=doom algos=[ppo,sample_factory] sf_python=~/sf/bin/python seeds=3

Sample Factory 2.1.1 pins gymnasium below 1.0, which rlkit does not run on, so it runs as its
own program: `python=` names the interpreter of its environment, given on the command line (a
loaded file never names a program). It trains on its own copies of ViZDoom's scenarios, with
its own action sets, resolution (128x72 RGB) and a GRU; rlkit hands it the scenario, the seed,
the agent steps (as frames: x frame skip), `seconds` of wall-clock (or `minutes=`, as rlkit's
training takes it) and `workers` x `envs_per_worker` games on the CPU.

It logs no single episodes: every ~10 s, the mean of its last 100 episodes'
`true_objective` (`policy_stats/avg_true_objective`). Each becomes a point of the run's
`episode/return` at its agent step (frames / frame skip), times `SCENARIOS`' factor, which undoes
Sample Factory's reward scaling so that the numbers are the scenario's own score; health
gathering is scored by Sample Factory's copy of the scenario (0.01 per tic alive, no death
penalty), so x100 gives tics alive, where ViZDoom's own scenario adds -100 for a death."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from omegaconf import OmegaConf

from rlkit.config import UsageError, cli, command_options, default_run_dir, load_config
from rlkit.logger import write_summary

SCENARIOS = {  # rlkit env: (Sample Factory's env, the factor that gives the scenario's own score)
    "doom": ("doom_basic", 100.0),
    "defend_the_center": ("doom_defend_the_center", 1.0),
    "defend_the_line": ("doom_defend_the_line", 1.0),
    "my_way_home": ("doom_my_way_home", 1.0),
    "deadly_corridor": ("doom_deadly_corridor", 100.0),
    "health_gathering": ("doom_health_gathering", 100.0),
    "health_gathering_supreme": ("doom_health_gathering_supreme", 100.0),
}
OPTIONS = {"python": "", "seconds": 10**9, "workers": 2, "envs_per_worker": 4}
RANGES = {"seconds": (1, 10**9), "workers": (1, 1024), "envs_per_worker": (1, 1024)}
TAG = "policy_stats/avg_true_objective"


def command(python: str, cfg, opts, train_dir: Path) -> list[str]:
    """Sample Factory's own training command for `cfg`'s scenario. Its wall-clock budget is kept
    by `run`: 2.1.1's --train_for_seconds never fires (the time it compares is never counted)."""
    return [python, "-m", "sf_examples.vizdoom.train_vizdoom", f"--env={SCENARIOS[cfg.env.name][0]}",
            "--experiment=sf", f"--train_dir={train_dir}",
            f"--train_for_env_steps={cfg.total_steps * cfg.env.frame_skip}",
            f"--num_workers={opts['workers']}",
            f"--num_envs_per_worker={opts['envs_per_worker']}", "--device=cpu", f"--seed={cfg.seed}",
            f"--env_frameskip={cfg.env.frame_skip}"]


def check(cfg, python: str, option: str = "sf_python") -> None:
    """Sample Factory can train `cfg`'s game with `python` (given as `option=`): asked before any run starts."""
    if cfg.env.name not in SCENARIOS:
        raise UsageError(f"Sample Factory has no copy of {cfg.env.name}; choose from: {', '.join(SCENARIOS)}")
    check_python(str(Path(python).expanduser()) if python else "", option)


def check_python(python: str, option: str = "python") -> None:
    """`option=` is an interpreter that has Sample Factory."""
    if not python:
        raise UsageError(f"give {option}=PATH: the interpreter of Sample Factory's own virtual environment "
                         "(see python -m rlkit.sample_factory --help)")
    try:
        found = subprocess.run([python, "-c", "import sf_examples.vizdoom.train_vizdoom"], capture_output=True,
                               text=True, timeout=120)
    except OSError as e:
        raise UsageError(f"{option}={python} cannot be run: {e.strerror}") from None
    if found.returncode != 0:
        raise UsageError(f"{option}={python} has no Sample Factory with its ViZDoom examples; install it there: "
                         f"pip install 'sample-factory[vizdoom]==2.1.1'")


def convert(train_dir: Path, run_dir: Path, factor: float, frame_skip: int, started: float) -> list[tuple]:
    """Sample Factory's 100-episode means as the run's `episode/return`, wall-clock kept; returns
    them as (agent step, score, seconds since the start)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    events = EventAccumulator(str(train_dir / "sf" / ".summary" / "0"), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars(TAG) if TAG in events.Tags()["scalars"] else []
    rows = [(p.step // frame_skip, p.value * factor, p.wall_time - started) for p in points]
    writer = SummaryWriter(str(run_dir))
    writer.add_text("peer", "Sample Factory 2.1.1 (APPO); episode/return: its mean of the last 100 episodes",
                    walltime=started)
    for (step, score, _), p in zip(rows, points):
        writer.add_scalar("episode/return", score, step, walltime=p.wall_time)
    writer.close()
    return rows


def main(argv: list[str]) -> Path:
    opts, rest = command_options(argv, OPTIONS, ranges=RANGES, passthrough=True)
    cfg = load_config(rest)
    check(cfg, opts["python"], "python")
    run_dir = default_run_dir(cfg, "sample_factory")
    train_dir = run_dir / "sample_factory"
    cmd = command(str(Path(opts["python"]).expanduser()), cfg, opts, train_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({**OmegaConf.to_container(cfg, resolve=True), "peer": "sample_factory"}),
                   run_dir / "config.yaml")
    print(" ".join(cmd), flush=True)
    started = time.time()
    code, timed_out = run(cmd, budget(cfg, opts))
    seconds = time.time() - started
    if code != 0 and not timed_out:  # stopped for its budget, it exits as interrupted, its checkpoint saved
        raise UsageError(f"Sample Factory exited with {code}; its log is above, its files in {train_dir}")
    rows = convert(train_dir, run_dir, SCENARIOS[cfg.env.name][1], cfg.env.frame_skip, started)
    frames = _frames(train_dir)
    steps = frames // cfg.env.frame_skip if frames else (rows[-1][0] if rows else 0)
    write_summary(run_dir, steps=steps, seconds=seconds, sps=steps / seconds, episodes=None,
                  recent_return=rows[-1][1] if rows else None, episode_means=100, started=started)
    print(f"done: {steps} agent steps in {seconds / 60:.1f} min ({steps / seconds:.0f} steps/s); Sample Factory's "
          f"last mean of 100 episodes: {rows[-1][1] if rows else 'none logged'}\nrun folder: {run_dir}")
    return run_dir


def budget(cfg, opts) -> float:
    """Sample Factory's wall-clock seconds: `seconds=` or the run's `minutes=`, whichever is shorter."""
    return min(opts["seconds"], 60 * cfg.minutes) if cfg.minutes else opts["seconds"]


def run(cmd: list[str], seconds: float = 10**9, grace: float = 60.0) -> tuple[int, bool]:
    """Sample Factory in a process group of its own, for at most `seconds`; returns its exit code
    and whether the budget stopped it. At the budget, as when it is stopped (Ctrl-C, SIGTERM or
    SIGHUP to this process, an error here), its whole group gets SIGINT (it saves a checkpoint and
    stops its learner, inference and rollout processes and their ViZDoom games), `grace` seconds,
    then SIGKILL: none is left running."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()  # only it may take signals
    before = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)} if main_thread else {}
    # SIGINT at its default in Sample Factory: started from a background job (nohup, CI), this
    # process inherits it ignored, and so would Sample Factory, which then neither saves nor
    # stops on it and is killed at the end of the grace period.
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_default_sigint)
    try:
        return proc.wait(timeout=seconds), False
    except subprocess.TimeoutExpired:
        print(f"the {seconds:g}-second budget is over: stopping Sample Factory", flush=True)
        return -1, True  # the group is stopped below
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for sig in (signal.SIGINT, signal.SIGKILL):
            if not _group_alive(proc.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            end = time.monotonic() + grace
            while time.monotonic() < end and _group_alive(proc.pid):
                proc.poll()  # reaps the leader once it exits
                time.sleep(0.1)
        proc.poll()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: where PID 1 does not reap
    orphans (many containers), a finished game process stays a zombie in the group for good, and
    waiting for it cost the whole grace period twice over."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    if not os.path.isdir("/proc"):
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == group and state != "Z":
            return True
    return False


def _frames(train_dir: Path) -> int:
    """The frames Sample Factory says it trained on (its checkpoint names end in them)."""
    found = [int(m.group(1)) for p in (train_dir / "sf").rglob("checkpoint_*.pth")
             if (m := re.search(r"_(\d+)\.pth$", p.name))]
    return max(found, default=0)


if __name__ == "__main__":
    cli(main)
