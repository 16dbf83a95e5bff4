"""The batches of an epoch, as the training loop takes them: a keyed shuffle, whole-batch
augmentation, and one process's contiguous slice of the global batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UsageError
from .augment import PadCropFlip, alternating_flips, generator


@dataclass(frozen=True)
class EpochLoader:
    """Batches of ``batch_size`` (the global batch) from uint8 images ``x`` and labels ``y``.

    Epoch ``e`` is shuffled by a permutation keyed on (seed, 0, e) and step ``s`` augmented with draws
    keyed on (seed, 1, e, s): a batch depends on its position only, so a resumed run sees what an
    uninterrupted one does. Process ``rank`` of ``world_size`` gets rows [rank·b/w, (rank+1)·b/w) of
    every global batch, augmented exactly as those rows are in a 1-process run. The last partial
    batch of an epoch is dropped: every step sees a full batch."""

    x: Tensor
    y: Tensor
    batch_size: int
    seed: int
    augment: PadCropFlip | None = None
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if self.batch_size % self.world_size:
            raise UsageError(
                f"--batch-size {self.batch_size} does not divide among {self.world_size} processes; "
                f"choose a multiple of {self.world_size}"
            )

    @property
    def steps_per_epoch(self) -> int:
        return len(self.y) // self.batch_size

    def batches(self, epoch: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Tensor, Tensor]]:
        """(step, images, labels) for steps ``start`` to ``stop`` (default: the epoch's end) of ``epoch``."""
        b = self.batch_size
        lo, hi = self.rank * b // self.world_size, (self.rank + 1) * b // self.world_size
        order = torch.randperm(len(self.y), generator=generator(self.seed, 0, epoch))
        perm = order.to(self.y.device)
        alternate = self.augment is not None and self.augment.flip and self.augment.alternate
        flips = alternating_flips(self.seed, len(self.y), epoch)[order] if alternate else None  # in batch order
        for step in range(start, self.steps_per_epoch if stop is None else stop):
            idx = perm[step * b : (step + 1) * b][lo:hi]
            x = self.x[idx]
            if self.augment is not None:
                drawn = None if flips is None else flips[step * b : (step + 1) * b]
                x = self.augment(x, generator(self.seed, 1, epoch, step), batch=b, rows=slice(lo, hi), flips=drawn)
            yield step, x, self.y[idx]
