"""The symmetries of board games, in one place: PPO's augmentation (`env.selfplay.augment`),
algo=alphazero's mirror images and a policy averaged over them (`symmetric=true`)."""
from __future__ import annotations

import torch

from rlkit.errors import UsageError
from rlkit.nets import Memoryless, logp_entropy_value
from rlkit.rollout import PER_ENV


class BoardSymmetries:
    """The symmetries of a board game, as maps of observations and moves. Connect Four (moves are
    columns, and gravity rules out turning the board): the mirror image. Tic-tac-toe and Go
    (moves are cells, row-major; Go's pass, the last move, stays): the 8 rotations and
    reflections. Observations are [B, H, W, planes], as PettingZoo gives them. `views[0]` is the
    identity; for each view, `maps` holds (came_from, goes_to): came_from[image's move] = the
    position's own move, goes_to[own move] = the image's move."""

    def __init__(self, game: str, board_shape, num_actions: int):
        h, w = board_shape[:2]
        if game == "connect_four":
            grid, views = torch.arange(w).expand(h, w), [(0, False), (0, True)]
        elif game in ("tictactoe", "go"):
            grid, views = torch.arange(h * w).view(h, w), [(k, f) for f in (False, True) for k in range(4)]
        else:
            raise UsageError(f"the symmetries of connect_four, tictactoe and go are known, not {game}'s")
        self.views, self.maps = views, []
        for view in views:
            moved = self.view(grid[None, :, :, None], *view)[0, :, :, 0]  # moved[cell] = the move that landed there
            came_from = moved[0] if game == "connect_four" else moved.flatten()
            came_from = torch.cat([came_from, torch.arange(len(came_from), num_actions)])  # moves off the board stay
            self.maps.append((came_from, torch.argsort(came_from)))

    @staticmethod
    def view(obs, turns: int, mirror: bool):
        return torch.rot90(obs.flip(2) if mirror else obs, turns, (1, 2))

    @torch.inference_mode()
    def augment(self, policy, batch: dict, generator=None) -> dict:
        """`env.selfplay.augment=true`: a rollout batch ([T, N, ...] tensors, as Rollout.collect
        gives them) and beside it, as N more columns, its image under one symmetry per column
        (other than the identity; chosen at random for tic-tac-toe and Go): boards, moves, masks
        and next boards mapped; rewards, dones and values, so advantages too, copied, since it is
        the same game seen another way.

        The acting policy did not play the images, so they go to PPO as decoupled samples:
        `logprobs` stay the acting policy's for the move actually played (the behaviour), and
        `prox_logprobs` are `policy`'s for the image's move in the image's position, taken here,
        before the update; the originals keep theirs, or their own logprobs (a weight of exactly 1).
        A symmetric policy gets a weight of 1 on every image too (tested)."""
        device = batch["actions"].device
        T, n = batch["actions"].shape
        chosen = torch.randint(1, len(self.views), (n,), generator=generator).to(device)
        parts, order = {}, []
        for v in range(1, len(self.views)):
            cols = (chosen == v).nonzero().flatten()
            if not len(cols):
                continue
            came_from, goes_to = (m.to(device) for m in self.maps[v])
            order.append(cols)
            obs = batch["obs"][:, cols]
            image = {"obs": self.view(obs.flatten(0, 1), *self.views[v]).reshape(obs.shape),
                     "actions": goes_to[batch["actions"][:, cols]],
                     "next_obs": self.view(batch["next_obs"][cols], *self.views[v])}
            if "masks" in batch:
                image["masks"] = batch["masks"][:, cols][..., came_from]
                image["next_mask"] = batch["next_mask"][cols][..., came_from]
            for k, x in image.items():
                parts.setdefault(k, []).append(x)
        order = torch.cat(order)
        image = {k: torch.cat(x, dim=0 if k in PER_ENV else 1) for k, x in parts.items()}
        image.update({k: batch[k][..., order] for k in ("rewards", "dones", "values", "logprobs", "last_value")})
        masks = image["masks"].flatten(0, 1) if "masks" in image else None
        prox, _, _ = logp_entropy_value(policy, image["obs"].flatten(0, 1), image["actions"].flatten(), masks)
        image["prox_logprobs"] = prox.view(T, n)
        own = {**batch, "prox_logprobs": batch.get("prox_logprobs", batch["logprobs"])}
        return {k: torch.cat([own[k], x], dim=0 if k in PER_ENV else 1) for k, x in image.items()}


class Symmetric(Memoryless, torch.nn.Module):
    """A board-game policy averaged over the board's symmetries (BoardSymmetries): the network
    sees every symmetric image of the position, each image's move logits are mapped back to the
    position's own moves, and logits and values are averaged (a geometric mean of the policies),
    so that what the network learned on one side of the board counts on the other (what it gives
    against alpha-beta, from the empty board and from random openings: BENCHMARKS.md)."""

    def __init__(self, policy, game: str, board_shape, num_actions: int):
        super().__init__()
        self.policy, self.symmetries = policy, BoardSymmetries(game, board_shape, num_actions)

    def forward(self, obs, action_mask=None):
        logits = values = 0
        sym = self.symmetries
        for view, (came_from, goes_to) in zip(sym.views, sym.maps):
            image_mask = None if action_mask is None else action_mask[:, came_from]
            image_logits, value = self.policy(sym.view(obs, *view), image_mask)
            logits, values = logits + image_logits[:, goes_to], values + value
        return logits / len(sym.views), values / len(sym.views)
