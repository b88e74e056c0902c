"""Play an agent's episodes and turn their frames into something to look at: an MP4 or GIF
file, a live window, or a TensorBoard video. Used by `rlkit.watch` and by training's periodic
evaluation videos."""
from __future__ import annotations

import io
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rlkit.agent import Agent
from rlkit.envs import backend, make_env
from rlkit.errors import UsageError

PANEL_WIDTH = 170  # pixels of the overlay panel right of the frame


@dataclass
class Episode:
    ret: float = 0.0       # the game's own score (below any reward scaling or clipping)
    length: int = 0        # agent steps
    frames: list = field(default_factory=list)
    stopped: bool = False  # `on_frame` asked to stop (the window was closed)


def action_names(env) -> list[str]:
    base, n = env.unwrapped, int(env.action_space.n)
    if hasattr(base, "get_action_meanings"):  # Atari
        return list(base.get_action_meanings())
    if hasattr(base, "action_names"):  # ViZDoom: buttons, or combinations of them
        return list(base.action_names)
    return [str(i) for i in range(n)]


def game_fps(env) -> float:
    """Agent steps per second at the game's own speed (its frame rate over the frame skip)."""
    try:
        skip = int(env.get_wrapper_attr("frame_skip"))  # ViZDoom's env, Atari's preprocessing
    except AttributeError:
        skip = 1
    return float(env.metadata.get("render_fps") or 30) / max(1, skip)


def play(agent, env, seed: int, deterministic: bool = False, render: bool = True, overlay: bool = False,
         max_steps: int = 100_000, on_frame=None) -> Episode:
    """One whole game. Lives lost (Atari's episodic-life wrapper) do not end it: the game's own
    end does (`info["episode"]`), or `max_steps`. `on_frame(frame) -> bool` may stop it early.
    Sampling uses its own generator (from `seed`), so playing never shifts training's RNG."""
    names = action_names(env) if overlay else None
    rng = np.random.default_rng(seed)
    episode, ret = Episode(), 0.0
    obs, info = env.reset(seed=seed)
    agent.reset()
    while True:
        probs, value = agent.observe(obs, info.get("action_mask"))  # memory: one observation per step
        if render:
            frame = _frame(env, probs, value, names)
            episode.frames.append(frame)
            if on_frame is not None and on_frame(frame) is False:
                episode.stopped = True
                return episode
        action = int(probs.argmax()) if deterministic else int(rng.choice(len(probs), p=probs))
        obs, reward, terminated, truncated, info = env.step(action)
        ret += float(reward)
        episode.length += 1
        if "episode" in info:  # the game itself is over
            episode.ret = float(info["episode"]["r"])
            break
        if episode.length >= max_steps:
            episode.ret = ret
            break
        if terminated or truncated:  # a life lost: the game goes on from the next reset
            obs, info = env.reset()
    if render:
        last = _frame(env, probs, value, names)
        episode.frames.append(last)
        if on_frame is not None:
            on_frame(last)
    return episode


def _frame(env, probs, value, names) -> np.ndarray:
    frame = env.render()
    if frame is None:
        raise UsageError("this env draws no frames (render_mode rgb_array gave None)")
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    return frame if names is None else draw_overlay(frame, probs, value, names)


