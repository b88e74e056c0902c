"""Sample Factory as a peer: the command rlkit hands it, and its logs read into an rlkit run
folder that rlkit.compare tabulates. A stand-in interpreter plays Sample Factory here (the real
one needs a virtual environment of its own, see rlkit/sample_factory.py), writing what Sample
Factory 2.1.1 writes: TensorBoard summaries in frames and checkpoints named by frames."""
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from rlkit import sample_factory
from rlkit.compare import command as compare_command
from rlkit.compare import load_run, tabulate
from rlkit.config import UsageError, load_config

FAKE = """\
#!{python}
import pathlib, sys
if sys.argv[1] == "-c":
    print("2.1.1"); sys.exit(0)
args = dict(a[2:].split("=", 1) for a in sys.argv[3:])
assert sys.argv[1:3] == ["-m", "sf_examples.vizdoom.train_vizdoom"], sys.argv
from torch.utils.tensorboard import SummaryWriter
root = pathlib.Path(args["train_dir"]) / args["experiment"]
writer = SummaryWriter(str(root / ".summary" / "0"))
frames = int(args["train_for_env_steps"])
for i, objective in enumerate([-2.0, -1.0, 0.5, 0.8]):
    writer.add_scalar("policy_stats/avg_true_objective", objective, (i + 1) * frames // 4)
writer.close()
(root / "checkpoint_p0").mkdir(parents=True)
(root / "checkpoint_p0" / f"checkpoint_000000012_{{frames}}.pth").write_bytes(b"")
pathlib.Path(args["train_dir"], "argv.txt").write_text(" ".join(sys.argv[1:]))
import subprocess  # a worker left running, as a killed Sample Factory leaves its games
left = subprocess.Popen(["sleep", "600"])
pathlib.Path(args["train_dir"], "worker.pid").write_text(str(left.pid))
"""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def fake_sf(tmp_path):
    path = tmp_path / "sf-python"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_sample_factory_gets_the_scenario_seed_frames_and_budget():
    cfg = load_config(["env=defend_the_center", "total_steps=5000", "seed=7"])
    cmd = sample_factory.command("py", cfg, {"seconds": 60, "workers": 2, "envs_per_worker": 4}, "/d")
    assert cmd[:3] == ["py", "-m", "sf_examples.vizdoom.train_vizdoom"]
    assert {"--env=doom_defend_the_center", "--train_for_env_steps=20000", "--seed=7",
            "--num_workers=2", "--num_envs_per_worker=4", "--device=cpu", "--env_frameskip=4"} <= set(cmd)
    assert not [a for a in cmd if a.startswith("--train_for_seconds")]  # never fires in 2.1.1: run() keeps it
    assert sample_factory.budget(cfg, {"seconds": 60}) == 60
    assert sample_factory.budget(load_config(["env=doom", "minutes=0.5"]), {"seconds": 60}) == 30  # the shorter


def test_the_budget_stops_sample_factory_and_its_games(tmp_path):
    import time

    pid_file = tmp_path / "sf.pid"
    sf = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(600)"
    begun = time.monotonic()
    code, timed_out = sample_factory.run([sys.executable, "-c", sf], seconds=3, grace=5)
    assert timed_out and 3 <= time.monotonic() - begun < 30
    assert not running(int(pid_file.read_text()))
    assert sample_factory.run([sys.executable, "-c", "pass"], seconds=60) == (0, False)


def test_its_logs_become_an_rlkit_run_in_the_scenarios_own_score(fake_sf, tmp_path):
    run_dir = sample_factory.main([f"python={fake_sf}", "env=doom", "total_steps=4000", "seed=2",
                                   f"run_dir={tmp_path / 'run'}"])
    run = load_run(run_dir)
    assert run["algo"] == "sample_factory" and run["seed"] == 2 and run["env"] == "doom"
    # Basic's rewards are scaled by 0.01 in Sample Factory's copy: x100 is the game's score;
    # its frames (4 per agent step) are agent steps here.
    assert [(s, r) for s, r, _ in run["episodes"]] == [(1000, -200.0), (2000, -100.0), (3000, 50.0), (4000, 80.0)]
    assert run["summary"]["steps"] == 4000
    # Each point is already a mean of 100 episodes: the table takes the last, and the first at 50 or more.
    row = tabulate({"sample_factory": [run]}, threshold=50, window=100)[0]
    assert row["final_return"] == 80.0 and row["steps_to_threshold"] == 3000 and row["iqm"] != row["iqm"]
    assert "--env=doom_basic" in (run_dir / "sample_factory" / "argv.txt").read_text()
    worker = int((run_dir / "sample_factory" / "worker.pid").read_text())
    assert not running(worker)  # nothing of Sample Factory's is left running


