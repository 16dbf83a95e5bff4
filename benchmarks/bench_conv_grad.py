"""A 3×3 convolution's backward (input and weight gradients) through oneDNN alone against oneDNN's input gradient
plus the weight gradient as one matmul (``resnetlab.nn.conv.im2col_weight_grad``), measured in one run, at the
feature-map sizes of fast94's ResNet-9 and a few around them. Where the second wins is where the trainer uses
it (``resnetlab.hardware.matmul_weight_grad``).

    .venv/bin/python benchmarks/bench_conv_grad.py [--dtype bf16 fp32] [--repeats 4]

Channels-last, as the fast paths train. Run it alone: the two cores are shared by everything.
"""

import argparse
import time

import torch

from resnetlab.hardware import describe
from resnetlab.nn.conv import MAX_POSITIONS, MIN_CHANNELS, im2col_weight_grad

# (batch, in channels, out channels, feature map): fast94's late layers (3×3, 7×7), ResNet-50's last stage,
# and sizes where oneDNN's own is faster
SHAPES = [(512, 384, 384, 3), (512, 384, 384, 4), (512, 256, 256, 4), (512, 192, 384, 7), (64, 512, 512, 7),
          (512, 128, 256, 8), (512, 64, 64, 8), (512, 64, 192, 15), (128, 256, 256, 14)]  # fmt: skip


def seconds(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def backward(grad, x, w, mask):
    """oneDNN's convolution backward: input gradient, weight gradient, as ``mask`` asks."""
    return torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU {describe()}; "
          f"the trainer's rule: bf16 on AMX, ≤ {MAX_POSITIONS} positions, ≥ {MIN_CHANNELS} channels")  # fmt: skip
    print(f"{'dtype':>5} {'shape (N, C->O, HxW)':>22} {'oneDNN ms':>10} {'matmul ms':>10} {'speed-up':>9} "
          f"{'oneDNN GFLOP/s':>15} {'rule':>5}")  # fmt: skip
    for name in args.dtype:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        for n, c, o, hw in SHAPES:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, c, hw, hw, generator=g).to(dtype, memory_format=torch.channels_last)
            grad = torch.randn(n, o, hw, hw, generator=g).to(dtype, memory_format=torch.channels_last)
            w = torch.randn(o, c, 3, 3, generator=g).to(dtype, memory_format=torch.channels_last)

            onednn = seconds(lambda: backward(grad, x, w, [True, True, False]), args.repeats)  # noqa: B023
            matmul = seconds(lambda: (backward(grad, x, w, [True, False, False]),  # noqa: B023
                                      im2col_weight_grad(grad, x)), args.repeats)  # noqa: B023  # fmt: skip
            flop = 2 * 2 * n * c * o * 9 * hw * hw  # input and weight gradients
            rule = "yes" if hw * hw <= MAX_POSITIONS and min(c, o) >= MIN_CHANNELS else "no"
            print(f"{name:>5} {f'{n}, {c}->{o}, {hw}x{hw}':>22} {onednn * 1e3:10.1f} {matmul * 1e3:10.1f} "
                  f"{onednn / matmul:8.2f}x {flop / onednn / 1e9:15.0f} {rule:>5}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
