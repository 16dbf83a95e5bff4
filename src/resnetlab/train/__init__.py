"""Training: configuration, the loop, checkpoints, metrics."""

from ..checkpoints import load_checkpoint
from .config import RECIPES, TrainConfig, make_config, resume_config
from .loop import NonFiniteLoss, TrainingInterrupted, fit

__all__ = [
    "RECIPES",
    "NonFiniteLoss",
    "TrainConfig",
    "TrainingInterrupted",
    "fit",
    "load_checkpoint",
    "make_config",
    "resume_config",
]
