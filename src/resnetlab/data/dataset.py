"""A classification dataset held whole as uint8 tensors, as airbench does: no per-image loader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError
from .augment import PadCropFlip
from .transforms import EvalTransform


class Classified:
    """What every dataset says of itself besides its images: class names and the augmentation it declares."""

    class_names: tuple[str, ...]
    augmentation: PadCropFlip
    eval_transform: EvalTransform  # how evaluation images were decoded (their centre square) and are cropped

    @property
    def eval_crop(self) -> int | None:
        """The side evaluation crops its decoded images to (``evaluation.views``), None when it takes them whole."""
        t = self.eval_transform
        return t.crop if t.resize != t.crop else None

    @property
    def flip(self) -> bool:
        """Whether a mirrored image keeps its class (natural images; not digits)."""
        return self.augmentation.flip

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class DecodedFromFiles(Classified):
    """A dataset whose files are decoded at ``size`` (streamed folders, shards): square RGB images, evaluated
    at ``evaluation`` or, without one, fitted to size×size as in memory."""

    size: int
    evaluation: EvalTransform | None

    @property
    def eval_transform(self) -> EvalTransform:  # type: ignore[override]
        return self.evaluation or EvalTransform(self.size, self.size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return 3, self.size, self.size


@dataclass(frozen=True)
class ImageData(Classified):
    """Images as uint8 (N, C, H, W), labels as int64 (N,). Absent splits are ``None``."""

    name: str
    x_train: Tensor
    y_train: Tensor
    class_names: tuple[str, ...]
    augmentation: PadCropFlip = PadCropFlip(pad=4, flip=True)  # Sec. 4.2; digits take no flips
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    x_test: Tensor | None = None
    y_test: Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return c, h, w

    @property
    def eval_transform(self) -> EvalTransform:  # type: ignore[override]  # a field of a streamed folder
        """Evaluated as held: every split decoded at the training images' size."""
        return EvalTransform(self.image_shape[-1], self.image_shape[-1])

    def subset(self, n: int | None) -> ImageData:
        """Only the first ``n`` training images (the rest of the training set is dropped)."""
        if n is None:
            return self
        check_subset(n, len(self.y_train), self.name)
        return replace(self, x_train=self.x_train[:n], y_train=self.y_train[:n])

    def split_validation(self, n: int) -> ImageData:
        """Hold ``n`` training images out for validation (``validation_rows``)."""
        if not n:
            return self
        train, val = validation_rows(len(self.y_train), n)
        return replace(
            self,
            x_train=self.x_train[train],
            y_train=self.y_train[train],
            x_val=self.x_train[val],
            y_val=self.y_train[val],
        )

    def eval_batches(self, split: str, lo: int, hi: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Images ``lo`` to ``hi`` of ``split`` (val or test) in batches, as evaluation takes them."""
        x, y = (self.x_val, self.y_val) if split == "val" else (self.x_test, self.y_test)
        assert x is not None and y is not None, split
        for i in range(lo, hi, batch_size):
            yield x[i : min(i + batch_size, hi)], y[i : min(i + batch_size, hi)]

    def split_size(self, split: str) -> int:
        """Images in ``split`` (train, val, test): 0 when absent."""
        y = {"train": self.y_train, "val": self.y_val, "test": self.y_test}[split]
        return 0 if y is None else len(y)


def check_subset(n: int, size: int, name: str) -> None:
    if n < 1 or n > size:
        raise UsageError(f"--subset {n}: the training set of {name} has {size} images; choose 1..{size}")


def validation_rows(size: int, n: int) -> tuple[Tensor, Tensor]:
    """(training rows, validation rows) of a training set of ``size`` with ``n`` held out, chosen by a fixed
    permutation (seed 0) so that every run and seed sees the same split; the paper uses 45k/5k on CIFAR-10
    (Sec. 4.2)."""
    if n < 0 or n >= size:
        raise UsageError(f"--val-split {n}: must be between 1 and {size - 1} (the training set has {size} images)")
    perm = torch.from_numpy(np.random.default_rng(0).permutation(size))
    return perm[n:].sort().values, perm[:n].sort().values


def channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale."""
    x = x.to(torch.float64).div_(255).transpose(0, 1).reshape(x.shape[1], -1)
    return x.mean(1).tolist(), x.std(1).tolist()


def check_arrays(name: str, x: np.ndarray, y: np.ndarray, num_classes: int | None, where: str) -> None:
    """Shapes, dtypes and label range of (N, H, W, C) uint8 images and (N,) integer labels."""
    if x.dtype != np.uint8 or x.ndim != 4:
        raise UsageError(f"{where}: {name} images must be uint8 (N, H, W, C), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UsageError(f"{where}: {name} labels must be {len(x)} integers, got {y.dtype} {y.shape}")
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(f"{where}: {name} labels must be in 0..{num_classes - 1}, got {y.min()}..{y.max()}")


def from_hwc(x: np.ndarray) -> Tensor:
    """(N, H, W, C) uint8 → contiguous (N, C, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
