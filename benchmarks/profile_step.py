"""Where one training step's time goes: a recipe's model and batch through the trainer's own step
(``resnetlab.fit`` on synthetic images, its precision, layout and compilation), under torch.profiler, its
self CPU time summed into convolutions (oneDNN), batch norm, the rest of the elementwise work (activations,
pooling, adds; with torch.compile, the fused kernels that hold BN's normalization too), the optimizer,
the loss and the data (augmentation, normalization).

    .venv/bin/python benchmarks/profile_step.py [--recipe fast94] [--batch-size N] [--steps 5] [--top 15]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast94")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip", type=int, default=5, help="steps before the profile (compilation, warm-up)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--batch-size", type=int, help="the recipe's batch unless given (what a step's size costs)")
    args = parser.parse_args()
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    config = make_config(args.recipe, **batch)
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_npz(Path(tmp) / "synthetic.npz", config.batch_size * (args.skip + args.steps + 1))
        config = make_config(args.recipe, data=f"npz:{data}", iterations=args.skip + args.steps, tta="none",
                             out=str(Path(tmp) / "r"), threads=torch.get_num_threads(), **batch)  # fmt: skip
        hook = Profiled(args.skip, args.steps)
        with contextlib.redirect_stdout(io.StringIO()):
            fit(config, hooks=[hook])
    rows = [(e.key, e.self_cpu_time_total) for e in hook.table if e.self_cpu_time_total > 0]
    total = sum(t for _, t in rows)
    spent: dict[str, float] = defaultdict(float)
    for key, t in rows:
        name = next((c for c, pattern in CATEGORIES if re.search(pattern, key, re.I)), "other")
        spent[name] += t
    print(f"{args.recipe}: {config.model} {config.model_args}, batch {config.batch_size}; {hardware.describe()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} steps after "
          f"{args.skip}")  # fmt: skip
    print(f"self CPU time per step: {total / args.steps / 1e3:.1f} ms")
    for name, t in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * t / total:5.1f}%  {t / args.steps / 1e3:8.1f} ms  {name}")
    print(f"\nthe {args.top} largest operators and kernels (self CPU time):")
    for key, t in sorted(rows, key=lambda kv: -kv[1])[: args.top]:
        print(f"  {100 * t / total:5.1f}%  {key[:100]}")


if __name__ == "__main__":
    main()
