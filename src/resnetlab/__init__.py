"""resnetlab: residual networks and batch normalization, built from their papers.

``import resnetlab`` loads the models, layers, inspection and checkpoint loading only; the training
names (``fit``, ``TrainConfig``, ``make_config``) load on first use, so inference never imports the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import models
from .checkpoints import load_checkpoint
from .errors import UsageError
from .inspect import summary
from .models import *  # noqa: F403 -- every builder and the registry (models.__all__)
from .nn import BatchNorm1d, BatchNorm2d, fold_batchnorm, recalibrate_batchnorm
from .version import __version__

if TYPE_CHECKING:
    from .deploy import Predictor
    from .train import TrainConfig, fit, make_config

_LAZY = {"TrainConfig": "train", "fit": "train", "make_config": "train", "Predictor": "deploy"}


def __getattr__(name: str) -> Any:
    """Training and deployment names, imported when first used (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'resnetlab' has no attribute {name!r}")


__all__ = [
    "__version__",
    "BatchNorm1d",
    "BatchNorm2d",
    "Predictor",
    "fold_batchnorm",
    "recalibrate_batchnorm",
    "summary",
    "UsageError",
    "TrainConfig",
    "fit",
    "load_checkpoint",
    "make_config",
]
__all__ += models.__all__
