"""Input patch whitening, from the CIFAR-10 speed records (Page's "How to train your ResNet" part 8; airbench):
a frozen first convolution whose filters are the principal components of the training images' k×k patches,
each scaled by 1/√(eigenvalue + ε), so that its output channels are decorrelated with unit variance. The filters
are a buffer-like parameter of the model (``requires_grad=False``): checkpoints, shipped weights and exports
carry them, and ``fit_whitening`` computes them once, from training images only. airbench's variant
(``signed``) keeps each filter and its negative, with a trained bias, for an activation after the layer: GELU
of both signs passes every component on, the bias sets where each one bends."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError

PATCH_SIZES = (2, 3)


class PatchWhitening(nn.Conv2d):
    """k×k patches of ``in_channels`` to ``in_channels``·k² whitened channels (k = 2: no padding, as airbench;
    k = 3: 'same' padding); ``signed``: twice as many, the filters and then their negatives, and a trainable bias
    starting at 0 (airbench, Jordan 2024). Identity-like until ``fit_whitening`` sets its filters."""

    def __init__(self, in_channels: int, patch_size: int, eps: float = 5e-4, signed: bool = False):
        if patch_size not in PATCH_SIZES:
            raise UsageError(f"whiten={patch_size!r}: give the patch size, 2 or 3 (0: no whitening)")
        components = in_channels * patch_size**2
        super().__init__(in_channels, components * (2 if signed else 1), patch_size, padding=patch_size // 2 if
                         patch_size % 2 else 0, bias=signed)  # fmt: skip
        self.eps = eps
        self.weight.requires_grad_(False)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def signed(self) -> bool:
        """airbench's form: only it has a bias."""
        return self.bias is not None


def patch_covariance(images: Tensor, patch_size: int) -> Tensor:
    """The covariance (float64) of every k×k patch of the (N, C, H, W) ``images``, flattened as a convolution's
    filter is (channel, row, column)."""
    patches = F.unfold(images.double(), patch_size)  # (N, C·k², positions)
    flat = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    flat = flat - flat.mean(0)
    return flat.T @ flat / (len(flat) - 1)


@torch.no_grad()
def fit_whitening(layer: PatchWhitening, images: Tensor) -> None:
    """Set ``layer``'s filters from the normalized training ``images`` (N, C, H, W): eigenvectors of their patch
    covariance, scaled by 1/√(eigenvalue + ε), largest component first; eigenvector signs fixed (largest
    entry positive) so that the result depends on the images alone; a ``signed`` layer gets them and their
    negatives, its bias is left as it is."""
    c, k = layer.in_channels, layer.kernel_size[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, k))
    order = eigenvalues.argsort(descending=True)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    signs = torch.sign(eigenvectors.gather(0, eigenvectors.abs().argmax(0, keepdim=True)))
    filters = (eigenvectors * signs).T / torch.sqrt(eigenvalues.clamp_min(0) + layer.eps).unsqueeze(1)
    if layer.signed:
        filters = torch.cat([filters, -filters])
    layer.weight.copy_(filters.view(-1, c, k, k).to(layer.weight.dtype))
