"""The ResNet trunk shared by the ImageNet (Table 1) and CIFAR (Sec. 4.2) networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..nn.blocks import BasicBlock, Bottleneck, conv, make_activation, make_norm
from ..nn.norm import BATCHNORM_TYPES, NormLayer


class ResNet(nn.Module):
    """Stem → stages ``layer1..layerK`` → global average pool → ``fc``.

    ``stem="imagenet"`` is Table 1's conv1 (7×7/2, pad 3) + BN + ReLU + 3×3/2 max pool;
    ``stem="cifar"`` is Sec. 4.2's single 3×3 conv + BN + ReLU. Stage ``i > 0`` halves the
    resolution with a stride-2 first block.
    """

    if TYPE_CHECKING:  # for the type checker only: TorchScript cannot read these annotations
        layer1: nn.Sequential
        layer2: nn.Sequential
        layer3: nn.Sequential
        layer4: nn.Sequential | None

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        widths: list[int],
        *,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        zero_init_residual: bool = False,
        norm_layer: NormLayer = None,
        shortcut: str = "B",
        residual: bool = True,
        activation: str = "relu",
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise UsageError(f"unknown stem {stem!r}; choose 'imagenet' or 'cifar'")
        if stride_in_1x1 and block is not Bottleneck:
            raise UsageError("stride_in_1x1 applies to bottleneck networks (resnet50/101/152) only")
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        block_args: dict[str, Any] = {
            "shortcut": shortcut,
            "residual": residual,
            "norm_layer": norm_layer,
            "activation": activation,
        }
        if block is Bottleneck:
            block_args["stride_in_1x1"] = stride_in_1x1
        # The input size each stem was designed for (C, H, W): 224² crops for ImageNet, 32² for CIFAR.
        self.default_input_size = (in_channels, 224, 224) if stem == "imagenet" else (in_channels, 32, 32)
        kernel, stride = (7, 2) if stem == "imagenet" else (3, 1)
        self.conv1 = conv(in_channels, widths[0], kernel, stride, norm_layer=norm_layer)
        self.bn1 = make_norm(norm_layer, widths[0])
        self.act = make_activation(activation)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None
        if len(layers) not in (3, 4) or len(widths) != len(layers):
            raise UsageError(f"ResNet takes 3 or 4 stages with one width each, got layers={layers}, widths={widths}")
        channels = widths[0]
        for i, (depth, width) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(channels, width, 2 if (i > 0 and j == 0) else 1, **block_args))
                channels = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        if len(layers) == 3:
            self.layer4 = None  # the CIFAR nets have three stages (Sec. 4.2)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al. (2015, "Delving deep into rectifiers") initialization, as torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Each block starts as the identity (Goyal et al. 2017): γ = 0 on its last BN.
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, (BasicBlock, Bottleneck)) and isinstance(last, BATCHNORM_TYPES):
                    if last.weight is not None:
                        nn.init.zeros_(last.weight)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The output of every stage (strides 4/8/16/32 for the ImageNet nets), for use as a backbone."""
        x = self.act(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        # Spelled out rather than looped so that the model compiles with torch.jit.script.
        x = self.layer1(x)
        outs = [x]
        x = self.layer2(x)
        outs.append(x)
        x = self.layer3(x)
        outs.append(x)
        if self.layer4 is not None:
            x = self.layer4(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map, before pooling."""
        return self.forward_stages(x)[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))
