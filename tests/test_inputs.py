"""Every command's input is checked before any work (issue 21): one line, a non-zero exit, no
traceback, no run folder left behind, and nothing already saved lost (full disk, read-only folder)."""
import errno
import os
from pathlib import Path

import pytest

from rlkit import arena, bench, checkpoint, compare, play, train, watch
from rlkit.algos import ppo
from rlkit.config import load_config
from rlkit.envs.board import parse_move
from rlkit.errors import UsageError
from tests.test_hostile import refused

CARTPOLE = ["env=cartpole", "total_steps=256", "progress=false"]


@pytest.mark.parametrize("override, message", [
    ("torch_threads=-1", "torch_threads must be >= 0, got -1"),
    ("env.max_episode_steps=-5", "env.max_episode_steps must be > 0, got -5"),
    ("algo.lr=nan", "algo.lr must be a finite number"),
    ("algo.target_kl=abc", "algo.target_kl must be a number or null, got 'abc'"),
    ("algo.max_grad_norm=-1", "algo.max_grad_norm must be > 0"),
    ("algo.clip_coef=-1", "algo.clip_coef must be > 0"),
    ("model.hidden=0", "model.hidden must be > 0"),
    ("seed=-1", "seed must be >= 0"),
    ("num_envs=100000", "num_envs must be in (0, 4096]"),
])
def test_training_values_out_of_range_are_refused_before_any_work(override, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        load_config(["env=cartpole", override])


def test_doom_and_transformer_settings_are_checked():
    with pytest.raises(UsageError, match=r"env.size must be a list of 2 ints from 8 to 1024, got \[64\]"):
        load_config(["env=doom", "env.size=[64]"])
    with pytest.raises(UsageError, match=r"model.dim \(64\) must be a multiple of model.heads \(3\)"):
        load_config(["env=doom", "model=transformer", "model.heads=3"])


def test_a_bad_resolution_is_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    refused(train.main, ["env=doom", "env.resolution=__class__", f"run_dir={tmp_path / 'r'}"], capsys,
            "unknown doom resolution '__class__'; choose from: RES_")
    assert not (tmp_path / "r").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch, capsys):
    def broken(policy, optimizer, batch, cfg):
        return {"loss/policy": float("nan")}

    monkeypatch.setattr(ppo, "update", broken)
    refused(train.main, [*CARTPOLE, f"run_dir={tmp_path / 'r'}"], capsys, "no intact checkpoint was written yet")
    assert not (tmp_path / "r").exists()
    # A folder that was there before keeps what it held; only what the run made goes.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    refused(train.main, [*CARTPOLE, f"run_dir={tmp_path / 'mine'}"], capsys, "non-finite")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    assert train.main([*CARTPOLE, f"run_dir={tmp_path / 'r'}"]) == tmp_path / "r"  # the name is free


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_checkpoints_written(tmp_path, monkeypatch, capsys):
    real, calls = checkpoint.save_file, []

    def full(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) > 1:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", full)
    run = tmp_path / "r"
    refused(train.main, [*CARTPOLE, "total_steps=512", "checkpoint_every=128", f"run_dir={run}"], capsys,
            "No space left on device; the checkpoints written before it are intact")
    # One update is 256 steps: the checkpoint at 256 was written, the final one (512) met the full disk.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_256.safetensors"]
    assert checkpoint.load(run / "checkpoints" / "step_256.safetensors")["counters"]["step"] == 256
    monkeypatch.undo()
    assert train.main([f"resume={run}", "progress=false"]) == run


def test_a_read_only_run_folder_is_found_before_resuming(tmp_path, monkeypatch, capsys):
    run = train.main([*CARTPOLE, "total_steps=128", f"run_dir={tmp_path / 'r'}"])
    before = (run / "checkpoints" / "final.safetensors").read_bytes()
    real = os.open

    def read_only(path, flags, *args, **kwargs):
        if run in Path(path).parents and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)  # root ignores chmod: the file system says no here
    refused(train.main, [f"resume={run}", "total_steps=256"], capsys,
            "(Read-only file system); copy the run folder somewhere writable and resume it there")
    assert (run / "checkpoints" / "final.safetensors").read_bytes() == before


@pytest.mark.parametrize("command, argv, message", [
    (play.main, ["env=connect_four", "agent=alphabeta", "depth=0"], "depth must be a number from 1 to 6, got 0"),
    (play.main, ["env=connect_four", "agent=alphabeta", "depth=-3"], "depth must be a number from 1 to 6"),
    (arena.main, ["env=connect_four", "agents=[random,alphabeta]", "depth=0"], "depth must be a number from 1 to 6"),
    (play.main, ["env=tictactoe", "agent=random", "seed=-1"], "seed must be a number from 0 to 2147483647"),
    (arena.main, ["env=tictactoe", "agents=[random,minimax]", "seed=-1"], "seed must be a number from 0"),
    (watch.main, ["agent=doom-basic", "seed=-1"], "seed must be a number from 0"),
    (watch.main, ["agent=doom-basic", "fps=abc"], "fps must be a number from 0.1 to 1000, got 'abc'"),
    (watch.main, ["agent=doom-basic", "device=bogus"],
     "device must be one of: auto, cpu, cuda, cuda:N, mps; got 'bogus'"),
    (watch.main, ["agent=doom-basic", "episodes=0"], "episodes must be a number from 1"),
    (compare.main, ["runs=[nothing*]", "threshold=abc"], "threshold must be a number"),
    (bench.main, ["env=cartpole", "raw_steps=-5"], "raw_steps must be a number from 1"),
])
def test_command_options_out_of_range_are_one_line(command, argv, message, capsys):
    refused(command, argv, capsys, message)


def test_watch_checks_its_video_file_before_playing(tmp_path, capsys):
    refused(watch.main, ["agent=doom-basic", f"record={tmp_path}"], capsys, "must end in .mp4 or .gif")
    (tmp_path / "v.mp4").mkdir()
    refused(watch.main, ["agent=doom-basic", f"record={tmp_path / 'v.mp4'}"], capsys, "is a folder")
    (tmp_path / "file").write_text("x")
    refused(watch.main, ["agent=doom-basic", f"record={tmp_path / 'file' / 'v.mp4'}"], capsys,
            "cannot write the video to")
    assert "episode 1" not in capsys.readouterr().out


def test_compare_refuses_an_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    refused(compare.main, ["env=cartpole", "algos=[ppo]", f"out={tmp_path / 'out'}"], capsys, "is a file")


def test_typed_moves_that_are_not_numbers_are_not_moves():
    assert parse_move("tictactoe", "²", 3) is None and parse_move("connect_four", "٣", 6) is None
    assert parse_move("go", "d٤", 9) is None and parse_move("go", "D4", 9) == 5 * 9 + 3
    assert parse_move("tictactoe", " 4 ", 3) == 4


def test_an_agent_whose_spaces_do_not_match_its_game_is_refused(tmp_path):
    import rlkit
    from tests.test_hostile import DOOM, forge, setting

    bad = forge(DOOM, tmp_path / "x.safetensors", config=setting("env.frame_stack", 2))
    with pytest.raises(UsageError, match=r"the agent takes observations \(4, 1, 64, 64\)"):
        rlkit.load_agent(bad).make_env()


def test_an_agent_folder_is_no_run_to_resume(capsys):
    refused(train.main, [f"resume={Path(__file__).parents[1] / 'agents' / 'doom-basic'}"], capsys,
            "is no run folder to resume (it has no checkpoints/ folder")
