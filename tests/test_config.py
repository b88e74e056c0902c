import re

import pytest

from rlkit.config import UsageError, load_config, options
from rlkit.stored import stored_config
from tests.conftest import run_cli


@pytest.mark.parametrize("env", options("env"))
def test_every_env_file_composes(env):
    cfg = load_config([f"env={env}"])
    assert cfg.env.name == env
    assert "tuned" not in cfg.env


@pytest.mark.parametrize("group", ["algo", "model"])
def test_every_algo_and_model_file_composes(group):
    for choice in options(group):
        cfg = load_config([f"{group}={choice}", "env=cartpole"])
        assert cfg[group].name == choice


def test_defaults_are_doom_ppo_cnn():
    cfg = load_config([])
    assert (cfg.env.name, cfg.algo.name, cfg.model.name) == ("doom", "ppo", "cnn")


def test_env_tuned_values_apply_and_command_line_wins():
    tuned = load_config(["env=cartpole"])
    assert tuned.algo.num_steps == 32 and tuned.model.hidden == 64
    explicit = load_config(["env=cartpole", "algo.num_steps=7", "num_envs=3"])
    assert explicit.algo.num_steps == 7 and explicit.num_envs == 3
    assert explicit.algo.epochs == 20  # the other tuned values still apply
    other_algo = load_config(["env=cartpole", "algo=reinforce"])
    assert (other_algo.algo.num_steps, other_algo.algo.lr) == (32, 0.01)  # reinforce's own tuned block, not ppo's


def test_a_memory_cores_tuned_block_applies_only_with_that_core():
    with_core = load_config(["env=cartpole_masked", "model.core=transformer"])
    assert (with_core.model.memory, with_core.model.core_size) == (8, 64)  # the +transformer block
    assert with_core.algo.epochs == 10  # the ppo block still applies
    without = load_config(["env=cartpole_masked", "model.core=lstm"])
    assert (without.model.memory, without.model.core_size) == (32, 128)
    explicit = load_config(["env=cartpole_masked", "model.core=transformer", "model.memory=4"])
    assert (explicit.model.memory, explicit.model.core_size) == (4, 64)


def test_issue_example_composes():
    cfg = load_config("env=pong algo=reinforce model=transformer seed=3 num_envs=16".split())
    assert (cfg.env.game, cfg.algo.name, cfg.model.name, cfg.seed, cfg.num_envs) == ("Pong", "reinforce",
                                                                                     "transformer", 3, 16)


def test_int_is_accepted_for_float():
    assert load_config(["algo.lr=1"]).algo.lr == 1.0


@pytest.mark.parametrize("override, message", [
    ("env=nope", "unknown env 'nope'; choose from: atari, board, breakout, cartpole"),
    ("model=nope", "unknown model 'nope'; choose from: cnn, impala, mlp, transformer"),
    ("algo=nope", "unknown algo 'nope'; choose from: alphazero, ppo, reinforce"),
    ("bogus=1", "unknown key 'bogus'; valid keys: algo, amp"),
    ("algo.lrr=1", "unknown key 'algo.lrr'; valid keys in algo:"),
    ("seed=abc", "seed must be an integer, got 'abc'"),
    ("amp=3", "amp must be one of: auto, bf16, fp16, off; got 3"),
    ("amp=half", "amp must be one of: auto, bf16, fp16, off; got 'half'"),
    ("progress=3", "progress must be true/false, got 3"),
    ("num_envs=0", "num_envs must be > 0"),
    ("algo.lr=-0.1", "algo.lr must be > 0"),
    ("device=gpu", "device must be one of: auto, cpu, cuda"),
    ("vector=threads", "vector must be one of: sync, async"),
    ("+extra=1", "only key=value is supported"),
    ("seed", "expected key=value"),
])
def test_bad_overrides_raise_one_line(override, message):
    with pytest.raises(UsageError) as e:
        load_config([override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_bad_input_on_the_command_line_is_one_line_exit_2(tmp_path):
    result = run_cli("rlkit.train", "env=nope", f"run_dir={tmp_path}/x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: unknown env 'nope'; choose from:")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "x").exists()  # failed before any work started


def test_command_options_are_typed_by_their_defaults():
    from rlkit.config import command_options

    defaults = {"agent": "", "episodes": 3, "fps": 1.0, "overlay": False, "algos": ["ppo"], "seeds": None}
    opts, rest = command_options(["agent=runs/a/", "episodes=5", "fps=30", "overlay=true", "algos=[ppo,sb3_a2c]",
                                  "seeds=[1,7]", "env=doom"], defaults, passthrough=True)
    assert opts == {"agent": "runs/a/", "episodes": 5, "fps": 30.0, "overlay": True, "algos": ["ppo", "sb3_a2c"],
                    "seeds": [1, 7]}
    assert rest == ["env=doom"] and isinstance(opts["fps"], float)
    assert command_options(["algos=ppo", "agent=7"], defaults)[0]["algos"] == ["ppo"]
    for bad, message in (("episodes=abc", "episodes must be an integer, got 'abc'"),
                         ("overlay=1", "overlay must be true/false"),
                         ("env=doom", "unknown option 'env'; valid: agent, episodes, fps, overlay, algos, seeds"),
                         ("agent=[a,b]", "agent must be a string")):
        with pytest.raises(UsageError, match=re.escape(message)):
            command_options([bad], defaults)
    with pytest.raises(UsageError, match="window must be one of: auto, true; got 'x'"):
        command_options(["window=x"], {"window": "auto"}, {"window": ("auto", "true")})


def test_a_saved_config_gains_new_keys_with_the_behaviour_it_was_trained_with():
    from omegaconf import OmegaConf

    stored = OmegaConf.to_container(load_config(["env=tictactoe", "algo.lr=0.01"]))
    del stored["env"]["selfplay"]["opening_moves"], stored["overlap"]  # saved before these existed
    merged, filled = stored_config(stored, "saved")
    assert filled == ["env.selfplay.opening_moves=0", "overlap=False"]
    # 0, not tictactoe's 2: the run was trained without random openings (LEGACY); overlap's
    # default is the old behaviour already; stored values, changed or not, are kept.
    assert merged.env.selfplay.opening_moves == 0 and merged.env.selfplay.opponent_explore == 0.2
    assert merged.algo.lr == 0.01
    stored["algo"]["lr"] = "fast"
    with pytest.raises(UsageError, match="algo.lr must be"):
        stored_config(stored, "saved")
    stored["algo"]["lr"] = 0.01
    stored["env"]["name"] = "no_such_game"  # a file names only what rlkit has: no type check is skipped
    with pytest.raises(UsageError, match="names env 'no_such_game'; a loaded config must name one of: atari"):
        stored_config(stored, "saved")
