"""One acting step of a policy for a batch of games (`act`), and the same step captured as a
CUDA graph (`GraphedAct`): what rlkit.rollout runs at every step of every rollout."""
from __future__ import annotations

import torch

from rlkit.nets import log_policy


def act(policy, obs, mask, gumbel, state, start):
    """Actions sampled with `gumbel` (minus Gumbel noise: Gumbel-max), their log-probabilities,
    the values of `obs` and the cores' next states."""
    logits, value, state = policy(obs, mask, state, start)
    action = (logits - gumbel).argmax(-1)
    return action, log_policy(logits).gather(-1, action[:, None]).squeeze(-1), value, state


class GraphedAct:
    """`act` for one batch size, captured once as a CUDA graph and replayed: inputs are copied
    into the graph's own buffers, and the outputs are its buffers, valid until the next call.
    The weights are read where they live, so updates made in place (the optimizer's, or
    AsyncCollector's copy) are seen. Replays give what `act` gives, bit for bit (tested on CUDA)."""

    def __init__(self, policy, obs, gumbel, state, start):
        self.obs, self.gumbel, self.state, self.start = obs.clone(), gumbel.clone(), state.clone(), start.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN and cuBLAS set themselves up
            for _ in range(3):
                act(policy, self.obs, None, self.gumbel, self.state, self.start)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):  # AsyncCollector's thread
            self.out = act(policy, self.obs, None, self.gumbel, self.state, self.start)

    def __call__(self, obs, gumbel, state, start):
        self.obs.copy_(obs)
        self.gumbel.copy_(gumbel)
        self.state.copy_(state)
        self.start.copy_(start)
        self.graph.replay()
        return self.out
