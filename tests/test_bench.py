import pytest

from rlkit.bench import crossing, split_args, table
from rlkit.config import UsageError


def test_crossing_finds_the_first_window_whose_mean_reaches_the_threshold():
    episodes = [(10 * i, r, float(i)) for i, r in enumerate([0, 0, 10, 10, 10, 0])]
    assert crossing(episodes, 10, 2) == (30, 3.0)       # episodes 2 and 3 average 10
    assert crossing(episodes, 10, 3) == (40, 4.0)
    assert crossing(episodes, 11, 2) is None
    assert crossing(episodes[:1], 0, 2) is None           # fewer episodes than the window
    assert crossing(episodes, None, 2) is None


def test_bench_options_are_split_from_training_overrides():
    opts, rest = split_args(["env=doom", "threshold=80", "window=50", "append=true", "seed=3"])
    assert (opts["threshold"], opts["window"], opts["append"], opts["peer"]) == (80.0, 50, True, "sb3")
    assert rest == ["env=doom", "seed=3"]
    for bad, message in (("threshold=abc", "threshold must be a number"), ("append=maybe", "true/false"),
                         ("peer=cleanrl", "peer must be one of: sb3, sample_factory, none"),
                         ("sf_python=/sf/bin/python", "sf_python= goes with peer=sample_factory; the peer is sb3")):
        with pytest.raises(UsageError, match=message):
            split_args([bad])


def test_table_ratios():
    run = {"steps": 1000, "seconds": 10.0, "episodes": [(500, 5.0, 4.0), (1000, 5.0, 8.0)], "peak_rss_mib": 300.4,
           "precision": "bf16"}
    peer = {"steps": 1000, "seconds": 20.0, "episodes": [(900, 5.0, 16.0), (1000, 5.0, 20.0)], "peak_rss_mib": 512,
            "precision": "fp32"}
    text = table({"threshold": 5.0, "window": 2}, 400.0, {"rlkit": run, "peer": peer})
    assert "| rlkit | bf16 | 1,000 | 10 | 100 | 0.25 | 1,000 | 8 | 5.0 | 300 |" in text  # each row says its precision
    assert "| peer | fp32 | 1,000 | 20 | 50 | 0.12 | 1,000 | 20 | 5.0 | 512 |" in text
    assert "steps/s, rlkit / peer: **2.00x**; wall-clock to the threshold, peer / rlkit: **2.50x**" in text


def test_scaling_option_and_its_efficiency_table():
    from rlkit.bench import scaling_table

    opts, rest = split_args(["env=doom", "scaling=1,2,4", "iters=3"])
    assert (opts["scaling"], opts["iters"], rest) == ([1, 2, 4], 3, ["env=doom"])
    for bad in ("scaling=0", "scaling=a,b", "scaling="):
        with pytest.raises(UsageError, match="scaling must be worker counts like 1,2,4"):
            split_args([bad])
    text = scaling_table(2000.0, {1: 1000.0, 2: 1800.0, 4: 2000.0})
    assert "| runner=ray, 1 worker | 1,000 | 0.50 | 1.00x | 100% |" in text
    assert "| runner=ray, 2 workers | 1,800 | 0.90 | 1.80x | 90% |" in text
    assert "| runner=ray, 4 workers | 2,000 | 1.00 | 2.00x | 50% |" in text


def test_repeated_runs_report_each_pair_and_the_median_ratio():
    opts, _ = split_args(["env=pong", "repeats=3"])
    assert opts["repeats"] == 3
    with pytest.raises(UsageError, match="repeats must be >= 1, got 0"):
        split_args(["repeats=0"])

    def result(seconds):
        return {"steps": 1000, "seconds": seconds, "episodes": [], "peak_rss_mib": 300, "precision": "fp32"}

    runs = {"rlkit #1": result(10.0), "SB3 PPO #1": result(20.0), "rlkit #2": result(10.0),
            "SB3 PPO #2": result(15.0), "rlkit #3": result(8.0), "SB3 PPO #3": result(24.0)}
    text = table({"threshold": None, "window": 100}, 400.0, runs)
    assert "run by run: 2.00x, 1.50x, 3.00x; median **2.00x**" in text
    assert "| SB3 PPO #2 | fp32 | 1,000 | 15 | 67 |" in text
    alone = table({"threshold": None, "window": 100, "peer": "none"}, 400.0, {"a": result(10.0), "b": result(5.0)})
    assert "x**" not in alone  # no peer: no ratios between rlkit's own runs