def test_compare_runs_it_from_the_interpreter_it_is_given(tmp_path):
    cmd = compare_command("sample_factory", 3, tmp_path / "r", ["env=doom"],
                          {"sf_python": "/sf/bin/python", "sf_seconds": 90})
    assert cmd == ["rlkit.sample_factory", "python=/sf/bin/python", "seconds=90", "env=doom", "seed=3",
                   f"run_dir={tmp_path / 'r'}"]


def test_bad_sample_factory_input_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="give python=PATH"):
        sample_factory.main(["env=doom"])
    with pytest.raises(UsageError, match=f"python={tmp_path}/nope cannot be run"):
        sample_factory.main([f"python={tmp_path}/nope", "env=doom"])
    with pytest.raises(UsageError, match="has no copy of take_cover; choose from: doom, defend_the_center"):
        sample_factory.main([f"python={sys.executable}", "env=take_cover"])
    with pytest.raises(UsageError, match=textwrap.shorten("has no Sample Factory with its ViZDoom examples", 99)):
        sample_factory.main([f"python={sys.executable}", "env=doom"])
    assert not list(tmp_path.iterdir())  # nothing made before the checks pass


def test_bench_runs_it_as_the_peer_and_takes_its_means_as_they_are(fake_sf, tmp_path, capsys):
    from rlkit.bench import main as bench

    with pytest.raises(UsageError, match="give sf_python=PATH"):
        bench(["env=doom", "peer=sample_factory"])
    results = bench(["env=doom", "total_steps=256", "num_envs=2", "raw_steps=32", "threshold=50",
                     "peer=sample_factory", f"sf_python={fake_sf}", f"runs_root={tmp_path}"])
    assert list(results) == ["rlkit ppo", "Sample Factory"] and results["Sample Factory"]["means"] == 100
    report = capsys.readouterr().out
    # its last logged mean (80) and the first at 50 or more (the fake logs at 1/4 .. 4/4 of the
    # 256 steps: 192), not means of its means
    row = next(line for line in report.splitlines() if line.startswith("| Sample Factory |")).split(" | ")
    assert row[1] == "fp32" and row[2] == "256" and row[6] == "192" and row[8] == "80.0"
    assert "steps/s, rlkit ppo / Sample Factory: **" in report


def test_a_terminated_wrapper_stops_sample_factory_with_it(tmp_path):
    """SIGTERM (a CI cancel, `timeout`, a closed terminal) to rlkit's wrapper reaches Sample Factory's
    own session too, which no terminal signal reaches."""
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "sf.pid"
    sf = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(600)"
    wrapper = subprocess.Popen([sys.executable, "-c", "import sys; from rlkit.sample_factory import run; "
                                f"sys.exit(run([sys.executable, '-c', {sf!r}], grace=5))"])
    end = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < end:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert running(child)
    wrapper.send_signal(signal.SIGTERM)
    wrapper.wait(timeout=30)
    end = time.monotonic() + 10
    while running(child) and time.monotonic() < end:
        time.sleep(0.1)
    assert not running(child)


def test_sample_factory_gets_sigint_even_when_rlkit_was_started_with_it_ignored():
    """A background job (nohup, CI) starts with SIGINT ignored; Sample Factory must still get it,
    to save and stop, rather than be killed when the grace period ends."""
    import signal
    import time

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        begun = time.monotonic()
        code, timed_out = sample_factory.run([sys.executable, "-c", "import time; time.sleep(600)"], seconds=1,
                                             grace=30)
        took = time.monotonic() - begun
    finally:
        signal.signal(signal.SIGINT, before)
    assert timed_out and took < 15  # stopped by SIGINT (KeyboardInterrupt), not by SIGKILL after 30 s
