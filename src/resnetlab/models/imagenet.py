"""ImageNet ResNets of Table 1, with torchvision's builder names, arguments and state_dict keys.

Departures from the paper, as in torchvision: the bottleneck's stride sits on the 3×3 ("v1.5"),
set ``stride_in_1x1=True`` for the paper's placement; shortcuts default to option B (Sec. 3.3).
"""

from __future__ import annotations

from ..nn.blocks import BasicBlock, Bottleneck
from .registry import register_model
from .resnet import ResNet, check_kwargs

WIDTHS = [64, 128, 256, 512]  # conv2_x … conv5_x (Table 1)


def _imagenet(name: str, block, layers: list[int], kwargs: dict) -> ResNet:
    check_kwargs(name, kwargs)
    return ResNet(block, layers, WIDTHS, stem="imagenet", **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    return _imagenet("resnet18", BasicBlock, [2, 2, 2, 2], kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    return _imagenet("resnet34", BasicBlock, [3, 4, 6, 3], kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return _imagenet("resnet50", Bottleneck, [3, 4, 6, 3], kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    return _imagenet("resnet101", Bottleneck, [3, 4, 23, 3], kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    return _imagenet("resnet152", Bottleneck, [3, 8, 36, 3], kwargs)


@register_model
def plain18(**kwargs) -> ResNet:
    """The plain 18-layer twin of Table 2 / Fig. 4: resnet18 without shortcuts."""
    return _imagenet("plain18", BasicBlock, [2, 2, 2, 2], {"residual": False, **kwargs})


@register_model
def plain34(**kwargs) -> ResNet:
    """The plain 34-layer twin of Fig. 3 (middle): resnet34 without shortcuts."""
    return _imagenet("plain34", BasicBlock, [3, 4, 6, 3], {"residual": False, **kwargs})
