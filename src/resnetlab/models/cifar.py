"""CIFAR-10 ResNets of Sec. 4.2: 6n+2 layers, 16/32/64 filters on 32/16/8 maps, option A shortcuts."""

from __future__ import annotations

import re
from functools import partial

from ..nn.blocks import BasicBlock
from .registry import register_family, register_model
from .resnet import ResNet, check_kwargs

WIDTHS = [16, 32, 64]
DEPTHS = (20, 32, 44, 56, 110, 1202)  # Table 6


def cifar_resnet(depth: int, residual: bool = True, **kwargs) -> ResNet:
    """Any depth 6n+2: a 3×3 conv, 3 stages of n basic blocks (2n layers each), then the fc layer.

    Sec. 4.2 uses identity shortcuts everywhere (option A) so that residual and plain nets
    have exactly the same number of parameters; ``num_classes`` defaults to CIFAR-10's 10.
    """
    name = f"{'resnet' if residual else 'plain'}{depth}"
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"invalid CIFAR depth {depth!r}: the depth must be 6n+2 with n >= 1 "
            f"(8, 14, 20, 26, 32, ...; the paper uses {', '.join(map(str, DEPTHS))})"
        )
    check_kwargs(name, kwargs)
    kwargs = {"num_classes": 10, "shortcut": "A", **kwargs}
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], WIDTHS, stem="cifar", residual=residual, **kwargs)


@register_model
def resnet20(**kwargs) -> ResNet:
    """CIFAR ResNet-20 (Sec. 4.2, Table 6)."""
    return cifar_resnet(20, residual=True, **kwargs)


@register_model
def resnet32(**kwargs) -> ResNet:
    """CIFAR ResNet-32 (Sec. 4.2, Table 6)."""
    return cifar_resnet(32, residual=True, **kwargs)


@register_model
def resnet44(**kwargs) -> ResNet:
    """CIFAR ResNet-44 (Sec. 4.2, Table 6)."""
    return cifar_resnet(44, residual=True, **kwargs)


@register_model
def resnet56(**kwargs) -> ResNet:
    """CIFAR ResNet-56 (Sec. 4.2, Table 6)."""
    return cifar_resnet(56, residual=True, **kwargs)


@register_model
def resnet110(**kwargs) -> ResNet:
    """CIFAR ResNet-110 (Sec. 4.2, Table 6)."""
    return cifar_resnet(110, residual=True, **kwargs)


@register_model
def resnet1202(**kwargs) -> ResNet:
    """CIFAR ResNet-1202 (Sec. 4.2, Table 6)."""
    return cifar_resnet(1202, residual=True, **kwargs)


@register_model
def plain20(**kwargs) -> ResNet:
    """CIFAR plain net-20: ResNet-20 without shortcuts (Sec. 4.2, Fig. 6)."""
    return cifar_resnet(20, residual=False, **kwargs)


@register_model
def plain32(**kwargs) -> ResNet:
    """CIFAR plain net-32: ResNet-32 without shortcuts (Sec. 4.2, Fig. 6)."""
    return cifar_resnet(32, residual=False, **kwargs)


@register_model
def plain44(**kwargs) -> ResNet:
    """CIFAR plain net-44: ResNet-44 without shortcuts (Sec. 4.2, Fig. 6)."""
    return cifar_resnet(44, residual=False, **kwargs)


@register_model
def plain56(**kwargs) -> ResNet:
    """CIFAR plain net-56: ResNet-56 without shortcuts (Sec. 4.2, Fig. 6)."""
    return cifar_resnet(56, residual=False, **kwargs)


@register_model
def plain110(**kwargs) -> ResNet:
    """CIFAR plain net-110: ResNet-110 without shortcuts (Sec. 4.2, Fig. 6)."""
    return cifar_resnet(110, residual=False, **kwargs)


def _resolve(name: str):
    """``resnet<d>`` / ``plain<d>`` for depths that are not registered: CIFAR nets when d = 6n+2."""
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if match is None:
        return None
    depth = int(match.group(2))
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"unknown model {name!r}: ImageNet depths are 18, 34, 50, 101, 152 (plain: 18, 34); "
            f"CIFAR depths must be 6n+2 with n >= 1 (8, 14, 20, 26, ...; e.g. resnet20, resnet26)"
        )
    return partial(cifar_resnet, depth, match.group(1) == "resnet")


register_family(_resolve)
