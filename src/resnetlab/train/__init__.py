"""Training: configuration, the loop and its hooks, checkpoints, metrics."""

from ..checkpoints import load_checkpoint
from .config import RECIPES, TrainConfig, make_config, resume_config
from .hooks import Hook, Step
from .loop import fit
from .state import NonFiniteLoss, TrainingInterrupted

__all__ = [
    "RECIPES",
    "Hook",
    "NonFiniteLoss",
    "Step",
    "TrainConfig",
    "TrainingInterrupted",
    "fit",
    "load_checkpoint",
    "make_config",
    "resume_config",
]
