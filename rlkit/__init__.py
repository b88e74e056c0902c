"""rlkit: reinforcement learning for game AI."""

__version__ = "0.1.0"


def load_agent(path, device: str = "cpu", mcts: int = 0):
    """Load a trained agent from a run folder, a checkpoint file, an agent folder or an ONNX file;
    `mcts=N`: a board-game agent that searches N simulations per move (see `rlkit.agent`)."""
    from rlkit.agent import load_agent as _load

    return _load(path, device, mcts)
