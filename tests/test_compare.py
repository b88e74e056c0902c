import csv
import os
import re

import numpy as np
import pytest
from PIL import Image

from rlkit import stats
from rlkit.compare import command
from rlkit.compare import main as compare
from rlkit.config import UsageError
from rlkit.provenance import commit

TINY = ["env=cartpole", "num_envs=4", "algo.num_steps=32", "total_steps=512"]


def test_iqm_trims_a_quarter_from_each_end():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)   # mean of 3, 4, 5, 6
    assert stats.iqm([5]) == 5.0


def test_bootstrap_ci_brackets_the_mean_and_collapses_for_equal_values():
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    mean, lo, hi = stats.bootstrap_ci(np.arange(20.0))
    assert mean == 9.5 and 6 < lo < 9.5 < hi < 13


def test_curve_is_the_mean_of_the_last_episodes_finished_by_each_point():
    episodes = [(10, 1.0, 0.5), (20, 3.0, 1.0), (30, 5.0, 2.0)]
    got = stats.curve(episodes, np.array([5, 10, 25, 30, 99]), smooth=2)
    np.testing.assert_allclose(got, [np.nan, 1.0, 2.0, 4.0, 4.0])
    np.testing.assert_allclose(stats.curve(episodes, np.array([1.5]), smooth=5, axis=2), [2.0])
    mean, lo, hi = stats.band(np.array([[1.0, np.nan], [3.0, np.nan], [5.0, 2.0]]))
    assert mean[0] == 3.0 and lo[0] < 3.0 < hi[0] and np.isnan(mean[1])  # 1 of 3 runs: too few


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    compare([*TINY, "algos=[ppo,sb3_a2c]", "seeds=2", f"out={out}", "threshold=15", "window=5", "progress=false"])
    return out


@pytest.mark.slow
def test_compare_writes_plot_table_and_csv_that_agree(comparison):
    out = comparison
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["logs", "ppo__1", "ppo__2", "sb3_a2c__1",
                                                                   "sb3_a2c__2"]
    assert Image.open(out / "curves.png").size[0] > 600
    assert not (out / "elo.png").exists()  # only self-play runs log an Elo
    rows = list(csv.DictReader(open(out / "results.csv")))
    episodes = list(csv.DictReader(open(out / "episodes.csv")))
    table = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ppo")
             or line.startswith("| sb3_a2c")]
    assert [r["algo"] for r in rows] == ["ppo", "sb3_a2c"] and len(table) == 2
    made = re.search(r"Runs made: (\d{4}-\d\d-\d\d), commit ([0-9a-f]{7,}(-dirty)?), (.+) cores",
                     (out / "results.md").read_text())  # where and on what the numbers were taken
    assert made and made[2] == commit() and made[4].endswith(f", {os.cpu_count()}")
    for row, line in zip(rows, table):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == row["algo"] and cells[1] == row["runs"] == "2"
        assert cells[2] == (f"{float(row['final_return']):.1f} [{float(row['final_ci_low']):.1f}, "
                            f"{float(row['final_ci_high']):.1f}]")
        assert cells[3] == f"{float(row['iqm']):.1f}"
        assert cells[5] == f"{float(row['steps_per_s']):,.0f}" and cells[7] == f"{float(row['peak_rss_mib']):.0f}"
        # The final return is the mean over seeds of each run's last 5 episodes, from the raw CSV.
        finals = [np.mean([float(e["return"]) for e in episodes if e["algo"] == row["algo"] and e["seed"] == s][-5:])
                  for s in ("1", "2")]
        assert float(row["final_return"]) == pytest.approx(np.mean(finals))
        reached = re.search(r"\((\d)/2\)", cells[4])
        assert reached and reached.group(1) == row["reached"]


