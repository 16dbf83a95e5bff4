"""CIFAR-10 from the official "python version" (folder or ``cifar-10-python.tar.gz``) or an .npz."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from .dataset import ImageData, check_arrays, from_hwc

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
WHERE = "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"


class _ArrayUnpickler(pickle.Unpickler):
    """The official files are pickles of dicts of NumPy arrays: allow those and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a CIFAR-10 batch file")
        return super().find_class(module, name)


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
    except Exception as e:
        raise UsageError(f"{where} is not a CIFAR-10 python batch file ({e}); {WHERE}") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise UsageError(f"{where}: expected 'data' of shape (N, 3072), got {data.shape}; {WHERE}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _class_names(raw: bytes | None) -> tuple[str, ...]:
    if raw is None:
        return CLASSES
    d = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in d[b"label_names"])


def load_cifar10(path: str | Path) -> ImageData:
    """The official python-version files: a folder holding ``data_batch_1..5``, ``test_batch`` and
    ``batches.meta`` (as ``cifar-10-batches-py/``), its parent, or the tarball itself."""
    path = Path(path)
    files: dict[str, bytes] = {}
    if path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.isfile() and Path(member.name).name in (*TRAIN_FILES, "test_batch", "batches.meta"):
                    member_file = tar.extractfile(member)
                    if member_file is not None:
                        files[Path(member.name).name] = member_file.read()
    elif path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        files = {
            f.name: f.read_bytes() for f in folder.iterdir() if f.name in (*TRAIN_FILES, "test_batch", "batches.meta")
        }
    else:
        raise UsageError(f"cifar10:{path}: no such folder or tarball; {WHERE}")
    missing = [f for f in (*TRAIN_FILES, "test_batch") if f not in files]
    if missing:
        raise UsageError(
            f"cifar10:{path}: missing {', '.join(missing)} (expected the python-version files "
            f"data_batch_1..5 and test_batch); {WHERE}"
        )
    train = [_read_batch(files[f], f"{path}/{f}") for f in TRAIN_FILES]
    x_train, y_train = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    x_test, y_test = _read_batch(files["test_batch"], f"{path}/test_batch")
    names = _class_names(files.get("batches.meta"))
    return _make("cifar10", x_train, y_train, x_test, y_test, names, str(path))


def load_npz(path: str | Path) -> ImageData:
    """An .npz with ``x_train, y_train, x_test, y_test`` (uint8 N×H×W×C, integer labels) and
    optionally ``class_names`` — the layout of the project's shared ``cifar10.npz``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"npz:{path}: no such file (expected an .npz with x_train, y_train, x_test, y_test)")
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except Exception as e:
        raise UsageError(f"npz:{path}: not a readable .npz file ({e})") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise UsageError(
            f"npz:{path}: missing {', '.join(missing)} (expected x_train, y_train, x_test, y_test"
            f"[, class_names]; found {', '.join(arrays) or 'nothing'})"
        )
    y = arrays["y_train"]
    names = (
        tuple(str(n) for n in arrays["class_names"])
        if "class_names" in arrays
        else tuple(str(i) for i in range(int(y.max()) + 1))
    )
    return _make(path.stem, arrays["x_train"], y, arrays.get("x_test"), arrays.get("y_test"), names, f"npz:{path}")


def _make(name, x_train, y_train, x_test, y_test, names, where) -> ImageData:
    if x_train.ndim == 3:  # grayscale (N, H, W)
        x_train = x_train[..., None]
        x_test = x_test[..., None] if x_test is not None else None
    check_arrays("training", x_train, y_train, len(names), where)
    if x_test is not None:
        check_arrays("test", x_test, y_test, len(names), where)
    if name == "cifar10" and (x_train.shape[1:] != (32, 32, 3) or len(names) != 10):
        raise UsageError(
            f"{where}: CIFAR-10 has 32×32×3 images in 10 classes, got {x_train.shape[1:]} "
            f"in {len(names)} classes; {WHERE}"
        )
    return ImageData(
        name=name,
        x_train=from_hwc(x_train),
        y_train=torch.from_numpy(y_train.astype(np.int64)),
        class_names=names,
        x_test=from_hwc(x_test) if x_test is not None else None,
        y_test=torch.from_numpy(y_test.astype(np.int64)) if y_test is not None else None,
    )
