"""What the other floors rely on of a model (``Classifier``), and what a run passes to every model it builds
(``run_model_kwargs``): written once, here, for training, checkpoints and shipped weights alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from torch import Tensor, nn

from ..errors import UsageError
from ..nn.norm import BatchNormOptions
from .registry import builder_takes

# Model arguments a run sets from its data and --norm; --model-arg may not set them.
RUN_MODEL_ARGS = {
    "num_classes": "the data's class count",
    "in_channels": "the data's channels",
    "norm_layer": "--norm",
    "input_size": "the data's image shape",
}


class Classifier(Protocol):
    """Every registered model: an image classifier whose last layer is ``fc`` (replaced to fine-tune on
    other classes), with the input it was designed for and its feature maps (for inspection and heads)."""

    default_input_size: tuple[int, int, int]  # (C, H, W): 224² for the ImageNet nets, 32² for CIFAR
    fc: nn.Linear

    def forward(self, x: Tensor) -> Tensor: ...
    def forward_features(self, x: Tensor) -> Tensor: ...  # the last feature map
    def forward_stages(self, x: Tensor) -> list[Tensor]: ...  # each stage's output


CLASSIFIER_MEMBERS = ("default_input_size", "fc", "forward_features", "forward_stages")


def as_classifier(model: nn.Module) -> Classifier:
    """``model`` as a ``Classifier``, or a TypeError naming what it lacks. Checked with ``hasattr``, not a
    runtime protocol's ``isinstance``: from Python 3.12 that reads attributes statically
    (``inspect.getattr_static``) and misses a module's submodules, ``fc`` among them."""
    missing = [name for name in CLASSIFIER_MEMBERS if not hasattr(model, name)]
    if missing:
        raise TypeError(f"{type(model).__name__} is not a resnetlab classifier (it has no {', '.join(missing)})")
    return cast(Classifier, model)


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    """The (C, H, W) input a registered model was designed for."""
    c, h, w = as_classifier(model).default_input_size
    return c, h, w


def check_model_args(model_args: Mapping[str, Any]) -> None:
    """``--model-arg`` may set any builder argument but those a run sets itself."""
    for key in model_args:
        if key in RUN_MODEL_ARGS:
            raise UsageError(f"--model-arg {key}: the run sets it from {RUN_MODEL_ARGS[key]}; drop it")


def run_model_kwargs(
    model: str, num_classes: int, in_channels: int, norm: str, input_shape: Sequence[int],
    model_args: Mapping[str, Any], bn: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments a run builds ``model`` with: its data's classes, channels and (for the models
    built for one input, the MLPs) image shape; ``--norm`` (``bn``: this project's batch norm, the
    builders' default; with ``bn``'s ``bn_ghost_size``/``bn_freeze_weight``, a run config's, its options);
    the user's ``model_args``, which may not set any of those."""
    check_model_args(model_args)
    bn = bn or {}
    options = BatchNormOptions(int(bn.get("bn_ghost_size") or 0), bool(bn.get("bn_freeze_weight")))
    norm_layer = (options if options != BatchNormOptions() else None) if norm == "bn" else norm
    return {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "norm_layer": norm_layer,
        **({"input_size": tuple(input_shape)} if builder_takes(model, "input_size") else {}),
        **model_args,
    }


def input_shape(meta: Mapping[str, Any]) -> tuple[int, int, int]:
    """The (C, H, W) a checkpoint's or a shipped file's model was trained on (recorded since ``input_size``
    exists; square ``image_size`` images before)."""
    c, h, w = meta.get("input_size") or (meta["in_channels"], meta["image_size"], meta["image_size"])
    return c, h, w


def model_kwargs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that rebuild the model a checkpoint or a shipped file describes (one written
    before ``model_args`` existed has none)."""
    config = meta.get("config", {})
    return run_model_kwargs(meta["model"], meta["num_classes"], meta["in_channels"], config.get("norm", "bn"),
                            input_shape(meta), config.get("model_args", {}), config)  # fmt: skip
