"""Model families and the registry; importing this module registers every builder."""

from . import cifar as _cifar
from .cifar import cifar_resnet
from .imagenet import plain18, plain34, resnet18, resnet34, resnet50, resnet101, resnet152
from .registry import create_model, default_input_size, list_models, model_forms, register_model
from .resnet import ResNet

resnet20, resnet32, resnet44, resnet56 = _cifar.resnet20, _cifar.resnet32, _cifar.resnet44, _cifar.resnet56
resnet110, resnet1202 = _cifar.resnet110, _cifar.resnet1202
plain20, plain32, plain44, plain56, plain110 = (
    _cifar.plain20,
    _cifar.plain32,
    _cifar.plain44,
    _cifar.plain56,
    _cifar.plain110,
)

__all__ = [
    "ResNet",
    "cifar_resnet",
    "create_model",
    "default_input_size",
    "list_models",
    "model_forms",
    "register_model",
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
