"""Model families, the registry and the model interface; importing this module registers every builder."""

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
from .create import create_model
from .imagenet import plain18, plain34, resnet18, resnet34, resnet50, resnet101, resnet152
from .interface import (
    Classifier,
    as_classifier,
    check_model_args,
    default_input_size,
    input_shape,
    model_kwargs,
    run_model_kwargs,
)
from .mlp import MLPResNet, mlp_resnet
from .registry import builder_takes, has_model, list_models, model_family, model_forms, register_model
from .resnet import ResNet
from .resnet9 import ResNet9, resnet9

__all__ = [
    "Classifier",
    "MLPResNet",
    "ResNet",
    "ResNet9",
    "as_classifier",
    "builder_takes",
    "check_model_args",
    "cifar_resnet",
    "create_model",
    "default_input_size",
    "has_model",
    "input_shape",
    "list_models",
    "model_family",
    "mlp_resnet",
    "model_forms",
    "model_kwargs",
    "run_model_kwargs",
    "register_model",
    "resnet9",
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
