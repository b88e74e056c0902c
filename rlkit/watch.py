"""Watch a trained agent play:

    python -m rlkit.watch agent=NAME                                # a name in agents/
    python -m rlkit.watch agent=runs/doom__ppo__1__.../ episodes=5 record=doom.mp4
    python -m rlkit.watch agent=runs/.../checkpoints/step_50000.safetensors overlay=true
    python -m rlkit.watch agent=random env=my_way_home episodes=100 record=none   # a random policy's score

With a display, the games play in a window at the game's speed (space pause, right arrow step,
+/- speed, q quit). Without one (a server, CI), or with `record=`, they are recorded to an
MP4 or GIF and the path is printed; `record=none` plays without a window or video, to score an
agent over many episodes. Every episode's return and length are printed, then their mean with
a 95% bootstrap interval and the lowest return.
Board games are drawn in the terminal move by move: the agent against itself, or `opponent=`
(random, minimax, alphabeta, openspiel, or another run)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from rlkit import video
from rlkit.agent import load_agent, load_player, random_agent
from rlkit.config import SEED, UsageError, cli, command_options
from rlkit.envs.board import SYMBOLS, Game, move_name
from rlkit.players import PolicyPlayer
from rlkit.stats import bootstrap_ci

OPTIONS = {"agent": "", "episodes": 3, "record": None, "deterministic": False, "overlay": False, "seed": 0,
           "fps": None, "max_steps": 100_000, "window": "auto", "device": "cpu",
           "opponent": "self"}
CHOICES = {"window": ("auto", "true", "false")}
RANGES = {"episodes": (1, 10**6), "seed": SEED, "fps": (0.1, 1000), "max_steps": (1, 10**9)}
AGENTS_DIR = Path(__file__).resolve().parents[1] / "agents"


def shipped_agents() -> list[str]:
    return sorted(p.name for p in AGENTS_DIR.iterdir() if (p / "agent.safetensors").is_file()) \
        if AGENTS_DIR.is_dir() else []


def resolve(agent: str) -> Path:
    """A run folder, a checkpoint file, or the name of an agent shipped in agents/."""
    if not agent:
        raise UsageError(f"give agent=RUN_FOLDER, agent=CHECKPOINT or agent=NAME; shipped: "
                         f"{', '.join(shipped_agents()) or 'none'}")
    path = Path(agent)
    if path.exists():
        return path
    if (AGENTS_DIR / agent / "agent.safetensors").is_file():
        return AGENTS_DIR / agent
    raise UsageError(f"no agent {agent!r}: not a run folder, a checkpoint file or a shipped agent "
                     f"(shipped: {', '.join(shipped_agents()) or 'none'})")


def board_game(game, players, write=print) -> float:
    """One board game between `players` (seat 0 first), drawn in the terminal move by move.
    Returns the first seat's score: +1 win, 0 draw, -1 loss."""

    size = game.observation_space.shape[0]
    write(game.draw())
    while not game.over:
        seat = game.mover
        obs, mask = game.observe()
        action = players[seat].act(obs, mask)
        write(f"\n{SYMBOLS[game.name][seat]} plays {move_name(game.name, action, size)}")
        game.step(action)
        write(game.draw())
    result = game.score(0)
    write({1.0: "X wins", 0.0: "draw", -1.0: "O wins"}[result])
    return result


