"""Residual MLPs: the fully connected residual block of the course notes stacked through depth,
and their plain twins, for the degradation experiment without convolutions."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..nn.blocks import LinearBlock, make_activation, make_norm
from ..nn.norm import NormLayer, get_norm
from .registry import check_kwargs, in_family, keyword_args, register_family, twin_hint


class MLPResNet(nn.Module):
    """Flatten → input layer ``Linear(C·H·W, width)`` + norm + g → n ``LinearBlock``s → ``fc``.

    Depth counts weight layers as the paper does: the input layer, two per block and the classifier,
    so depth = 2n + 2 (residual shortcuts that project are not counted, as in Sec. 4.2).
    """

    def __init__(
        self,
        depth: int,
        *,
        width: int = 256,
        num_classes: int = 10,
        input_size: tuple[int, ...] = (3, 32, 32),
        in_channels: int | None = None,
        residual: bool = True,
        shortcut: str = "B",
        norm_layer: NormLayer = None,
        activation: str = "relu",
    ):
        super().__init__()
        if not isinstance(depth, int) or depth < 4 or depth % 2:
            raise UsageError(
                f"invalid MLP depth {depth!r}: the depth must be 2n+2 with n >= 1 blocks (4, 6, 8, ...: "
                "an input layer, two layers per block, the classifier)"
            )
        input_size = tuple(input_size)
        if in_channels is not None:  # a run passes its data's channels; they replace the first size
            input_size = (in_channels, *input_size[1:])
        for name, value in (("width", width), ("num_classes", num_classes), *(("input_size", s) for s in input_size)):
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        self.default_input_size = input_size
        self.input_layer = nn.Linear(math.prod(input_size), width, bias=get_norm(norm_layer, 1) is None)
        self.bn1 = make_norm(norm_layer, width, dim=1)
        self.act = make_activation(activation)
        block: dict[str, Any] = dict(residual=residual, shortcut=shortcut, norm_layer=norm_layer, activation=activation)
        self.layers = nn.Sequential(*(LinearBlock(width, width, **block) for _ in range((depth - 2) // 2)))
        self.num_features = width
        self.fc = nn.Linear(width, num_classes)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The activation after the input layer and after each block: a[1], a[3], ..., a[L]."""
        a = self.act(self.bn1(self.input_layer(torch.flatten(x, 1))))
        outputs = [a]
        for block in self.layers:
            a = block(a)
            outputs.append(a)
        return outputs

    def forward_features(self, x: Tensor) -> Tensor:
        """The last hidden activation a[L], before the classifier."""
        return self.layers(self.act(self.bn1(self.input_layer(torch.flatten(x, 1)))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


def mlp_resnet(depth: int, residual: bool = True, **kwargs: Any) -> MLPResNet:
    """A residual MLP of ``depth`` = 2n+2 weight layers (``residual=False``: its plain twin); keyword
    arguments as ``MLPResNet`` (``width=256``, ``num_classes=10``, ``input_size=(3, 32, 32)``, ...)."""
    return MLPResNet(depth, residual=residual, **kwargs)


_ARGS = keyword_args(MLPResNet)


def _resolve(name: str) -> Callable[..., MLPResNet] | None:
    """``mlp_resnet<d>`` / ``mlp_plain<d>`` for any d = 2n+2 >= 4."""
    match = re.fullmatch(r"mlp_(resnet|plain)(\d+)", name)
    if match is None:
        return None
    depth, residual = int(match.group(2)), match.group(1) == "resnet"
    if depth < 4 or depth % 2:
        raise UsageError(
            f"unknown model {name!r}: MLP depths must be 2n+2 with n >= 1 (4, 6, 8, ...; e.g. mlp_resnet20 "
            "has 9 blocks)"
        )
    twin = f"mlp_plain{depth}" if residual else f"mlp_resnet{depth}"
    valid = [k for k in _ARGS if k != "residual"]

    def build(**kwargs: Any) -> MLPResNet:
        check_kwargs(name, kwargs, valid, {"residual": twin_hint(name, twin)})
        return MLPResNet(depth, residual=residual, **kwargs)

    build.__name__ = build.__qualname__ = name
    params = inspect.signature(MLPResNet).parameters
    build.__signature__ = inspect.Signature([params[k] for k in valid])  # type: ignore[attr-defined]
    return in_family("mlp", depth)(build)


register_family(_resolve, "mlp_resnet<2n+2>/mlp_plain<2n+2> (residual MLPs and plain twins, e.g. mlp_resnet20)")
