import io
import re

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from rlkit import video
from rlkit.config import UsageError, load_config
from rlkit.stats import bootstrap_ci
from rlkit.watch import main as watch
from tests.conftest import run_cli

DOOM_TINY = ("env=doom", "env.resolution=RES_160X120", "num_envs=2", "algo.num_steps=32", "total_steps=64")


def lengths(out: str) -> list[int]:
    return [int(n) for n in re.findall(r"length (\d+) steps", out)]


@pytest.mark.slow
def test_watch_records_one_frame_per_step_plus_each_reset(train, tmp_path, capsys):
    run = train("env=cartpole", "total_steps=512", "algo.num_steps=64")
    returns = watch([f"agent={run}", "episodes=2", f"record={tmp_path / 'cp.mp4'}", "seed=3"])
    out = capsys.readouterr().out
    frames = iio.imread(tmp_path / "cp.mp4")
    assert len(returns) == 2 and len(lengths(out)) == 2
    assert frames.shape == (sum(lengths(out)) + 2, 400, 600, 3)  # CartPole draws 600x400
    assert f"video: {tmp_path / 'cp.mp4'} ({frames.shape[0]} frames" in out
    mean, lo, hi = bootstrap_ci(returns)
    assert f"mean return {mean:g} over 2 episode(s), 95% bootstrap interval [{lo:.1f}, {hi:.1f}], " \
           f"lowest {min(returns):g}" in out
    # Same seed, same games; greedy play is deterministic too.
    assert watch([f"agent={run}", "episodes=2", f"record={tmp_path / 'again.mp4'}", "seed=3"]) == returns
    greedy = [watch([f"agent={run}", "episodes=1", "deterministic=true", f"record={tmp_path / f'g{i}.gif'}",
                     "seed=3"]) for i in range(2)]
    assert greedy[0] == greedy[1]


def test_watch_doom_with_overlay(train, tmp_path, capsys):
    run = train(*DOOM_TINY)
    watch([f"agent={run}", "episodes=1", "overlay=true", "max_steps=20", f"record={tmp_path / 'd.mp4'}"])
    frames = iio.imread(tmp_path / "d.mp4")
    n = lengths(capsys.readouterr().out)[0]
    assert n <= 20 and frames.shape[0] == n + 1
    # 160x120 screen scaled x2 to 320x240, plus the overlay panel scaled with it.
    assert frames.shape[1:] == (240, 320 + 2 * video.PANEL_WIDTH, 3)
    assert frames[:, :, 330:].max() > 200  # the panel holds drawn text and bars


def test_overlay_draws_the_likeliest_action_highlighted():
    frame = np.zeros((100, 40, 3), np.uint8)
    out = video.draw_overlay(frame, np.array([0.1, 0.9]), 0.5, ["LEFT", "RIGHT"])
    assert out.shape == (100, 40 + video.PANEL_WIDTH, 3)
    assert video.draw_overlay(frame, np.full(8, 1 / 8), 0.0, list("abcdefgh")).shape[0] == 24 + 16 * 8
    bar_left, bar_right = out[24 + 5, 46 + 2], out[40 + 5, 46 + 2]
    assert tuple(bar_right) == (80, 220, 80) and tuple(bar_left) == (200, 200, 200)
    assert int(out[40 + 5, 46: 46 + 70, 1].astype(bool).sum()) == 64  # 0.9 of the 70-pixel bar (+1 edge)


@pytest.mark.slow
def test_bad_watch_input_gets_one_line():
    with pytest.raises(UsageError, match="no agent 'nope': not a run folder"):
        watch(["agent=nope"])
    with pytest.raises(UsageError, match="give agent="):
        watch([])
    with pytest.raises(UsageError, match="window must be one of: auto, true, false"):
        watch(["agent=x", "window=maybe"])
    result = run_cli("rlkit.watch", "agent=runs/none", "episodes=zero")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: episodes must be an integer")


def test_record_refuses_unknown_formats(train, tmp_path):
    run = train("env=cartpole", "total_steps=128", "algo.num_steps=16")
    with pytest.raises(UsageError, match="must end in .mp4 or .gif"):
        watch([f"agent={run}", f"record={tmp_path / 'x.avi'}"])


