"""Residual blocks of He et al. (2015), "Deep Residual Learning for Image Recognition", and their
plain twins. Module names follow torchvision (conv1, bn1, ..., downsample.0/1) so weights load as
they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from .norm import NormLayer, get_norm

SHORTCUTS = ("A", "B", "C")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,  # the activation of hlb-cifar10 and airbench's ResNets
    "celu": nn.CELU,  # "celu:ALPHA" sets α (Page's final ResNet-9 used CELU(α=0.075); torch's default α = 1)
}


def make_activation(name: str) -> nn.Module:
    """A name from ``ACTIVATIONS``; ``celu:ALPHA`` is CELU with that α."""
    kind, _, arg = name.partition(":")
    if kind == "celu" and arg:
        try:
            return nn.CELU(alpha=float(arg))
        except ValueError:
            raise UsageError(f"activation {name!r}: give celu:ALPHA with a number, e.g. celu:0.075") from None
    if name not in ACTIVATIONS:
        raise UsageError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} or celu:ALPHA")
    return ACTIVATIONS[name]()


def make_norm(norm_layer: NormLayer, channels: int, dim: int = 2) -> nn.Module:
    """``norm_layer`` resolved through the one norm seam (``dim`` 2 after a convolution, 1 after a
    linear layer); ``nn.Identity`` when normalization is off."""
    norm = get_norm(norm_layer, dim)
    return norm(channels) if norm is not None else nn.Identity()


def conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *, norm_layer: NormLayer = None
) -> nn.Conv2d:
    """A 'same'-padded convolution; biased only when no norm layer follows (β replaces the bias)."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=get_norm(norm_layer) is None,
    )


class ShortcutA(nn.Module):
    """Option A (Sec. 3.3): identity with a stride-`stride` subsample and zero-padded extra
    channels. Parameter-free."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise UsageError(f"option A shortcut cannot reduce channels ({in_channels} -> {out_channels})")
        self.stride, self.pad = stride, out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad}"


def make_shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer = None
) -> nn.Module | None:
    """The paper's shortcut options (Sec. 3.3, Table 3); ``None`` means the identity.

    A: identity, zero-padded where the shape changes. B: 1×1 projection (conv + norm) only where
    the shape changes. C: projection on every block.
    """
    if kind not in SHORTCUTS:
        raise UsageError(f"unknown shortcut {kind!r}; choose one of {list(SHORTCUTS)} (the paper's options)")
    changes = stride != 1 or in_channels != out_channels
    if kind == "A":
        return ShortcutA(in_channels, out_channels, stride) if changes else None
    if kind == "B" and not changes:
        return None
    return nn.Sequential(
        conv(in_channels, out_channels, 1, stride, norm_layer=norm_layer), make_norm(norm_layer, out_channels)
    )


class _Residual(nn.Module):
    """F(x) + shortcut(x), then the activation (Fig. 2); without the sum when ``residual=False``."""

    if TYPE_CHECKING:  # for the type checker only: TorchScript cannot read these annotations
        residual: bool
        downsample: nn.Module | None
        act: nn.Module

    def _join(self, out: Tensor, x: Tensor) -> Tensor:
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.act(out)


class BasicBlock(_Residual):
    """Two 3×3 convolutions (Fig. 5 left), used by ResNet-18/34 and the CIFAR nets."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        norm_layer: NormLayer = None,
        activation: str = "relu",
    ):
        super().__init__()
        self.residual = residual
        self.conv1 = conv(in_channels, channels, 3, stride, norm_layer=norm_layer)
        self.bn1 = make_norm(norm_layer, channels)
        self.conv2 = conv(channels, channels, 3, norm_layer=norm_layer)
        self.bn2 = make_norm(norm_layer, channels)
        self.act = make_activation(activation)
        # residual=False is the plain twin (Sec. 4.1): no shortcut at all.
        self.downsample = make_shortcut(shortcut, in_channels, channels, stride, norm_layer) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self._join(self.bn2(self.conv2(out)), x)


class Bottleneck(_Residual):
    """1×1 reduce → 3×3 → 1×1 expand ×4 (Fig. 5 right), used by ResNet-50/101/152.

    The paper puts the stride-2 downsampling on the first 1×1 (``stride_in_1x1=True``);
    torchvision's "v1.5" default puts it on the 3×3, which is slightly more accurate.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        residual: bool = True,
        norm_layer: NormLayer = None,
        activation: str = "relu",
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        out_channels = channels * self.expansion
        self.residual = residual
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv(in_channels, channels, 1, s1, norm_layer=norm_layer)
        self.bn1 = make_norm(norm_layer, channels)
        self.conv2 = conv(channels, channels, 3, s3, norm_layer=norm_layer)
        self.bn2 = make_norm(norm_layer, channels)
        self.conv3 = conv(channels, out_channels, 1, norm_layer=norm_layer)
        self.bn3 = make_norm(norm_layer, out_channels)
        self.act = make_activation(activation)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm_layer) if residual else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        return self._join(self.bn3(self.conv3(out)), x)


class LinearShortcutA(nn.Module):
    """Option A for features: a[l] zero-padded to the new size (the notes' fixed W_s). Parameter-free."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        if out_features < in_features:
            raise UsageError(f"option A shortcut cannot reduce features ({in_features} -> {out_features})")
        self.pad = out_features - in_features

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, (0, self.pad))

    def extra_repr(self) -> str:
        return f"pad_features={self.pad}"


class LinearBlock(_Residual):
    """The fully connected residual block of the course notes:

    z[l+1] = W[l+1]·a[l] + b[l+1],  a[l+1] = g(z[l+1]),  z[l+2] = W[l+2]·a[l+1] + b[l+2],
    a[l+2] = g(z[l+2] + W_s·a[l]),

    each z followed by batch norm unless ``norm_layer="none"`` (then the linear layers keep their bias
    b, as in the formulas; with BN, β replaces it). W_s is the identity when the sizes agree, else
    ``shortcut`` "A" zero-pads a[l], "B" learns W_s (linear + norm); "C" learns it on every block.
    ``residual=False`` is the plain twin: a[l+2] = g(z[l+2]).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        residual: bool = True,
        shortcut: str = "B",
        norm_layer: NormLayer = None,
        activation: str = "relu",
    ):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise UsageError(f"unknown shortcut {shortcut!r}; choose one of {list(SHORTCUTS)} (the paper's options)")
        self.residual = residual
        bias = get_norm(norm_layer, 1) is None
        self.fc1 = nn.Linear(in_features, out_features, bias=bias)
        self.bn1 = make_norm(norm_layer, out_features, dim=1)
        self.fc2 = nn.Linear(out_features, out_features, bias=bias)
        self.bn2 = make_norm(norm_layer, out_features, dim=1)
        self.act = make_activation(activation)
        changes = in_features != out_features
        self.downsample = None
        if residual and shortcut == "A" and changes:
            self.downsample = LinearShortcutA(in_features, out_features)
        elif residual and (shortcut == "C" or (shortcut == "B" and changes)):
            self.downsample = nn.Sequential(
                nn.Linear(in_features, out_features, bias=bias), make_norm(norm_layer, out_features, dim=1)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.fc1(x)))
        return self._join(self.bn2(self.fc2(out)), x)
