"""Batched augmentation on the training device: the paper's 4-pixel pad, random crop and
horizontal flip (Sec. 4.2), for a whole batch at once instead of a per-image Python loop."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple such as (seed, epoch, step): every batch's randomness is
    a pure function of its position, so a resumed run draws exactly what an uninterrupted one does."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0]))


def pad_crop_flip(x: Tensor, pad: int, flip: bool, gen: torch.Generator) -> Tensor:
    """Zero-pad every image by ``pad`` pixels, crop back to its size at a random offset, and flip
    half of them left-right when ``flip``; ``x`` is (B, C, H, W) of any dtype."""
    b, c, h, w = x.shape
    if pad:
        dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen).to(x.device)
        padded = F.pad(x, (pad, pad, pad, pad))
        rows = (dy + torch.arange(h, device=x.device).view(1, h, 1)).expand(b, h, w)
        cols = (dx + torch.arange(w, device=x.device).view(1, 1, w)).expand(b, h, w)
        index = (rows * (w + 2 * pad) + cols).view(b, 1, h * w).expand(b, c, h * w)
        x = padded.flatten(2).gather(2, index).view(b, c, h, w)
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x
