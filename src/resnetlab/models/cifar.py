"""CIFAR-10 ResNets of Sec. 4.2: 6n+2 layers, 16/32/64 filters on 32/16/8 maps, option A shortcuts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from ..nn.blocks import BasicBlock
from ..nn.norm import NormLayer
from .registry import check_kwargs, in_family, keyword_args, register_family, register_model, takes, twin_hint
from .resnet import ResNet

WIDTHS = [16, 32, 64]
DEPTHS = (20, 32, 44, 56, 110, 1202)  # Table 6


def cifar_resnet(
    depth: int,
    residual: bool = True,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    zero_init_residual: bool = False,
    norm_layer: NormLayer = None,
    shortcut: str = "A",
    activation: str = "relu",
) -> ResNet:
    """Any depth 6n+2: a 3×3 conv, 3 stages of n basic blocks (2n layers each), then the fc layer.

    Sec. 4.2 uses identity shortcuts everywhere (option A) so that residual and plain nets
    have exactly the same number of parameters; ``num_classes`` defaults to CIFAR-10's 10.
    ``residual=False`` is the plain twin (Sec. 4.2, Fig. 6 left).
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise UsageError(
            f"invalid CIFAR depth {depth!r}: the depth must be 6n+2 with n >= 1 "
            f"(8, 14, 20, 26, 32, ...; the paper uses {', '.join(map(str, DEPTHS))})"
        )
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock, [n, n, n], WIDTHS, stem="cifar", residual=residual, num_classes=num_classes,
        in_channels=in_channels, zero_init_residual=zero_init_residual, norm_layer=norm_layer,
        shortcut=shortcut, activation=activation,
    )  # fmt: skip


_KEYWORDS = keyword_args(cifar_resnet)  # what a named CIFAR net takes: all but the two its name fixes


def _cifar(depth: int, residual: bool, kwargs: dict[str, Any]) -> ResNet:
    """A named CIFAR net: every argument of ``cifar_resnet`` but the two its name fixes."""
    name, twin = (f"resnet{depth}", f"plain{depth}") if residual else (f"plain{depth}", f"resnet{depth}")
    check_kwargs(name, kwargs, _KEYWORDS, {"residual": twin_hint(name, twin)})
    return cifar_resnet(depth, residual, **kwargs)


def _named(depth: int) -> Callable[[Callable[..., ResNet]], Callable[..., ResNet]]:
    """Register a CIFAR net of ``depth`` layers: in the family, taking ``_KEYWORDS``."""
    return lambda fn: register_model(in_family("cifar", depth)(takes(_KEYWORDS)(fn)))


@_named(20)
def resnet20(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-20 (Sec. 4.2, Table 6)."""
    return _cifar(20, True, kwargs)


@_named(32)
def resnet32(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-32 (Sec. 4.2, Table 6)."""
    return _cifar(32, True, kwargs)


@_named(44)
def resnet44(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-44 (Sec. 4.2, Table 6)."""
    return _cifar(44, True, kwargs)


@_named(56)
def resnet56(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-56 (Sec. 4.2, Table 6)."""
    return _cifar(56, True, kwargs)


@_named(110)
def resnet110(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-110 (Sec. 4.2, Table 6)."""
    return _cifar(110, True, kwargs)


@_named(1202)
def resnet1202(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-1202 (Sec. 4.2, Table 6)."""
    return _cifar(1202, True, kwargs)


@_named(20)
def plain20(**kwargs: Any) -> ResNet:
    """CIFAR plain net-20: ResNet-20 without shortcuts (Sec. 4.2, Fig. 6)."""
    return _cifar(20, False, kwargs)


@_named(32)
def plain32(**kwargs: Any) -> ResNet:
    """CIFAR plain net-32: ResNet-32 without shortcuts (Sec. 4.2, Fig. 6)."""
    return _cifar(32, False, kwargs)


@_named(44)
def plain44(**kwargs: Any) -> ResNet:
    """CIFAR plain net-44: ResNet-44 without shortcuts (Sec. 4.2, Fig. 6)."""
    return _cifar(44, False, kwargs)


@_named(56)
def plain56(**kwargs: Any) -> ResNet:
    """CIFAR plain net-56: ResNet-56 without shortcuts (Sec. 4.2, Fig. 6)."""
    return _cifar(56, False, kwargs)


@_named(110)
def plain110(**kwargs: Any) -> ResNet:
    """CIFAR plain net-110: ResNet-110 without shortcuts (Sec. 4.2, Fig. 6)."""
    return _cifar(110, False, kwargs)


def _resolve(name: str) -> Callable[..., ResNet] | None:
    """``resnet<d>`` / ``plain<d>`` for depths that are not registered: CIFAR nets when d = 6n+2."""
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if match is None:
        return None
    depth, residual = int(match.group(2)), match.group(1) == "resnet"
    if depth < 8 or (depth - 2) % 6:
        raise UsageError(
            f"unknown model {name!r}: ImageNet depths are 18, 34, 50, 101, 152 (plain: 18, 34); "
            f"CIFAR depths must be 6n+2 with n >= 1 (8, 14, 20, 26, ...; e.g. resnet20, resnet26)"
        )

    def build(**kwargs: Any) -> ResNet:
        return _cifar(depth, residual, kwargs)

    build.__name__ = build.__qualname__ = name
    return in_family("cifar", depth)(takes(_KEYWORDS)(build))


register_family(_resolve, "resnet<6n+2>/plain<6n+2> (any CIFAR depth, e.g. resnet26)")
