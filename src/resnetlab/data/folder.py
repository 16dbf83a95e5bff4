"""A folder of images, ``root/<class>/*.png|jpg``, optionally split as ``root/train`` and ``root/test``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UsageError
from .dataset import ImageData, from_hwc

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def load_image(path: Path, size: int) -> np.ndarray:
    """RGB, shorter side resized to ``size``, centre-cropped to size×size (torchvision's
    Resize + CenterCrop)."""
    with Image.open(path) as f:
        return fit_image(f, size)


def fit_image(image: Image.Image, size: int) -> np.ndarray:
    """A PIL image of any mode as RGB uint8 (size, size, 3): shorter side resized to ``size``, then
    centre-cropped (torchvision's Resize + CenterCrop)."""
    im = image.convert("RGB")
    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.array(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _scan(root: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, bad = [], [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS):
            try:
                images.append(load_image(path, size))
                labels.append(label)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                bad.append(f"{path} ({type(e).__name__})")
    x = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return x, np.asarray(labels, dtype=np.int64), bad


def load_image_folder(root: str | Path, size: int = 32) -> ImageData:
    """Class names are the sub-folder names, sorted. Unreadable files are reported by path and
    skipped; only a folder with no readable image at all is an error."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"folder:{root}: no such folder (expected root/<class>/*.png|jpg)")
    split = (root / "train").is_dir()
    train_root = root / "train" if split else root
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if not classes:
        raise UsageError(f"folder:{root}: no class sub-folders (expected {train_root}/<class>/*.png|jpg)")
    x_train, y_train, bad = _scan(train_root, classes, size)
    x_test = y_test = None
    if split and (root / "test").is_dir():
        x_test, y_test, bad_test = _scan(root / "test", classes, size)
        bad += bad_test
    for line in bad:
        print(f"resnetlab: warning: skipped unreadable image {line}", file=sys.stderr)
    if len(y_train) == 0:
        raise UsageError(
            f"folder:{root}: no readable images in {len(classes)} class folders "
            f"({len(bad)} unreadable; extensions read: {', '.join(sorted(EXTENSIONS))})"
        )
    return ImageData(
        name=root.name,
        x_train=from_hwc(x_train),
        y_train=torch.from_numpy(y_train),
        class_names=tuple(classes),
        x_test=from_hwc(x_test) if x_test is not None and len(x_test) else None,
        y_test=torch.from_numpy(y_test) if y_test is not None and len(y_test) else None,
    )
