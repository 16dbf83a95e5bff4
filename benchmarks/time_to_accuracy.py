"""Time to accuracy: ResNet-20 on the real CIFAR-10 with the fast-cifar recipe, its schedule fixed in
advance (the test set is looked at once, after the last epoch), wall time measured around
everything: data loading, compilation, training, evaluation with test-time augmentation.

    .venv/bin/python benchmarks/time_to_accuracy.py [--seeds 0 1] [--epochs 40] [--paths fast eager]

``--paths fast eager`` runs the same schedule and seed through the fast path (the recipe as is)
and through the plain path (fp32, eager, NCHW): the accuracy check of issue 5. The other paths are
candidate changes to the recipe, compared on a short schedule with the same seed before a recipe
is fixed (issue 16), e.g. ``--epochs 10 --paths fast ema linear batch128``. Run it alone; a run
folder that exists is resumed and its time reported as the sum of its chunks.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from resnetlab.checkpoints import latest
from resnetlab.hardware import cpu_name
from resnetlab.train import fit, make_config

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "cifar10.npz"
TARGET = 0.9125  # the paper's ResNet-20: 8.75% error (He et al. 2015, Table 6)
PATHS = {
    "fast": {},
    "eager": {"compile": False, "channels_last": False, "precision": "fp32"},
    # candidates for a faster recipe, each one change to fast-cifar
    "ema": {"ema": 0.999},  # weight averaging, evaluated at the end
    "linear": {"schedule": "linear"},  # linear to zero instead of cosine
    "batch128": {"batch_size": 128, "lr": 0.1, "warmup_iterations": 390, "small_size": 0},  # before batch 256
    "no-smoothing": {"label_smoothing": 0.0},  # an ablation: what label smoothing gives
    "full-size": {"small_size": 0},  # the recipe before progressive resizing (commit 5fb47c0 and earlier)
}


def run_one(out: Path, seed: int, path: str, args) -> dict:
    fields = dict(model="resnet20", data=f"npz:{args.data}", seed=seed, out=str(out), **PATHS[path])
    if args.epochs:
        fields["epochs"] = args.epochs
    if args.threads:
        fields["threads"] = args.threads
    config = make_config("fast-cifar", **fields)
    resumed = latest(out / "checkpoints") is not None
    previous = json.loads((out / "wall.json").read_text())["wall_s"] if (out / "wall.json").exists() else 0.0
    start = time.perf_counter()
    final = fit(config, resume=resumed)
    wall = previous + time.perf_counter() - start
    (out / "wall.json").write_text(json.dumps({"wall_s": wall}))
    return {
        "path": path,
        "seed": seed,
        "epochs": final["epoch"],
        "test_accuracy": 1 - final["test_error"],
        "wall_s": wall,
        "resumed": resumed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--paths", nargs="+", default=["fast"], choices=list(PATHS))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/time-to-accuracy"))
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"time_to_accuracy: {args.data} is missing (the real CIFAR-10 .npz; see shared/data)")
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"resnetlab fast-cifar, ResNet-20, CIFAR-10; torch {torch.__version__}, {cpu_name()} "
        f"({platform.machine()}), {args.threads or torch.get_num_threads()} threads"
    )
    print(header, flush=True)
    rows = []
    for path in args.paths:
        for seed in args.seeds:
            name = f"{path}-seed{seed}" + (f"-{args.epochs}ep" if args.epochs else "")
            rows.append(run_one(args.out / name, seed, path, args))
            print(f"{name}: {100 * rows[-1]['test_accuracy']:.2f}% in {rows[-1]['wall_s'] / 60:.1f} min", flush=True)
    lines = [header, "", "| path | seed | epochs | test accuracy | wall (min) |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['path']} | {r['seed']} | {r['epochs']} | {100 * r['test_accuracy']:.2f}% | "
        f"{r['wall_s'] / 60:.1f}{' (resumed)' if r['resumed'] else ''} |"
        for r in rows
    ]
    for path in args.paths:
        accs = [r["test_accuracy"] for r in rows if r["path"] == path]
        walls = [r["wall_s"] for r in rows if r["path"] == path]
        lines.append(
            f"\n{path}: mean {100 * statistics.mean(accs):.2f}% over {len(accs)} seed(s), "
            f"mean wall {statistics.mean(walls) / 60:.1f} min; target >= {100 * TARGET:.2f}% in < 20 min: "
            f"{'met' if statistics.mean(accs) >= TARGET and max(walls) < 1200 else 'not met'}"
        )
    if len(args.paths) > 1:
        gap = [
            100 * (a["test_accuracy"] - b["test_accuracy"])
            for a in rows
            if a["path"] == args.paths[0]
            for b in rows
            if b["path"] == args.paths[1] and b["seed"] == a["seed"]
        ]
        lines.append(f"{args.paths[0]} - {args.paths[1]}, same seed: " + ", ".join(f"{g:+.2f} pt" for g in gap))
    report = "\n".join(lines)
    print("\n" + report)
    (args.out / "report.md").write_text(report + "\n")
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
