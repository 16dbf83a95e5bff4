"""Training: configuration, the loop, checkpoints, metrics."""

from .config import RECIPES, TrainConfig, make_config, resume_config
from .loop import NonFiniteLoss, TrainingInterrupted, fit
from .model_io import load_checkpoint

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
