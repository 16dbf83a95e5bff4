"""``--data`` specifications: ``default``, ``cifar10:PATH``, ``npz:PATH``, ``folder:PATH``."""

from __future__ import annotations

from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData
from .default import load_default
from .folder import load_image_folder

KINDS = ("default", "cifar10", "npz", "folder")


def load_data(spec: str, image_size: int = 32) -> ImageData:
    """Load the dataset a ``--data`` string names; ``image_size`` applies to image folders."""
    kind, _, path = spec.partition(":")
    if kind not in KINDS or (kind == "default") == bool(path):
        raise ValueError(
            f"--data {spec!r}: expected default, cifar10:PATH (the python-version folder or "
            "tarball), npz:PATH or folder:PATH"
        )
    if kind == "default":
        return load_default()
    if kind == "cifar10":
        return load_cifar10(path)
    if kind == "npz":
        return load_npz(path)
    return load_image_folder(path, image_size)
