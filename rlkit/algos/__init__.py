"""Learners share one signature: `update(policy, optimizer, batch, cfg) -> stats`."""
from rlkit.algos import alphazero, ppo, reinforce

ALGOS = {"ppo": ppo, "reinforce": reinforce, "alphazero": alphazero}
