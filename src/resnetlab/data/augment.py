"""Batched augmentation on the training device: the paper's 4-pixel pad, random crop and
horizontal flip (Sec. 4.2), for a whole batch at once instead of a per-image Python loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple such as (seed, epoch, step): every batch's randomness is
    a pure function of its position, so a resumed run draws exactly what an uninterrupted one does."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0]))


def pad_crop_flip(
    x: Tensor, pad: int, flip: bool, gen: torch.Generator, batch: int | None = None, rows: slice = slice(None),
    flips: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """Zero-pad every image by ``pad`` pixels, crop back to its size at a random offset, and flip
    half of them left-right when ``flip``; ``x`` is (B, C, H, W) of any dtype.

    The draws are made for ``batch`` images (default: ``len(x)``) and ``rows`` of them applied, so
    that ``x`` can be one process's rows of a larger batch and still get exactly those rows' draws.
    ``flips`` (bool, one per image of the batch) replaces the random flips, e.g. alternating_flips'."""
    b = len(x) if batch is None else batch
    _, c, h, w = x.shape
    if pad:
        dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen)[rows].to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen)[rows].to(x.device)
        n = len(x)
        padded = F.pad(x, (pad, pad, pad, pad))
        rows_ = (dy + torch.arange(h, device=x.device).view(1, h, 1)).expand(n, h, w)
        cols = (dx + torch.arange(w, device=x.device).view(1, 1, w)).expand(n, h, w)
        index = (rows_ * (w + 2 * pad) + cols).view(n, 1, h * w).expand(n, c, h * w)
        x = padded.flatten(2).gather(2, index).view(n, c, h, w)
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5 if flips is None else flips)[rows].to(x.device).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x


def alternating_flips(seed: int, n: int, epoch: int) -> Tensor:
    """Which of ``n`` images are mirrored in ``epoch`` under airbench's alternating flip (Jordan 2024, Sec. 3.6):
    a random half in the first epoch, then each image the opposite of its previous epoch, so that every two
    epochs show each image both ways (random flips repeat a view about half the time)."""
    return (torch.rand(n, generator=generator(seed, 4)) < 0.5) ^ bool(epoch % 2)


@dataclass(frozen=True)
class PadCropFlip:
    """The augmentation a dataset declares: ``pad``-pixel translation, and mirroring when flips
    preserve the class (natural images, not digits); ``alternate``: flips from alternating_flips."""

    pad: int = 4
    flip: bool = True
    alternate: bool = False

    def __call__(
        self, x: Tensor, gen: torch.Generator, batch: int | None = None, rows: slice = slice(None),
        flips: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        return pad_crop_flip(x, self.pad, self.flip, gen, batch, rows, flips)


# Krizhevsky et al. 2012's colour augmentation, with the eigenvalues and eigenvectors of ImageNet's RGB
# covariance (pixels in [0, 1]) as fb.resnet.torch publishes them (datasets/imagenet.lua, ``pca``), which the
# ResNet paper's Sec. 3.4 uses ("the standard color augmentation in [21]").
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def pca_lighting(
    x: Tensor, std: Tensor, gen: torch.Generator, sigma: float = 0.1, batch: int | None = None,
    rows: slice = slice(None),
) -> Tensor:  # fmt: skip
    """Add to every image of the normalized float batch ``x`` (B, 3, H, W) one RGB offset V·(α ⊙ λ), α ~ N(0,
    σ²) per image, divided by the normalization's per-channel ``std`` (the offset is defined on [0, 1] pixels,
    before normalization). Draws are made for ``batch`` images and ``rows`` of them used, as in pad_crop_flip."""
    b = len(x) if batch is None else batch
    alpha = (torch.randn(b, 3, generator=gen, dtype=torch.float64) * sigma)[rows]
    eigval = torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64)
    offset = (alpha * eigval) @ torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64).T  # (n, 3): V·(α ⊙ λ)
    offset = offset.to(x.device, x.dtype) / std.to(x.device, x.dtype).view(1, 3)
    return x + offset.view(-1, 3, 1, 1)
