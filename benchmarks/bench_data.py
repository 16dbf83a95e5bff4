"""What the data pipeline costs, on this machine. Run it alone.

    .venv/bin/python benchmarks/bench_data.py decode [--folder DIR]   # images/s per worker core, per decoder
    .venv/bin/python benchmarks/bench_data.py read   [--folder DIR]   # shards read undecoded: ours / webdataset
    .venv/bin/python benchmarks/bench_data.py train  [--folder DIR]   # ResNet-18 at 224: shards / pre-decoded

decode: 300 JPEGs of the folder (default runs/imagenet/imagenet10/train, made by scripts/make_imagenet_like.py:
500×375 or 375×500, quality 90, 100-120 KB), decoded and augmented to 224×224 in one process (one worker core),
from the files and from the same files packed as shards (their bytes read from the tar stream). The reference is
plain Pillow: ``Image.open(...).convert("RGB")`` then the same transform on the full-size image; Pillow with
``draft()`` and simplejpeg decode at the smallest DCT scale that covers the transform's output. Transforms: the
random-resized crop (the crop drawn, then resized to 224) and the evaluation transform (shorter side to 256,
centre 224).

train: ResNet-18 at 224×224, batch 64, ``--recipe cosine --precision auto``, 3 epochs of 640 of those JPEGs,
``--eval-every 0``: pre-decoded uint8 tensors (``--data-mode memory``) against the same images as shards
(``--data wds:``, 1 worker), both with pad-crop-flip on the device; the training images/s of epochs 2 and 3 (after
compilation) from each run's own records.
"""

import argparse
import functools
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_stream import finish, train
from resnetlab import hardware
from resnetlab.data.decode import Source, simplejpeg
from resnetlab.data.shards import pack, read_info, samples
from resnetlab.data.transforms import EvalTransform, RandomResizedCrop

ROOT = Path(__file__).parents[1]
FOLDER = ROOT / "runs" / "imagenet" / "imagenet10" / "train"


def files_of(folder: Path, n: int) -> list[Path]:
    """``n`` files, as many from each class folder."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    per = -(-n // len(classes))
    return [f for c in classes for f in sorted(c.iterdir())[:per]][:n]


def linked(paths: list[Path], root: Path) -> Path:
    """A folder of symlinks to ``paths`` under ``root``, in their class folders."""
    for p in paths:
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(p, root / p.parent.name / p.name)
    return root


def rate(items: list, transform, prepare) -> float:
    """Images/s of ``transform(prepare(item))`` over ``items`` after 10 warm-up items, best of 3 passes."""
    rng = np.random.default_rng(0)
    for item in items[:10]:
        transform(prepare(item), rng)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for item in items:
            transform(prepare(item), rng)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def plain(item) -> Image.Image:
    """The reference: the whole file decoded by Pillow, as ``Image.open(...).convert("RGB")``."""
    return Image.open(io.BytesIO(item) if isinstance(item, bytes) else item).convert("RGB")


def decode(folder: Path) -> None:
    paths = files_of(folder, 300)
    sizes = np.array([p.stat().st_size for p in paths]) / 1000
    print(f"{len(paths)} files of {folder}: mean {sizes.mean():.1f} KB (min {sizes.min():.1f}, max {sizes.max():.1f}); "
          f"one process; CPU {hardware.describe()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tree = linked(paths, Path(tmp) / "folder")
        pack(tree, Path(tmp) / "shards", log=lambda _: None)
        shards = read_info(str(Path(tmp) / "shards")).split("train")
        assert shards is not None
        blobs = [s.image for f in shards.files for s in samples(f)]  # type: ignore[union-attr]
        decoders = ["pillow"] + (["simplejpeg"] if simplejpeg is not None else [])
        for transform in (RandomResizedCrop(224), EvalTransform(256, 224)):
            name = type(transform).__name__
            for where, items in (("folder", paths), ("shards", blobs)):
                ref = rate(items, transform, plain)
                print(f"{name:>17} from {where}: reference (Image.open + convert, full size) {ref:6.1f} images/s")
                for d in decoders:
                    got = rate(items, transform, functools.partial(Source, decoder=d))
                    print(f"{'':>17} {'':>12}{d:>12} {'(draft)' if d == 'pillow' else '':>8} {got:6.1f} images/s, "
                          f"{got / ref:.2f}x the reference", flush=True)  # fmt: skip


def read(folder: Path) -> None:
    """Samples/s of reading shards without decoding: this project's tar reader against webdataset's (if installed)."""
    paths = files_of(folder, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        tree = linked(paths, Path(tmp) / "folder")
        pack(tree, Path(tmp) / "shards", shard_size=32 * 10**6, log=lambda _: None)
        split = read_info(str(Path(tmp) / "shards")).split("train")
        assert split is not None
        size = sum(Path(f).stat().st_size for f in split.files) / 1e6
        readers = {"resnetlab (tarfile, streamed)": lambda: sum(1 for f in split.files for _ in samples(f))}
        try:
            import webdataset as wds

            def with_wds() -> int:
                return sum(1 for _ in wds.WebDataset(list(split.files), shardshuffle=False))

            readers["webdataset " + wds.__version__] = with_wds
        except ImportError:
            print("webdataset is not installed: pip install webdataset to compare")
        print(f"{split.num_samples} samples in {len(split.files)} shards, {size:.0f} MB, from the page cache")
        for name, run in readers.items():
            run()
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                n = run()
                best = min(best, time.perf_counter() - start)
            print(f"{name:>32}: {n / best:8.0f} samples/s, {size / best:6.0f} MB/s", flush=True)


def train_speed(folder: Path) -> None:
    paths = files_of(folder, 640)
    with tempfile.TemporaryDirectory() as tmp:
        tree = linked(paths, Path(tmp) / "folder")
        pack(tree, Path(tmp) / "shards", shard_size=8 * 10**6, log=lambda _: None)
        common = ["--model", "resnet18", "--image-size", "224", "--batch-size", "64", "--epochs", "3", "--recipe",
                  "cosine", "--precision", "auto", "--eval-every", "0"]  # fmt: skip
        rates = {}
        for name, data in (("pre-decoded", ["--data", f"folder:{tree}", "--data-mode", "memory"]),
                           ("shards", ["--data", f"wds:{Path(tmp) / 'shards'}", "--workers", "1"])):  # fmt: skip
            out = Path(tmp) / name
            output = finish(train([*common, *data], out))
            said = [line for line in output.splitlines() if line.startswith(("data:", "precision", "resnetlab "))]
            records = json.loads((out / "metrics.json").read_text())
            rates[name] = float(np.mean([r["images_per_s"] for r in records[1:]]))
            print("\n".join(said))
            print(f"{name:>12}: {rates[name]:.1f} training images/s (epochs 2-3), data wait "
                  f"{[r['data_wait_s'] for r in records[1:]]} s per epoch", flush=True)  # fmt: skip
        print(f"shards / pre-decoded: {rates['shards'] / rates['pre-decoded']:.3f}x (target >= 0.9)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["decode", "read", "train"])
    p.add_argument("--folder", type=Path, default=FOLDER, help="class folders of JPEGs (default: %(default)s)")
    args = p.parse_args()
    if not args.folder.is_dir():
        sys.exit(f"{args.folder}: no such folder; make it with scripts/make_imagenet_like.py --out runs/imagenet/"
                 "imagenet10")  # fmt: skip
    {"decode": decode, "read": read, "train": train_speed}[args.what](args.folder)


if __name__ == "__main__":
    main()