def test_a_run_too_short_for_an_episode_still_gets_its_speed(tmp_path):
    # 64 Pong envs for 16k steps end no episode: the bench reports speed and says so, not an error.
    from torch.utils.tensorboard import SummaryWriter

    from rlkit.compare import load_run

    def logged_no_episode(name):
        with SummaryWriter(str(tmp_path / name)) as writer:
            writer.add_scalar("loss/value", 1.0, 2048)
        return tmp_path / name

    run_dir = logged_no_episode("run")
    from omegaconf import OmegaConf

    from rlkit.config import load_config

    OmegaConf.save(load_config(["env=pong"]), run_dir / "config.yaml")  # as rlkit.train writes it
    assert load_run(run_dir)["episodes"] == []
    with pytest.raises(UsageError, match="logged no episode/return and has no config.yaml"):
        load_run(logged_no_episode("other"))
    run = {"steps": 1000, "seconds": 10.0, "episodes": [], "peak_rss_mib": 300.0, "precision": "fp32"}
    peer = {"steps": 1000, "seconds": 20.0, "episodes": [], "peak_rss_mib": 500.0, "precision": "fp32"}
    text = table({"threshold": None, "window": 100}, 400.0, {"rlkit": run, "peer": peer})
    assert "| rlkit | fp32 | 1,000 | 10 | 100 | 0.25 | - | - | no episode ended | 300 |" in text
    assert "steps/s, rlkit / peer: **2.00x**" in text


def test_lengths_option_measures_a_cores_cost_at_the_end_of_each_episode_length(capsys):
    from rlkit.bench import main

    opts, rest = split_args(["env=cartpole_masked", "lengths=500,1000"])
    assert (opts["lengths"], rest) == ([500, 1000], ["env=cartpole_masked"])
    for bad in ("lengths=100", "lengths=a", "lengths=500,true"):
        with pytest.raises(UsageError, match="lengths must be episode lengths from 500"):
            split_args([bad])
    rates = main(["env=cartpole_masked", "model.core=transformer", "model.core_size=16", "model.memory=8",
                  "lengths=500,1000"])
    assert set(rates) == {("transformer", 500), ("transformer", 1000), ("none", 500), ("none", 1000)}
    assert all(r > 0 for r in rates.values())
    out = capsys.readouterr().out
    assert "| 1,000 |" in out and "core=transformer: steps/s at 1,000 steps / at 500: **" in out


def test_actorq_times_collection_with_fp32_and_int8_actors(capsys):
    """`actorq=`: the same rollouts collected by PyTorch fp32, ONNX fp32 and int8 actors, with the
    refresh cost; agents it cannot quantize are refused before anything runs."""
    from rlkit.bench import main

    rates = main(["actorq=doom-basic", "iters=1"])
    assert list(rates) == ["PyTorch fp32", "ONNX Runtime fp32", "ONNX Runtime int8"] and min(rates.values()) > 0
    out = capsys.readouterr().out
    assert "quantized actors (ActorQ), agent doom-basic" in out and "| ONNX Runtime int8 |" in out
    assert "Refreshing the int8 actor from the learner's weights" in out
    with pytest.raises(UsageError, match="actorq= takes an agent without memory on frames; connect-four is a board"):
        main(["actorq=connect-four"])
    with pytest.raises(UsageError, match="actorq= measures the agent's own training settings; drop 'num_envs=2'"):
        main(["actorq=doom-basic", "num_envs=2"])
