"""Time to accuracy: ResNet-20 on the real CIFAR-10 with the fast-cifar recipe, its schedule fixed in
advance, wall time measured around everything: data loading, compilation, training, evaluation.

    .venv/bin/python benchmarks/time_to_accuracy.py [--seeds 0 1 2] [--epochs 30] [--paths fast eager]
    .venv/bin/python benchmarks/time_to_accuracy.py --val-split 5000 --epochs 10 --paths fast ema   # choosing

Recipe choices are made on a held-out validation split (``--val-split 5000``: candidates compared by
their validation error); a final run trains on all 50,000 images and scores the test set once, after
the last epoch. Every accuracy is printed twice, single view and with the recipe's test-time
augmentation. ``--paths fast eager`` is the accuracy check: the same schedule and seed through the
fast path (the recipe as is) and the plain one (fp32, eager, NCHW). Each run's small text outputs
(config.json, metrics, train.log) and the report are copied to ``--results`` (default
docs/results/time-to-accuracy/<cpu>-<commit>). Run it alone; a run folder that exists is resumed and
its time reported as the sum of its pieces.
"""

import argparse
import json
import platform
import re
import shutil
import statistics
import time
from pathlib import Path

import torch

from resnetlab.checkpoints import latest
from resnetlab.hardware import describe
from resnetlab.train import fit, make_config
from resnetlab.train.setup import git_state

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10.npz"
TARGET = 0.9125  # the paper's ResNet-20: 8.75% error (He et al. 2015, Table 6)
PATHS = {
    "fast": {},
    "eager": {"compile": False, "channels_last": False, "precision": "fp32"},
    # candidates for a faster recipe, each one change to fast-cifar
    "ema": {"ema": 0.999},  # weight averaging, evaluated at the end
    "linear": {"schedule": "linear"},  # linear to zero instead of cosine
    "batch128": {"batch_size": 128, "lr": 0.1, "warmup_iterations": 390, "small_size": 0},
    "no-smoothing": {"label_smoothing": 0.0},  # an ablation: what label smoothing gives
    "full-size": {"small_size": 0},  # without progressive resizing
}
KEPT = ("config.json", "metrics.csv", "metrics.json", "train.log")  # not checkpoints


def run_one(out: Path, seed: int, path: str, args) -> dict:
    fields = dict(model="resnet20", data=f"npz:{args.data}", seed=seed, out=str(out), **PATHS[path])
    fields.update({k: v for k, v in (("epochs", args.epochs), ("threads", args.threads)) if v})
    fields["val_split"] = args.val_split
    config = make_config("fast-cifar", **fields)
    resumed = latest(out / "checkpoints") is not None
    previous = json.loads((out / "wall.json").read_text())["wall_s"] if (out / "wall.json").exists() else 0.0
    start = time.perf_counter()
    final = fit(config, resume=resumed)
    wall = previous + time.perf_counter() - start
    (out / "wall.json").write_text(json.dumps({"wall_s": wall}))

    def accuracy(key: str) -> float | None:
        return None if final.get(key) is None else 1 - final[key]

    splits = ("val",) if args.val_split else ("test",)  # a choice never reads the test set
    return {
        "path": path, "seed": seed, "epochs": final["epoch"], "tta": config.tta, "wall_s": wall, "resumed": resumed,
        **{f"{split}_accuracy{view}": accuracy(f"{split}_error{view}") for split in splits
           for view in ("", "_tta")},
    }  # fmt: skip


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def report(rows: list[dict], args, header: str) -> str:
    split = "val" if args.val_split else "test"  # choices on validation; the test set only for final runs
    tta = rows[0]["tta"]
    columns = f"| path | seed | epochs | {split} accuracy, single view | {split} accuracy, {tta} | wall (min) |"
    lines = [header, "", columns, "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['path']} | {r['seed']} | {r['epochs']} | {_pct(r[f'{split}_accuracy'])} | "
        f"{_pct(r[f'{split}_accuracy_tta'])} | {r['wall_s'] / 60:.1f}{' (resumed)' if r['resumed'] else ''} |"
        for r in rows
    ]
    for path in args.paths:
        mine = [r for r in rows if r["path"] == path]
        single = statistics.mean(r[f"{split}_accuracy"] for r in mine)
        views = [r[f"{split}_accuracy_tta"] for r in mine if r[f"{split}_accuracy_tta"] is not None]
        walls = [r["wall_s"] for r in mine]
        line = (f"\n{path}: {split} accuracy mean {_pct(single)} single view, "
                f"{_pct(statistics.mean(views)) if views else '—'} with {tta}, over {len(mine)} seed(s); "
                f"wall mean {statistics.mean(walls) / 60:.1f} min, max {max(walls) / 60:.1f} min")  # fmt: skip
        if split == "test":  # the verdict asks the recipe's own prediction (with its TTA) of every seed
            best = statistics.mean(views) if views else single
            met = best >= TARGET and max(walls) < 1200
            line += f"; target >= {100 * TARGET:.2f}% in < 20 min by every seed: {'met' if met else 'not met'}"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--paths", nargs="+", default=["fast"], choices=list(PATHS))
    parser.add_argument("--val-split", type=int, default=0, help="hold out N training images to choose on (5000)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/time-to-accuracy"))
    parser.add_argument("--results", type=Path, help="where the text outputs are kept (default under docs/results)")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"time_to_accuracy: {args.data} is missing (the real CIFAR-10 .npz; see shared/data)")
    git = git_state(ROOT)
    commit = (git["git_commit"] or "unknown")[:7] + ("-dirty" if git["git_dirty"] else "")
    machine = re.sub(r"[^a-z0-9]+", "-", describe().lower()).strip("-")  # the CPU's name and flags
    results = args.results or ROOT / "docs" / "results" / "time-to-accuracy" / f"{machine}-{commit}"
    header = (
        f"resnetlab fast-cifar, ResNet-20, CIFAR-10; commit {commit}"
        + (f" (uncommitted tree, diff sha256 {git['git_diff_sha256'][:12]})" if git["git_dirty"] else "")
        + f"; torch {torch.__version__}; {describe()} ({platform.machine()}); "
        f"{args.threads or torch.get_num_threads()} threads; val split {args.val_split}"
    )
    print(header, flush=True)
    rows = []
    for path in args.paths:
        for seed in args.seeds:
            name = f"{path}-seed{seed}" + (f"-{args.epochs}ep" if args.epochs else "") + (
                f"-val{args.val_split}" if args.val_split else "")  # fmt: skip
            rows.append(run_one(args.out / name, seed, path, args))
            for kept in KEPT:
                if (args.out / name / kept).exists():
                    (results / name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(args.out / name / kept, results / name / kept)
            print(f"{name}: {rows[-1]}", flush=True)
    text = report(rows, args, header)
    print("\n" + text)
    for folder in (args.out, results):
        (folder / "report.md").write_text(text + "\n")
        (folder / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\nraw outputs: {results}")


if __name__ == "__main__":
    main()
