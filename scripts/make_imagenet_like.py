"""A small ImageNet-shaped folder for trying the ImageNet recipes end to end (docs/imagenet.md): 10 classes of
CIFAR-10 images upscaled to ImageNet's typical 500×375 (or 375×500) with per-pixel texture, saved as JPEGs of
quality 90 whose size is steered into 100–120 KB (ImageNet's mean file is about 110 KB), in ImageNet's layout:
``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG`` and ``LOC_synset_mapping.txt``.

    python scripts/make_imagenet_like.py --out data/imagenet10 [--train-per-class 500 --val-per-class 50]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

# WordNet 3.0 ids of CIFAR-10's classes, in CIFAR-10's label order (ImageNet names its class folders so).
SYNSETS = [
    ("n02691156", "airplane, aeroplane, plane"),
    ("n02958343", "car, auto, automobile, machine, motorcar"),
    ("n01503061", "bird"),
    ("n02121620", "cat, true cat"),
    ("n02430045", "deer"),
    ("n02084071", "dog, domestic dog, Canis familiaris"),
    ("n01639765", "frog, toad, toad frog, anuran, batrachian, salientian"),
    ("n02374451", "horse, Equus caballus"),
    ("n04194289", "ship"),
    ("n04490091", "truck, motortruck"),
]
TARGET, LOW, HIGH = 110_000, 100_000, 120_000  # bytes per file


def jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def texture(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """``image`` upscaled (bicubic) with Gaussian texture whose strength is adjusted until the JPEG is 100-120 KB."""
    w, h = (500, 375) if rng.random() < 0.7 else (375, 500)
    base = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    noise = rng.normal(0, 1, base.shape).astype(np.float32)
    sigma, data = 14.0, b""
    for _ in range(6):
        data = jpeg(base + sigma * noise)
        if LOW <= len(data) <= HIGH:
            break
        sigma *= (TARGET / len(data)) ** 1.3
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cifar", default="../shared/data/cifar10/cifar10.npz", help="CIFAR-10 as one .npz")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--val-per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = np.load(args.cifar)
    rng = np.random.default_rng(args.seed)
    sizes = []
    for split, x, y, per in (("train", data["x_train"], data["y_train"], args.train_per_class),
                             ("val", data["x_test"], data["y_test"], args.val_per_class)):  # fmt: skip
        for label, (wnid, _) in enumerate(SYNSETS):
            folder = args.out / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i, row in enumerate(np.flatnonzero(y == label)[:per]):
                encoded = texture(x[row], rng)
                (folder / f"{wnid}_{split}_{i:05d}.JPEG").write_bytes(encoded)
                sizes.append(len(encoded))
        print(f"{split}: {10 * per} files")
    (args.out / "LOC_synset_mapping.txt").write_text("".join(f"{w} {name}\n" for w, name in SYNSETS))
    sizes_kb = np.array(sizes) / 1000
    print(
        f"{len(sizes)} JPEGs (quality 90) in {args.out}: mean {sizes_kb.mean():.1f} KB, min {sizes_kb.min():.1f}, "
        f"max {sizes_kb.max():.1f}; {sizes_kb.sum() / 1000:.0f} MB in all"
    )


if __name__ == "__main__":
    main()
