"""A folder of images: ``root/<class>/*``, or ``root/train`` with ``root/test`` (or ImageNet's ``root/val``,
read as the test split). The files are listed once (``listing.py``); ``load_image_folder`` decodes them all
into memory, ``stream.py`` decodes them batch by batch."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UsageError
from .dataset import ImageData, from_hwc
from .decode import Source
from .listing import EXTENSIONS, Listing, cached, save, scan
from .transforms import EvalTransform

Transform = Callable[..., np.ndarray]  # transforms.py's: (PIL image, generator or None) -> RGB uint8

# What a file that cannot be decoded raises: a truncated or non-image file (OSError, Pillow's
# UnidentifiedImageError), a vanished one (FileNotFoundError), a broken header (ValueError, SyntaxError).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_image(path: str | Path, size: int | Transform, rng: np.random.Generator | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3): the file through ``size`` (a transform of ``transforms.py``, drawing from ``rng``
    when it is random), or for a side in pixels, the shorter side resized to it and centre-cropped (torchvision's
    Resize + CenterCrop). Pillow reads what the file holds, whatever its extension says (a PNG named ``.JPEG``),
    in any mode (a CMYK JPEG)."""
    transform = EvalTransform(size, size) if isinstance(size, int) else size
    source = Source(path)
    try:
        return transform(source, rng)
    finally:
        source.close()


@dataclass(frozen=True, eq=False)
class FileSet:
    """Some files of a listing, in order: file i is ``listing.path(index[i])`` with class ``labels[i]``
    (the training split's numbering). Arrays only, so worker processes share it cheaply."""

    listing: Listing
    index: np.ndarray  # int64 rows of the listing
    labels: np.ndarray  # int32

    @classmethod
    def of(cls, listing: Listing, classes: tuple[str, ...] | None = None) -> FileSet:
        """All of ``listing``, its labels renumbered to ``classes`` (the training split's; default its own)."""
        labels = listing.labels
        if classes is not None and listing.classes != classes:
            unknown = sorted(set(listing.classes) - set(classes))
            if unknown:
                raise UsageError(f"folder:{listing.root}: classes {', '.join(unknown[:3])} are not among the "
                                 "training split's; give both splits the same class folders")  # fmt: skip
            labels = np.asarray([classes.index(c) for c in listing.classes], np.int32)[labels]
        return cls(listing, np.arange(len(listing), dtype=np.int64), labels.astype(np.int32))

    def __len__(self) -> int:
        return len(self.index)

    def path(self, i: int) -> str:
        return self.listing.path(int(self.index[i]))

    def take(self, rows: np.ndarray | slice) -> FileSet:
        return FileSet(self.listing, self.index[rows], self.labels[rows])


def folder_splits(root: str | Path) -> tuple[Path, Path | None]:
    """(training folder, test folder or None) of a ``folder:`` source; a clear error when it has no classes."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"folder:{root}: no such folder (expected root/<class>/*.png|jpg, or root/train and "
                         "root/test or root/val)")  # fmt: skip
    if (root / "train").is_dir():
        train = root / "train"
        test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    else:
        train, test = root, None
    if not any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(train)):
        raise UsageError(f"folder:{root}: no class sub-folders (expected {train}/<class>/*.png|jpg)")
    return train, test


def list_folder(root: str | Path, run_dir: Path | None = None,
                log: Callable[[str], None] = print) -> tuple[FileSet, FileSet | None]:  # fmt: skip
    """The training and test files of a ``folder:`` source (listings cached in ``run_dir`` and the user's
    cache when ``run_dir`` is given); empty class folders are a warning naming them."""
    train_root, test_root = folder_splits(root)
    listings = [cached(r, run_dir / f"listing-{r.name}.npz", log=log) if run_dir else scan(r)
                for r in (train_root, test_root) if r is not None]  # fmt: skip
    for listing in listings:
        if listing.empty:
            log(f"warning: {listing.root}: no image files in class folder(s) {', '.join(listing.empty[:5])}")
    train = FileSet.of(listings[0])
    if not len(train):
        raise UsageError(f"folder:{root}: no image files in {len(listings[0].classes)} class folders (extensions "
                         f"read: {', '.join(EXTENSIONS)})")  # fmt: skip
    test = FileSet.of(listings[1], listings[0].classes) if len(listings) > 1 else None
    return train, test if test is not None and len(test) else None


def keep_listing(files: FileSet, run_dir: Path) -> None:
    """A copy of the listing ``files`` come from in the run folder (the files a run trained on, and a resume's
    cache), unless one is there already."""
    path = run_dir / f"listing-{Path(files.listing.root).name}.npz"
    if not path.exists():
        save(files.listing, path, files.listing.key)


def _decode_all(files: FileSet, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, bad = [], [], []
    for i in range(len(files)):
        try:
            images.append(load_image(files.path(i), size))
            labels.append(int(files.labels[i]))
        except UNREADABLE as e:
            bad.append(f"{files.path(i)} ({type(e).__name__})")
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return x, np.asarray(labels, dtype=np.int64), bad


def load_image_folder(root: str | Path, size: int = 32, run_dir: Path | None = None,
                      log: Callable[[str], None] = print) -> ImageData:  # fmt: skip
    """Every image decoded into memory. Class names are the sub-folder names, sorted. Unreadable files are
    reported by path and skipped; only a folder with no readable image at all is an error."""
    return decode_folder(Path(root), *list_folder(root, run_dir, log), size)


def decode_folder(root: Path, train: FileSet, test: FileSet | None, size: int) -> ImageData:
    """The listed files of ``root`` decoded into memory (``load_image_folder``)."""
    x_train, y_train, bad = _decode_all(train, size)
    x_test = y_test = None
    if test is not None:
        x_test, y_test, bad_test = _decode_all(test, size)
        bad += bad_test
    for line in bad:
        print(f"resnetlab: warning: skipped unreadable image {line}", file=sys.stderr)
    if len(y_train) == 0:
        raise UsageError(
            f"folder:{root}: no readable images in {len(train.listing.classes)} class folders "
            f"({len(bad)} unreadable; extensions read: {', '.join(EXTENSIONS)})"
        )
    return ImageData(
        name=root.name,
        x_train=from_hwc(x_train),
        y_train=torch.from_numpy(y_train),
        class_names=train.listing.classes,
        x_test=from_hwc(x_test) if x_test is not None and len(x_test) else None,
        y_test=torch.from_numpy(y_test) if y_test is not None and len(y_test) else None,
    )
