"""Model families and the registry; importing this module registers every builder."""

from .cifar import (
    cifar_resnet,
    plain20,
    plain32,
    plain44,
    plain56,
    plain110,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    resnet1202,
)
from .imagenet import plain18, plain34, resnet18, resnet34, resnet50, resnet101, resnet152
from .mlp import MLPResNet, mlp_resnet
from .registry import (
    builder_takes,
    create_model,
    default_input_size,
    list_models,
    model_family,
    model_forms,
    register_model,
)
from .resnet import ResNet

__all__ = [
    "MLPResNet",
    "ResNet",
    "builder_takes",
    "cifar_resnet",
    "create_model",
    "default_input_size",
    "list_models",
    "model_family",
    "mlp_resnet",
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
