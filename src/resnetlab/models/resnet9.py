"""ResNet-9 of the CIFAR-10 speed records: David Page's DAWNBench network ("How to train your ResNet",
Myrtle.ai, 2018), 94% in 26 s on one V100. A prep convolution of 64 channels, then stages of 128, 256 and 512
channels, each a convolution, batch norm and activation followed by 2×2 max-pooling, with a residual block of
two such convolutions after the first and the third stage; global max-pooling and a linear classifier whose
output is scaled by 0.125. 6.57 M parameters, 0.379 G multiply-adds per 32×32 image at full width."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..nn.blocks import conv, make_activation, make_norm
from ..nn.norm import NormLayer
from ..nn.whitening import PatchWhitening
from .registry import keyword_args, register_model, takes

WIDTHS = (64, 128, 256, 512)


class ConvBN(nn.Sequential):
    """conv 3×3 → BN → activation, with 2×2 max-pooling after it (``pool``); ``pool_before_bn``: conv → pool →
    BN → activation, Page's later order (the same function up to the pooling of BN's affine map, on a quarter of
    the positions)."""

    def __init__(self, cin: int, cout: int, norm_layer: NormLayer, activation: str, pool: bool = False,
                 pool_before_bn: bool = False):  # fmt: skip
        layers: list[nn.Module] = [conv(cin, cout, 3, norm_layer=norm_layer)]
        if pool and pool_before_bn:
            layers.append(nn.MaxPool2d(2))
        layers += [make_norm(norm_layer, cout), make_activation(activation)]
        if pool and not pool_before_bn:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class Residual(nn.Module):
    """Page's residual block: x + act(BN(conv(act(BN(conv(x)))))), the input added after the second activation
    and nothing after the sum (``BasicBlock`` applies its activation after the sum: act(BN(conv(...)) + x))."""

    def __init__(self, channels: int, norm_layer: NormLayer, activation: str):
        super().__init__()
        self.res1 = ConvBN(channels, channels, norm_layer, activation)
        self.res2 = ConvBN(channels, channels, norm_layer, activation)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res2(self.res1(x))


class ResNet9(nn.Module):
    """``widths``: the prep layer's and the three stages' channels (default Page's 64-128-256-512; airbench
    puts more of them in the late, low-resolution stages, where they cost little); ``width`` scales them (0.5:
    32, 64, 128, 256 channels); ``scale`` multiplies the logits (Page:
    0.125); ``pool_before_bn`` (default False, the DAWNBench order: conv → BN → activation → pool); ``whiten``
    (0: off; 2 or 3: the patch size of a frozen whitening convolution before the prep layer); ``whiten_signed``
    (airbench's whitening layer, Jordan 2024: each component and its negative, a trained bias, then the
    activation; twice the prep layer's input channels); ``identity_init`` (airbench's partial identity
    initialization, Jordan 2024, Sec. 3.3: each 3×3 convolution starts as the identity on its first
    min(in, out) output channels, the others as PyTorch's default)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        widths: tuple[int, int, int, int] = WIDTHS,
        norm_layer: NormLayer = None,
        activation: str = "relu",
        pool_before_bn: bool = False,
        scale: float = 0.125,
        whiten: int = 0,
        whiten_signed: bool = False,
        identity_init: bool = False,
    ):
        super().__init__()
        if not isinstance(width, (int, float)) or width <= 0:
            raise UsageError(f"resnet9: width must be a positive number (1.0: 64-128-256-512 channels), got {width!r}")
        if len(widths) != 4 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise UsageError(f"resnet9: widths must be 4 positive integers (prep, stages 1-3), got {widths!r}")
        c0, c1, c2, c3 = (max(1, round(w * width)) for w in widths)
        self.default_input_size = (in_channels, 32, 32)
        self.scale = scale
        # whiten=k: a frozen k×k patch-whitening convolution first (nn/whitening.py), set from the training images
        if whiten_signed and not whiten:
            raise UsageError("resnet9: whiten_signed is a form of the whitening layer: give whiten=2 or 3 with it")
        self.whiten = PatchWhitening(in_channels, whiten, signed=whiten_signed) if whiten else None
        self.whiten_act = make_activation(activation) if whiten_signed else nn.Identity()
        self.prep = ConvBN(self.whiten.out_channels if self.whiten else in_channels, c0, norm_layer, activation)
        self.layer1 = nn.Sequential(
            ConvBN(c0, c1, norm_layer, activation, pool=True, pool_before_bn=pool_before_bn),
            Residual(c1, norm_layer, activation),
        )
        self.layer2 = ConvBN(c1, c2, norm_layer, activation, pool=True, pool_before_bn=pool_before_bn)
        self.layer3 = nn.Sequential(
            ConvBN(c2, c3, norm_layer, activation, pool=True, pool_before_bn=pool_before_bn),
            Residual(c3, norm_layer, activation),
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c3, num_classes, bias=False)
        if identity_init:
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and not isinstance(m, PatchWhitening):
                    with torch.no_grad():
                        nn.init.dirac_(m.weight[: min(m.in_channels, m.out_channels)])

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        out = []
        if self.whiten is not None:
            x = self.whiten_act(self.whiten(x))
        for stage in (self.prep, self.layer1, self.layer2, self.layer3):
            x = stage(x)
            out.append(x)
        return out

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_stages(x)[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.forward_features(x)), 1)) * self.scale


@register_model
@takes(keyword_args(ResNet9))
def resnet9(**kwargs: Any) -> ResNet9:
    """ResNet-9 of the CIFAR-10 speed records (Page 2018; ``ResNet9``'s arguments, e.g. ``width=0.5``)."""
    return ResNet9(**kwargs)