@pytest.mark.slow
def test_rerunning_a_comparison_skips_finished_runs(comparison, capsys):
    out = comparison
    stamps = {d.name: os.stat(d / "summary.json").st_mtime_ns for d in out.glob("*__*")}
    args = [*TINY, "algos=[ppo,sb3_a2c]", "seeds=2", f"out={out}", "progress=false"]
    compare(args)
    assert "4 of 4 runs already done; 0 to run" in capsys.readouterr().out
    assert {d.name: os.stat(d / "summary.json").st_mtime_ns for d in out.glob("*__*")} == stamps
    with pytest.raises(UsageError, match="holds a comparison with other settings"):
        compare([*TINY[:-1], "total_steps=1024", "algos=[ppo]", f"out={out}"])


def test_an_interrupted_run_is_resumed_not_restarted(tmp_path):
    run = tmp_path / "ppo__1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step_64.safetensors").touch()
    assert command("ppo", 1, run, TINY)[:2] == ["rlkit.train", f"resume={run}"]
    (run / "checkpoints" / "step_64.safetensors").unlink()  # started, nothing saved: start again
    assert command("ppo", 1, run, TINY) == ["rlkit.train", *TINY, "algo=ppo", "seed=1", f"run_dir={run}",
                                            "progress=false"]
    assert not run.exists()


@pytest.mark.slow
def test_compare_existing_runs_groups_them_by_algorithm(comparison, tmp_path, capsys):
    compare([f"runs=[{comparison}/*__*]", f"out={tmp_path}"])
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["algo"], r["runs"]) for r in rows] == [("ppo", "2"), ("sb3_a2c", "2")]


def test_bad_compare_input():
    with pytest.raises(UsageError, match="unknown algorithm 'dqn'; choose from: ppo, reinforce, alphazero, sb3_ppo"):
        compare(["env=cartpole", "algos=[ppo,dqn]"])
    with pytest.raises(UsageError, match="compare sets algo, seed and run_dir itself"):
        compare(["env=cartpole", "seed=3"])
    with pytest.raises(UsageError, match="no run folders match"):
        compare(["runs=[/nonexistent/*]"])
    with pytest.raises(UsageError, match="seeds must be a count"):
        compare(["env=cartpole", "seeds=[a,b]"])


def test_an_algos_entry_may_add_a_memory_core(tmp_path):
    from rlkit.compare import command, entry, plan

    assert entry("ppo+lstm") == ("ppo", ["model.core=lstm"]) and entry("sb3_recurrent_ppo") == ("sb3_recurrent_ppo", [])
    assert "model.core=gru" in command("reinforce+gru", 1, tmp_path / "run", ["env=cartpole_masked"])
    opts = {"algos": ["ppo", "ppo+lstm", "sb3_recurrent_ppo"], "seeds": 1, "out": str(tmp_path / "cmp")}
    out, runs = plan(opts, ["env=cartpole_masked"])
    assert [a for a, _ in runs] == ["ppo", "ppo+lstm", "sb3_recurrent_ppo"]
    for bad in ("ppo+lsmt", "sb3_ppo+lstm"):
        with pytest.raises(UsageError, match=re.escape(f"unknown algorithm '{bad}'")):
            plan({**opts, "algos": [bad], "out": str(tmp_path / bad)}, ["env=cartpole_masked"])


def test_every_learner_of_a_compare_keeps_the_wall_clock_budget_of_minutes(tmp_path):
    from rlkit import peers
    from rlkit.config import load_config

    for algo in ("ppo", "sb3_ppo", "sample_factory"):  # the budget reaches each learner's command
        assert "minutes=30" in command(algo, 1, tmp_path / algo, ["env=doom", "minutes=30"],
                                       {"sf_python": "/sf/bin/python", "sf_seconds": 10**9})
    cfg = load_config(["env=cartpole", "num_envs=4", "total_steps=20000", "minutes=0.000001", "progress=false"])
    assert peers.run(cfg, "sb3_a2c")["steps"] <= 4 * 32  # SB3 stopped within its first rollout, not at 20,000
