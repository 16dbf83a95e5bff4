"""The one input transform of training, evaluation and deployment: uint8 images to normalized floats."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def normalizer(
    mean: Sequence[float], std: Sequence[float], device: torch.device, channels_last: bool = False
) -> Callable[[Tensor], Tensor]:
    """uint8 (N, C, H, W) → float32 (x/255 − mean)/std per channel, on ``device`` (NHWC if ``channels_last``).
    ``mean`` and ``std`` are on the [0, 1] scale, as ``channel_stats`` computes them."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=device).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=device).view(1, -1, 1, 1)

    def normalize(x: Tensor) -> Tensor:
        x = torch.addcmul(shift, x.to(device, non_blocking=True).float(), scale)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return normalize