def draw_overlay(frame: np.ndarray, probs: np.ndarray, value: float, names: list[str]) -> np.ndarray:
    """The frame with a panel on its right: the value estimate and one bar per action."""
    h = max(frame.shape[0], 24 + 16 * len(probs))
    out = np.zeros((h, frame.shape[1] + PANEL_WIDTH, 3), np.uint8)
    out[: frame.shape[0], : frame.shape[1]] = frame
    x0, font = frame.shape[1] + 6, cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, f"value {value:+.2f}", (x0, 14), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    best = int(np.argmax(probs))
    for i, (p, name) in enumerate(zip(probs, names)):
        y = 24 + 16 * i
        color = (80, 220, 80) if i == best else (200, 200, 200)
        cv2.rectangle(out, (x0, y), (x0 + int(70 * float(p)), y + 11), color, -1)
        cv2.putText(out, f"{name[:11]} {p:.2f}", (x0 + 72, y + 10), font, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def upscale(frames: list[np.ndarray], min_height: int = 240) -> list[np.ndarray]:
    """Small game screens (Doom's 120 rows) scaled up by a whole factor, pixels kept sharp."""
    k = max(1, math.ceil(min_height / frames[0].shape[0])) if frames else 1
    return frames if k == 1 else [cv2.resize(f, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST) for f in frames]


def write(path, frames: list[np.ndarray], fps: float) -> Path:
    """MP4 (H.264, through imageio's ffmpeg) or GIF, chosen by the file's extension."""
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"record={path}: the file must end in .mp4 or .gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = _even(frames)
    if path.suffix.lower() == ".gif":
        path.write_bytes(gif_bytes(frames, fps))
    else:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                ffmpeg_log_level="error", pixelformat="yuv420p") as writer:
            for f in frames:
                writer.append_data(f)
    return path


def _even(frames):
    """H.264 in yuv420p wants even sizes: pad a row/column of black where needed."""
    h, w = frames[0].shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0))) for f in frames]


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)
    return buffer.getvalue()


def to_tensorboard(writer, tag: str, frames: list[np.ndarray], step: int, fps: float) -> None:
    """An animated GIF in TensorBoard's Images tab (what `add_video` writes, without moviepy)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    h, w = frames[0].shape[:2]
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class EvalVideo:
    """Training's periodic evaluation: one game of the current policy, as a TensorBoard video
    (`eval/video`) with its return and length (`eval/return`, `eval/length`)."""

    def __init__(self, policy, cfg, device):

        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        self.agent = Agent(policy, cfg, device)
        if backend(cfg.env) == "envpool":  # ale_py cannot share a process with EnvPool
            from rlkit.envs.atari import EnvPoolSingle

            self.env = EnvPoolSingle(cfg.env, cfg.seed)
        else:
            self.env = make_env(cfg.env, render_mode="rgb_array")
        self.max_steps, self.seed = cfg.video_length, cfg.seed

    def log(self, writer, step: int) -> Episode:
        ep = play(self.agent, self.env, seed=self.seed + step, max_steps=self.max_steps)
        to_tensorboard(writer, "eval/video", ep.frames, step, game_fps(self.env))
        writer.add_scalar("eval/return", ep.ret, step)
        writer.add_scalar("eval/length", ep.length, step)
        return ep

    def close(self) -> None:
        self.env.close()


def has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Window:
    """A live pygame window at the game's speed. Keys: space pause, right arrow one step while
    paused, + / - twice or half the speed, q or Esc quit."""

    def __init__(self, title: str, fps: float):
        import pygame

        self.pygame, self.fps, self.paused, self.screen = pygame, fps, False, None
        pygame.init()
        pygame.display.set_caption(title)
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray) -> bool:
        """Draw one frame; False when the user closed the window."""
        pg = self.pygame
        if self.screen is None:
            self.screen = pg.display.set_mode((frame.shape[1], frame.shape[0]))
        self.screen.blit(pg.surfarray.make_surface(frame.swapaxes(0, 1)), (0, 0))
        pg.display.flip()
        while True:
            step = False
            for event in pg.event.get():
                if event.type == pg.QUIT or event.type == pg.KEYDOWN and event.key in (pg.K_q, pg.K_ESCAPE):
                    return False
                if event.type == pg.KEYDOWN:
                    if event.key == pg.K_SPACE:
                        self.paused = not self.paused
                    elif event.key == pg.K_RIGHT:
                        step = True
                    elif event.key in (pg.K_PLUS, pg.K_EQUALS, pg.K_KP_PLUS):
                        self.fps *= 2
                    elif event.key in (pg.K_MINUS, pg.K_KP_MINUS):
                        self.fps = max(1.0, self.fps / 2)
            if not self.paused or step:
                self.clock.tick(self.fps)
                return True
            time.sleep(0.02)

    def close(self) -> None:
        self.pygame.quit()
