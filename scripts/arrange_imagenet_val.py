"""Arrange ImageNet's flat validation folder (``ILSVRC2012_val_00000001.JPEG`` ... 50,000 files) into one
folder per class, the layout ``--data folder:ROOT`` reads (``ROOT/val/<wnid>/*.JPEG``), from a label file:

- Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first word of the prediction string is
  the class), or
- any text file of ``<file name or image id> <wnid>`` lines.

    python scripts/arrange_imagenet_val.py VAL_DIR LABELS [--link]

Files are moved (``--link``: symlinked, leaving VAL_DIR as it is, into ``--out``). A file the labels do not name
is left where it is and counted; a label naming no file is an error before anything moves.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path


def read_labels(path: Path) -> dict[str, str]:
    """Image id (file name without its suffix) → wnid."""
    labels: dict[str, str] = {}
    with open(path, newline="") as f:
        if path.suffix == ".csv":
            for row in csv.DictReader(f):
                labels[row["ImageId"]] = row["PredictionString"].split()[0]
        else:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or not parts[1].startswith("n"):
                    sys.exit(f"{path}:{n}: expected '<file> <wnid>' (e.g. ILSVRC2012_val_00000001.JPEG n01751748)")
                labels[Path(parts[0]).stem] = parts[1]
    return labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("val_dir", type=Path)
    p.add_argument("labels", type=Path, help="LOC_val_solution.csv, or '<file> <wnid>' lines")
    p.add_argument("--link", action="store_true", help="symlink into --out instead of moving")
    p.add_argument("--out", type=Path, help="where the class folders go (default: VAL_DIR itself)")
    args = p.parse_args()
    out = args.out or args.val_dir
    labels = read_labels(args.labels)
    files = {f.stem: f for f in args.val_dir.iterdir() if f.is_file()}
    missing = sorted(set(labels) - set(files))
    if missing:
        sys.exit(
            f"{len(missing)} labelled images are not in {args.val_dir}, e.g. {missing[0]}: is it the right folder?"
        )
    for stem, wnid in labels.items():
        (out / wnid).mkdir(parents=True, exist_ok=True)
        target = out / wnid / files[stem].name
        if args.link:
            target.symlink_to(os.path.abspath(files[stem]))
        else:
            files[stem].rename(target)
    left = len(files) - len(labels)
    print(f"{len(labels)} images in {len(set(labels.values()))} class folders under {out}"
          + (f"; {left} unlabelled files left in {args.val_dir}" if left else ""))  # fmt: skip


if __name__ == "__main__":
    main()
