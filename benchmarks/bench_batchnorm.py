"""Forward+backward time of resnetlab's BatchNorm2d against torch.nn.BatchNorm2d, measured in one run.

    .venv/bin/python benchmarks/bench_batchnorm.py [--path fp32-compile bf16-cl-compile kernels] [--repeats 20]

Paths (default: the two the training fast paths use):
- ``fp32-compile``, ``bf16-cl-compile``: what a compiled training step runs around each BN, i.e.
  ReLU(BN(x))·w and ReLU(BN(x) + shortcut)·w (w: a per-channel scale in place of the next
  convolution), compiled whole by torch.compile with either BN, forward and
  backward; bf16 under CPU autocast with channels-last inputs (bf16 activations, fp32 statistics), as
  ``--precision bf16 --channels-last --compile`` trains. Target: geometric mean ≤ 1.05× native.
- ``kernels``: the BN layer alone in fp32, this project's "eager" kernel (PyTorch ops) and "compiled"
  kernel (``set_batchnorm_kernel``) against native eager (target: ≤ 1.25×); add
  ``--channels-last`` for channels-last inputs.
Compilation happens in the warm-up, not timed. Run alone: the two cores are shared by everything.
"""

import argparse
import statistics
import time

import torch

from resnetlab.hardware import describe
from resnetlab.nn import BatchNorm2d, set_batchnorm_kernel

SHAPES = [(128, 16, 32, 32), (128, 64, 8, 8), (32, 256, 56, 56)]
GRAPH_SHAPES = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8), (32, 256, 56, 56)]  # ResNet-20's + a big one


def time_fwd_bwd(bn, x: torch.Tensor, dy: torch.Tensor, repeats: int, *extra: torch.Tensor, bf16=False) -> float:
    """Median seconds of one training-mode forward and backward of ``bn(x, *extra)``."""
    times = []
    for i in range(repeats + 3):
        x.grad = None
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            y = bn(x, *extra)
        y.backward(dy)
        if i >= 3:  # warm-up, compilation included
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def graph_path(path: str, repeats: int) -> float:
    """ReLU(BN(x)) and ReLU(BN(x) + s), compiled whole with either BN; returns the geometric mean ratio."""
    bf16 = path.startswith("bf16")
    dtype, fmt = (torch.bfloat16, torch.channels_last) if bf16 else (torch.float32, torch.contiguous_format)
    print(f"{path}: {dtype}, {'channels-last' if bf16 else 'NCHW'}, torch.compile of the unit around the BN")
    print(f"{'unit':>14} {'shape':>20} {'native ms':>10} {'ours ms':>9} {'ratio':>7}")
    ratios = []
    for shape in GRAPH_SHAPES:
        for unit in ("bn-relu", "bn-add-relu"):
            times = {}
            for name, layer in (("native", torch.nn.BatchNorm2d), ("ours", BatchNorm2d)):
                torch.manual_seed(0)
                x = torch.randn(shape).to(dtype=dtype, memory_format=fmt).requires_grad_()
                dy = torch.randn(shape).to(dtype=dtype, memory_format=fmt)
                s = torch.randn(shape).to(dtype=dtype, memory_format=fmt)
                bn, w = layer(shape[1]), torch.nn.Parameter(torch.ones(1, shape[1], 1, 1))
                torch._dynamo.reset()
                # × w: a per-channel scale stands in for the next convolution, which keeps the ReLU's
                # output for its own backward, so the ReLU's backward reads it as in a network.
                # Without it inductor saves a bool mask instead, whose vectorized store is ~35× slower
                # than eager on torch 2.13's CPU backend (relu alone: 11.8 ms vs 0.34 ms at 128×16×32²).
                if unit == "bn-relu":
                    fn = torch.compile(lambda x, bn=bn, w=w: torch.relu(bn(x)) * w)
                    times[name] = time_fwd_bwd(fn, x, dy, repeats, bf16=bf16)
                else:
                    fn = torch.compile(lambda x, s, bn=bn, w=w: torch.relu(bn(x) + s) * w)
                    times[name] = time_fwd_bwd(fn, x, dy, repeats, s, bf16=bf16)
            ratios.append(times["ours"] / times["native"])
            print(f"{unit:>14} {str(shape):>20} {times['native'] * 1e3:10.2f} {times['ours'] * 1e3:9.2f} "
                  f"{ratios[-1]:6.2f}x")  # fmt: skip
    mean = statistics.geometric_mean(ratios)
    print(f"{path}: geometric mean ratio {mean:.2f}x of native (target <= 1.05x)")
    return mean


def kernels(channels_last: bool, repeats: int) -> None:
    """The BN layer alone in fp32: this project's eager and compiled kernels against native eager."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    print(f"kernels: fp32, {'channels-last' if channels_last else 'NCHW'}, the layer alone")
    print(f"{'shape':>20} {'native ms':>10} {'eager ms':>9} {'ratio':>7} {'compiled ms':>12} {'ratio':>7}")
    ratios: dict[str, list[float]] = {"eager": [], "compiled": []}
    for shape in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(shape).to(memory_format=fmt).requires_grad_()
        dy = torch.randn(shape).to(memory_format=fmt)
        native = time_fwd_bwd(torch.nn.BatchNorm2d(shape[1]), x, dy, repeats)
        row = f"{str(shape):>20} {native * 1e3:10.2f}"
        for kind, width in (("eager", 9), ("compiled", 12)):
            set_batchnorm_kernel(kind)
            ours = time_fwd_bwd(BatchNorm2d(shape[1]), x, dy, repeats)
            ratios[kind].append(ours / native)
            row += f" {ours * 1e3:{width}.2f} {ours / native:6.2f}x"
        print(row)
    set_batchnorm_kernel("eager")
    for kind, r in ratios.items():
        print(f"{kind}: geometric mean ratio {statistics.geometric_mean(r):.2f}x of native (target <= 1.25x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", nargs="+", default=["fp32-compile", "bf16-cl-compile"],
                        choices=["fp32-compile", "bf16-cl-compile", "kernels"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true", help="kernels: channels-last inputs")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {describe()}, {torch.get_num_threads()} threads")
    for path in args.path:
        if path == "kernels":
            kernels(args.channels_last, args.repeats)
        else:
            graph_path(path, args.repeats)


if __name__ == "__main__":
    main()
