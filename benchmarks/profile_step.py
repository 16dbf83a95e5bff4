"""Where one training step's time goes: a recipe's model and batch through the trainer's own step
(``resnetlab.fit`` on synthetic images, its precision, layout and compilation), under torch.profiler, its
self CPU time summed into convolutions (oneDNN), batch norm, the rest of the elementwise work (activations,
pooling, adds; with torch.compile, the fused kernels that hold BN's normalization too), the optimizer,
the loss and the data (augmentation, normalization). The steps are at the images' full size (progressive
resizing off unless a path sets it).

    .venv/bin/python benchmarks/profile_step.py [--recipe fast94] [--batch-size N] [--steps 5] [--top 15]
    .venv/bin/python benchmarks/profile_step.py --paths fast page-whiten --rounds 3   # two paths, alternating

Run it alone: the two cores are shared by everything.
"""

import argparse
import contextlib
import io
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from resnetlab import hardware
from resnetlab.train import Hook, fit, make_config
from time_to_accuracy import PATHS  # the ablation's paths: one definition

# self-time categories, first match wins (operator and kernel names of torch 2.13, eager and compiled)
CATEGORIES = [
    ("convolution", r"conv|mkldnn|onednn|addmm|(^|::)mm$|linear"),
    ("batch norm", r"batch_norm|batchnorm|_bn_|native_bn|var_mean|welford"),
    # torch.compile's generated kernels: BN's statistics and normalization fused with the activation, the
    # pooling and the adds, forward and backward
    ("fused by torch.compile (BN, activation, pooling, adds)", r"CompiledFxGraph|cpp_fused"),
    ("pooling", r"max_pool|scatter_reduce"),
    ("optimizer", r"foreach|sgd|optim|lerp"),
    ("loss", r"cross_entropy|log_softmax|nll_loss"),
    ("data", r"randperm|randint|index_select|gather|flip|pad|crop|uint8|div_|to_copy|_to_copy|copy_"),
    ("elementwise", r"gelu|relu|celu|add|mul|sub|threshold|where|clone|fill|zero"),
]


def synthetic_npz(path: Path, n: int) -> Path:
    """``n`` random 32×32 images and labels as a CIFAR-10-shaped .npz (its first 500 also the test split)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g).numpy()
    y = torch.randint(0, 10, (n,), generator=g).numpy()
    np.savez(path, x_train=x, y_train=y, x_test=x[:500], y_test=y[:500])
    return path


def synthetic_run(recipe: str, fields: dict, data: Path, out: Path, iterations: int):
    """The recipe with ``fields`` changed, training ``iterations`` steps on ``data`` at the images' full size
    (progressive resizing off unless ``fields`` sets it: its size switch would recompile among the timed steps),
    without TTA, on this process's threads: what this benchmark and path_speed.py time."""
    return make_config(recipe, data=f"npz:{data}", iterations=iterations, tta="none", out=str(out),
                       threads=torch.get_num_threads(), **{"small_size": 0, **fields})  # fmt: skip


class Profiled(Hook):
    """Profiles ``steps`` steps after ``skip`` (compilation and warm-up) and keeps their operator table."""

    def __init__(self, skip: int, steps: int):
        self.skip, self.steps, self.table = skip, steps, None
        self.prof = profile(activities=[ProfilerActivity.CPU])

    def after_step(self, state, step) -> None:  # the window: from the end of step `skip` to that of the last
        if step.iteration == self.skip:
            self.prof.__enter__()
        elif step.iteration == self.skip + self.steps:
            self.prof.__exit__(None, None, None)
            self.table = self.prof.key_averages()


def profile_step(recipe: str, fields: dict, skip: int, steps: int) -> tuple:
    """(config, [(operator, self CPU µs)]) of ``steps`` steps after ``skip``, the recipe with ``fields`` changed."""
    config = make_config(recipe, **fields)
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_npz(Path(tmp) / "synthetic.npz", config.batch_size * (skip + steps + 1))
        config = synthetic_run(recipe, fields, data, Path(tmp) / "r", skip + steps)
        hook = Profiled(skip, steps)
        with contextlib.redirect_stdout(io.StringIO()):
            fit(config, hooks=[hook])
    return config, [(e.key, e.self_cpu_time_total) for e in hook.table if e.self_cpu_time_total > 0]


def by_category(rows: list) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    for key, t in rows:
        spent[next((c for c, pattern in CATEGORIES if re.search(pattern, key, re.I)), "other")] += t
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast94")
    parser.add_argument("--paths", nargs="+", default=["fast"], help="time_to_accuracy.py's paths, in turn")
    parser.add_argument("--rounds", type=int, default=1, help="each path profiled this many times, alternating")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip", type=int, default=5, help="steps before the profile (compilation, warm-up)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--batch-size", type=int, help="the recipe's batch unless given (what a step's size costs)")
    args = parser.parse_args()
    paths = PATHS.get(args.recipe, {"fast": {}})  # a recipe without time_to_accuracy's paths: itself
    unknown = set(args.paths) - set(paths)
    if unknown:
        parser.error(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(paths)}")
    print(f"{args.recipe}; {hardware.describe()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.steps} steps after {args.skip}, paths {' '.join(args.paths)}, {args.rounds} round(s)")  # fmt: skip
    per_image: dict[str, list[dict[str, float]]] = defaultdict(list)  # path -> each round's ms an image by category
    for r in range(args.rounds):
        for path in args.paths:
            fields = {**paths[path], **({"batch_size": args.batch_size} if args.batch_size else {})}
            config, rows = profile_step(args.recipe, fields, args.skip, args.steps)
            total, images = sum(t for _, t in rows), args.steps * config.batch_size
            spent = by_category(rows)
            per_image[path].append({**{k: v / images / 1e3 for k, v in spent.items()}, "total": total / images / 1e3})
            print(f"\nround {r}, path {path}: {config.model} {config.model_args}, batch {config.batch_size}")
            print(f"self CPU time per step: {total / args.steps / 1e3:.1f} ms ({total / images / 1e3:.3f} ms an image)")
            for name, t in sorted(spent.items(), key=lambda kv: -kv[1]):
                print(f"  {100 * t / total:5.1f}%  {t / args.steps / 1e3:8.1f} ms  {name}")
            print(f"the {args.top} largest operators and kernels (self CPU time):")
            for key, t in sorted(rows, key=lambda kv: -kv[1])[: args.top]:
                print(f"  {100 * t / total:5.1f}%  {key[:100]}")
    if len(args.paths) > 1 or args.rounds > 1:
        names = sorted({k for rounds in per_image.values() for d in rounds for k in d} - {"total"}) + ["total"]
        print("\nms an image (self CPU time), each round; the rounds alternate paths, so drift hits them alike:")
        print("| category | " + " | ".join(args.paths) + " |\n|---|" + "---|" * len(args.paths))
        for name in names:
            cells = [", ".join(f"{d.get(name, 0.0):.3f}" for d in per_image[p]) for p in args.paths]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
