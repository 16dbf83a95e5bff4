"""Forward+backward time of resnetlab's BatchNorm2d against torch.nn.BatchNorm2d, measured in one run.

    .venv/bin/python benchmarks/bench_batchnorm.py [--repeats 20] [--channels-last]

Both kernels of resnetlab's BN run the same explicit formulas: "eager" as PyTorch ops, "compiled"
fused by torch.compile (compilation is done in the warm-up, not timed). Target (issue 2): at most
1.25× native. Run alone: the two cores are shared by everything.
"""

import argparse
import platform
import statistics
import time

import torch

from resnetlab.nn import BatchNorm2d, set_batchnorm_kernel

SHAPES = [(128, 16, 32, 32), (128, 64, 8, 8), (32, 256, 56, 56)]


def time_fwd_bwd(bn: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor, repeats: int) -> float:
    """Median seconds of one training-mode forward and backward."""
    times = []
    for i in range(repeats + 3):
        x.grad = None
        start = time.perf_counter()
        bn(x).backward(dy)
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, {'channels-last' if args.channels_last else 'NCHW'}, fp32"
    )
    print(f"{'shape':>20} {'native ms':>10} {'eager ms':>9} {'ratio':>7} {'compiled ms':>12} {'ratio':>7}")
    ratios = {"eager": [], "compiled": []}
    for shape in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(shape).to(memory_format=fmt).requires_grad_()
        dy = torch.randn(shape).to(memory_format=fmt)
        native = time_fwd_bwd(torch.nn.BatchNorm2d(shape[1]), x, dy, args.repeats)
        row = f"{str(shape):>20} {native * 1e3:10.2f}"
        for kind, width in (("eager", 9), ("compiled", 12)):
            set_batchnorm_kernel(kind)
            ours = time_fwd_bwd(BatchNorm2d(shape[1]), x, dy, args.repeats)
            ratios[kind].append(ours / native)
            row += f" {ours * 1e3:{width}.2f} {ours / native:6.2f}x"
        print(row)
    for kind, r in ratios.items():
        print(f"{kind}: geometric mean ratio {statistics.geometric_mean(r):.2f}x of native (target <= 1.25x)")


if __name__ == "__main__":
    main()
