"""resnetlab: residual networks and batch normalization, built from their papers.

``import resnetlab`` loads the models, layers, inspection and checkpoint loading only; the training
names (``fit``, ``TrainConfig``, ``make_config``) load on first use, so inference never imports the trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .checkpoints import load_checkpoint
from .inspect import summary
from .models import (
    MLPResNet,
    ResNet,
    cifar_resnet,
    create_model,
    list_models,
    mlp_resnet,
    plain18,
    plain20,
    plain32,
    plain34,
    plain44,
    plain56,
    plain110,
    register_model,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet44,
    resnet50,
    resnet56,
    resnet101,
    resnet110,
    resnet152,
    resnet1202,
)
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
    "MLPResNet",
    "Predictor",
    "ResNet",
    "cifar_resnet",
    "create_model",
    "fold_batchnorm",
    "list_models",
    "mlp_resnet",
    "recalibrate_batchnorm",
    "register_model",
    "summary",
    "TrainConfig",
    "fit",
    "load_checkpoint",
    "make_config",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
]
