"""resnetlab: residual networks and batch normalization, built from their papers."""

from .inspect import summary
from .version import __version__
from .models import (ResNet, cifar_resnet, create_model, list_models, plain18, plain20, plain32, plain34,
                     plain44, plain56, plain110, register_model, resnet18, resnet20, resnet32, resnet34, resnet44,
                     resnet50, resnet56, resnet101, resnet110, resnet152, resnet1202)
from .nn import BatchNorm1d, BatchNorm2d, fold_batchnorm, recalibrate_batchnorm
from .train import TrainConfig, fit, load_checkpoint, make_config



__all__ = [
    "__version__",
    "BatchNorm1d", "BatchNorm2d", "ResNet", "cifar_resnet", "create_model", "fold_batchnorm", "list_models",
    "recalibrate_batchnorm", "register_model", "summary", "TrainConfig", "fit", "load_checkpoint", "make_config",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plain18", "plain34",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
    "plain20", "plain32", "plain44", "plain56", "plain110",
]
