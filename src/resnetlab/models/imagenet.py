"""ImageNet ResNets of Table 1, with torchvision's builder names, arguments and state_dict keys.

Departures from the paper, as in torchvision: the bottleneck's stride sits on the 3×3 ("v1.5"),
set ``stride_in_1x1=True`` for the paper's placement; shortcuts default to option B (Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..nn.blocks import BasicBlock, Bottleneck
from .registry import check_kwargs, keyword_args, register_model, takes, twin_hint
from .resnet import ResNet

WIDTHS = [64, 128, 256, 512]  # conv2_x … conv5_x (Table 1)


def _imagenet(
    name: str,
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    kwargs: dict[str, Any],
    residual: bool = True,
    twin: str | None = None,
) -> ResNet:
    """A named ImageNet net: every keyword of ``ResNet`` but the stem and ``residual``, which its name
    fixes, and ``stride_in_1x1``, which only bottleneck blocks have."""
    fixed = {"residual": twin_hint(name, twin), "stem": f"{name} has the ImageNet stem"}
    if block is BasicBlock:
        fixed["stride_in_1x1"] = "stride_in_1x1 applies to bottleneck networks (resnet50/101/152) only"
    check_kwargs(name, kwargs, _keywords(block), fixed)
    return ResNet(block, layers, WIDTHS, stem="imagenet", residual=residual, **kwargs)


def _keywords(block: type[BasicBlock | Bottleneck]) -> list[str]:
    """What a named ImageNet net takes: the keywords of ``ResNet`` but ``residual`` and ``stem``, and
    ``stride_in_1x1`` for bottleneck nets only."""
    fixed = ("residual", "stem") if block is Bottleneck else ("residual", "stem", "stride_in_1x1")
    return [k for k in keyword_args(ResNet) if k not in fixed]


def _named(block: type[BasicBlock | Bottleneck]) -> Callable[[Callable[..., ResNet]], Callable[..., ResNet]]:
    return lambda fn: register_model(takes(_keywords(block))(fn))


@_named(BasicBlock)
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (Table 1)."""
    return _imagenet("resnet18", BasicBlock, [2, 2, 2, 2], kwargs, twin="plain18")


@_named(BasicBlock)
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (Table 1)."""
    return _imagenet("resnet34", BasicBlock, [3, 4, 6, 3], kwargs, twin="plain34")


@_named(Bottleneck)
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (Table 1): bottleneck blocks."""
    return _imagenet("resnet50", Bottleneck, [3, 4, 6, 3], kwargs)


@_named(Bottleneck)
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (Table 1)."""
    return _imagenet("resnet101", Bottleneck, [3, 4, 23, 3], kwargs)


@_named(Bottleneck)
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (Table 1)."""
    return _imagenet("resnet152", Bottleneck, [3, 8, 36, 3], kwargs)


@_named(BasicBlock)
def plain18(**kwargs: Any) -> ResNet:
    """The plain 18-layer twin of Table 2 / Fig. 4: resnet18 without shortcuts."""
    return _imagenet("plain18", BasicBlock, [2, 2, 2, 2], kwargs, residual=False, twin="resnet18")


@_named(BasicBlock)
def plain34(**kwargs: Any) -> ResNet:
    """The plain 34-layer twin of Fig. 3 (middle): resnet34 without shortcuts."""
    return _imagenet("plain34", BasicBlock, [3, 4, 6, 3], kwargs, residual=False, twin="resnet34")