def test_training_logs_evaluation_videos_to_tensorboard(train):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train("env=cartpole", "total_steps=512", "num_envs=4", "algo.num_steps=32", "video_every=256")
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    images = events.Images("eval/video")
    assert [i.step for i in images] == [256, 512]
    lengths = [int(s.value) for s in events.Scalars("eval/length")]
    for image, n in zip(images, lengths):
        gif = Image.open(io.BytesIO(image.encoded_image_string))
        assert (gif.format, gif.size) == ("GIF", (600, 400))
        # Pillow merges identical consecutive frames into one longer frame: count time, not frames.
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert sum(durations) == (n + 1) * 20  # CartPole plays at 50 fps: 20 ms a frame


def test_window_keys(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    import pygame

    window = video.Window("test", fps=1000)
    frame = np.zeros((20, 30, 3), np.uint8)
    assert window.show(frame) is True
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_PLUS))
    assert window.show(frame) is True and window.fps == 2000
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q))
    assert window.show(frame) is False
    window.close()


def test_an_exported_agent_plays_like_its_checkpoint_and_is_found_by_name(train, tmp_path, monkeypatch, capsys):
    import rlkit
    from rlkit import checkpoint
    from rlkit import watch as watch_module

    run = train("env=cartpole", "total_steps=256", "algo.num_steps=32")
    shipped = checkpoint.export(checkpoint.latest(run), tmp_path / "agents" / "cartpole-test" / "agent.safetensors")
    from safetensors import safe_open

    with safe_open(str(shipped), framework="pt") as f:
        assert f.keys() and not [k for k in f.keys() if k.startswith("optim.")]  # no optimizer state
    original, exported = rlkit.load_agent(run), rlkit.load_agent(shipped.parent)
    obs = np.array([0.01, -0.2, 0.03, 0.1], np.float32)
    np.testing.assert_array_equal(original.explain(obs)[0], exported.explain(obs)[0])
    monkeypatch.setattr(watch_module, "AGENTS_DIR", tmp_path / "agents")
    assert watch_module.shipped_agents() == ["cartpole-test"]
    watch(["agent=cartpole-test", "episodes=1", f"record={tmp_path / 'a.gif'}"])
    assert "episode 1: return" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"shipped: cartpole-test\)"):
        watch(["agent=cartpole-tset"])


def test_board_games_are_drawn_in_the_terminal_move_by_move():
    from rlkit.envs.board import Game
    from rlkit.players import Player
    from rlkit.watch import board_game

    class Scripted(Player):
        def __init__(self, moves):
            self.moves = iter(moves)

        def choose(self, observation, mask):
            return next(self.moves)

    lines = []
    game = Game(load_config(["env=tictactoe"]).env)
    result = board_game(game, (Scripted([0, 4, 8]), Scripted([1, 2])), write=lines.append)
    assert result == 1.0 and lines[-1] == "X wins"
    moves = [line.strip() for line in lines if "plays" in line]
    assert moves == ["X plays 0", "O plays 1", "X plays 4", "O plays 2", "X plays 8"]
    assert lines[0] == " 0 | 1 | 2\n---+---+---\n 3 | 4 | 5\n---+---+---\n 6 | 7 | 8"
    assert lines[-2] == " X | O | O\n---+---+---\n 3 | X | 5\n---+---+---\n 6 | 7 | X"


def test_a_random_policy_is_scored_in_any_game_by_name(capsys):
    returns = watch(["agent=random", "env=cartpole", "episodes=20", "record=none", "seed=3"])
    assert len(returns) == 20 and 8 <= np.mean(returns) <= 60  # CartPole's random policy: about 22
    assert len(set(returns)) > 1 and "95% bootstrap interval" in capsys.readouterr().out
    assert returns == watch(["agent=random", "env=cartpole", "episodes=20", "record=none", "seed=3"])
    masked = watch(["agent=random", "env=connect_four", "episodes=2", "opponent=random"])
    assert len(masked) == 2  # board games: only legal moves are drawn
    with pytest.raises(UsageError, match="unknown option 'env'; valid: agent, .*agent=random"):
        watch(["agent=nope", "env=cartpole"])
    with pytest.raises(UsageError, match="unknown env 'nope'; choose from: .*cartpole"):
        watch(["agent=random", "env=nope"])