def watch_board(agent, opts) -> list[float]:
    """Board games have no frames: the agent plays itself (or `opponent=`) in the terminal."""

    me = PolicyPlayer(agent.policy, "agent", greedy=opts["deterministic"], device=agent.device)
    other = me if opts["opponent"] == "self" else load_player(opts["opponent"], agent.cfg.env, seed=opts["seed"])
    torch.manual_seed(opts["seed"])
    game, results = Game(agent.cfg.env), []
    agent.check_game(game.observation_space.shape, game.num_actions, agent.cfg.env.game)
    for i in range(opts["episodes"]):
        game.reset(seed=opts["seed"] + i)
        players = (me, other) if i % 2 == 0 else (other, me)
        print(f"\ngame {i + 1}: X = {players[0].name}, O = {players[1].name}")
        score = board_game(game, players)
        results.append(score if players[0] is me else -score)  # from the agent's seat
    tally = "" if other is me else \
        f"; {results.count(1.0)} won, {results.count(0.0)} drawn, {results.count(-1.0)} lost"
    print(f"mean return {np.mean(results):g} over {len(results)} game(s) (the agent's result: +1 win, 0 draw, "
          f"-1 loss{tally})")
    return results


def main(argv: list[str]):
    opts, rest = command_options(argv, OPTIONS, CHOICES, ranges=RANGES, passthrough=True)
    if opts["agent"] == "random":
        agent = random_agent(rest)  # training's overrides name the game: env=NAME env.KEY=...
    elif rest:
        raise UsageError(f"unknown option {rest[0].partition('=')[0]!r}; valid: {', '.join(OPTIONS)} (agent=random "
                         f"also takes a game: env=NAME)")
    else:
        agent = load_agent(resolve(opts["agent"]), opts["device"])
    if agent.cfg.env.family == "board":
        return watch_board(agent, opts)
    scoring = str(opts["record"]).lower() == "none"  # returns only: no window, no frames, no video
    live = not scoring and (opts["window"] == "true" or opts["window"] == "auto" and opts["record"] is None
                            and video.has_display())
    record = None if live or scoring else \
        Path(opts["record"] or f"videos/{_label(agent)}__{time.strftime('%Y%m%d-%H%M%S')}.mp4")
    if record is not None:
        check_output(record)
    if not live:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # games that draw with pygame need no screen
    env = agent.make_env(render_mode="rgb_array")
    fps = opts["fps"] or video.game_fps(env)
    window = video.Window(f"rlkit: {_label(agent)}", fps) if live else None
    frames, returns = [], []
    try:
        for i in range(opts["episodes"]):
            ep = video.play(agent, env, seed=opts["seed"] + i, deterministic=opts["deterministic"],
                            render=not scoring, overlay=opts["overlay"], max_steps=opts["max_steps"],
                            on_frame=window.show if window else None)
            returns.append(ep.ret)
            print(f"episode {i + 1}: return {ep.ret:g}, length {ep.length} steps", flush=True)
            frames += ep.frames
            if ep.stopped:
                break  # the window was closed
    finally:
        env.close()
        if window:
            window.close()
    print(summary(returns))
    if record is not None:
        path = video.write(record, video.upscale(frames), fps)
        print(f"video: {path} ({len(frames)} frames at {fps:g} fps)")
    return returns


def check_output(record: Path) -> None:
    """The video file can be written: found out before any episode is played, not after."""
    if record.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"record={record}: the file must end in .mp4 or .gif, or record=none for no video")
    if record.is_dir():
        raise UsageError(f"record={record} is a folder; give a file name ending in .mp4 or .gif")
    existed = record.exists()
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "ab"):
            pass
    except OSError as e:
        raise UsageError(f"cannot write the video to {record}: {e.strerror}") from None
    if not existed:
        record.unlink()


def summary(returns) -> str:
    """The mean return, and over several episodes its 95% bootstrap interval and the lowest."""
    mean, lo, hi = bootstrap_ci(returns)
    line = f"mean return {mean:g} over {len(returns)} episode(s)"
    if len(returns) > 1:
        line += f", 95% bootstrap interval [{lo:.1f}, {hi:.1f}], lowest {min(returns):g}"
    return line


def _label(agent) -> str:
    path = agent.path
    if path is None:
        return f"random__{agent.cfg.env.name}"
    return path.parent.name if path.name == "agent.safetensors" else path.parent.parent.name


if __name__ == "__main__":
    cli(main)
