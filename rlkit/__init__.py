"""rlkit: reinforcement learning for game AI."""

__version__ = "0.1.0"


def load_agent(path, device: str = "cpu"):
    """Load a trained agent from a run folder or a checkpoint file (see `rlkit.agent`)."""
    from rlkit.agent import load_agent as _load

    return _load(path, device)
