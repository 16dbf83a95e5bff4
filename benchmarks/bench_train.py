"""Images/s of a full training step as a run takes it (a fresh shuffled batch, augmentation,
forward, the recipe's label-smoothed loss, backward, Nesterov SGD with weight decay and a cosine
learning rate): resnetlab's paths against a reference written here in plain PyTorch
(torch.nn.BatchNorm2d, NCHW, fp32, eager, the same batched augmentation), measured in one run.

    .venv/bin/python benchmarks/bench_train.py [--model resnet20|resnet9|resnet18|resnet50] [--width W]
        [--model-arg KEY=VALUE ...] (resnetlab's model only; the reference keeps its own)
        [--steps 200] [--batch-size N]
        [--paths auto,eager,...] [--loop-epochs 3]

Paths: resnetlab's model under each choice of precision, layout, BN kernel and compilation; ``auto``
is what ``--precision auto`` trains with here; ``reference-best`` is plain PyTorch's own best path
(the reference under bf16 autocast + compile + channels-last, where bf16 is native); ``loop`` is not
a benchmark loop at all but ``resnetlab.fit`` itself (the fast-cifar recipe at full size, --precision auto, on
10,000 synthetic images, no evaluation), timed from its epoch records after the first epoch, which
pays for compilation: the gap between ``auto`` and ``loop`` is the trainer's own cost.

Every path steps through 10,000 synthetic images in shuffled batches, so no batch is reused from the
cache as a few fixed batches would be. Run it alone: the two cores are shared by everything. GFLOP/s
counts training as 3 × the forward multiply-adds × 2. The bf16 paths are listed only where the CPU
has native bf16 (elsewhere bf16 convolutions are emulated, slowly); name them to run them anyway.
"""

import argparse
import contextlib
import io
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import resnetlab
from resnetlab import hardware
from resnetlab.data import EpochLoader, PadCropFlip
from resnetlab.nn import convert_matmul_weight_grad, set_batchnorm_kernel


# ---- the plain-PyTorch reference (independent of resnetlab's model code) ----
class RefBlock(nn.Module):
    def __init__(self, cin, cout, stride, bottleneck, projection):
        super().__init__()
        mid = cout // 4 if bottleneck else cout
        convs = (
            [(cin, mid, 1, 1), (mid, mid, 3, stride), (mid, cout, 1, 1)]
            if bottleneck
            else [(cin, cout, 3, stride), (cout, cout, 3, 1)]
        )
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, k // 2, bias=False) for i, o, k, s in convs)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _, _ in convs)
        self.pad = cout - cin if not bottleneck else 0
        self.stride = stride
        self.proj = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if projection and (stride != 1 or cin != cout)
            else None
        )

    def forward(self, x):
        out = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            out = bn(conv(out))
            if i < len(self.convs) - 1:
                out = F.relu(out)
        if self.proj is not None:
            short = self.proj(x)
        else:  # option A: subsample and zero-pad channels
            short = x[:, :, :: self.stride, :: self.stride]
            short = F.pad(short, (0, 0, 0, 0, 0, self.pad)) if self.pad else short
        return F.relu(out + short)


class RefResNet(nn.Module):
    def __init__(self, model: str):
        super().__init__()
        imagenet, bottleneck = model in ("resnet18", "resnet50"), model == "resnet50"
        if imagenet:  # ResNet-18 (basic blocks) or ResNet-50 (bottlenecks), projection shortcuts (option B)
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
            plan = [(256, 3, 1), (512, 4, 2), (1024, 6, 2), (2048, 3, 2)] if bottleneck else [
                (64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]  # fmt: skip
            cin = 64
        else:  # CIFAR ResNet-20
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            plan, cin = [(16, 3, 1), (32, 3, 2), (64, 3, 2)], 16
        blocks = []
        for cout, n, stride in plan:
            for j in range(n):
                blocks.append(RefBlock(cin, cout, stride if j == 0 else 1, bottleneck, imagenet))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 1000 if imagenet else 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class RefResNet9(nn.Module):
    """Page's ResNet-9 in plain PyTorch (conv-BN-ReLU, 2×2 max-pool after the first three widened stages, two
    residual blocks adding after the second ReLU, global max-pool, a bias-free classifier × 0.125)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [round(w * width) for w in (64, 128, 256, 512)]

        def cbr(i, o, pool=False):
            layers = [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

        self.prep, self.l1, self.r1 = (
            cbr(3, c[0]),
            cbr(c[0], c[1], True),
            nn.Sequential(cbr(c[1], c[1]), cbr(c[1], c[1])),
        )
        self.l2, self.l3 = cbr(c[1], c[2], True), cbr(c[2], c[3], True)
        self.r3 = nn.Sequential(cbr(c[3], c[3]), cbr(c[3], c[3]))
        self.fc = nn.Linear(c[3], 10, bias=False)

    def forward(self, x):
        x = self.l1(self.prep(x))
        x = x + self.r1(x)
        x = self.l3(self.l2(x))
        x = x + self.r3(x)
        return self.fc(torch.amax(x, dim=(2, 3))) * 0.125


def reference(model: str, width: float) -> nn.Module:
    return RefResNet9(width) if model == "resnet9" else RefResNet(model)


# ---- resnetlab's paths ----
PATHS = {  # name: (bf16 autocast, channels-last, BN kernel, torch.compile)
    "eager": (False, False, "eager", False),
    "bn-compiled": (False, False, "compiled", False),
    "cl": (False, True, "eager", False),
    "bf16": (True, False, "eager", False),
    "bf16-cl": (True, True, "eager", False),
    "bf16-cl-bn-compiled": (True, True, "compiled", False),
    "compile": (False, False, "eager", True),
    "compile-cl": (False, True, "eager", True),
    "bf16-compile-cl": (True, True, "eager", True),
}


def auto_path() -> tuple[bool, bool, str, bool]:
    """What ``--precision auto`` trains with on this CPU (resnetlab.hardware.fast_path: one decision for
    training, the benchmarks and deployment)."""
    precision, compiled, channels_last, _ = hardware.fast_path(torch.device("cpu"))
    return precision == "bf16", channels_last, "eager", compiled


def default_paths() -> list[str]:
    bf16_fast = hardware.native_bf16()  # mkldnn's own check is true wherever bf16 is merely emulated
    paths = ["auto", "eager", "compile"] + (["bf16-compile-cl", "reference-best"] if bf16_fast else [])
    return paths + ["loop"]


POOL = 10_000  # synthetic training images: every step draws a fresh batch from them, as a run does


def synthetic(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (POOL, 3, size, size), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (POOL,), generator=g
    )


def images_per_second(model, batch, size, steps, bf16=False, channels_last=False, compile_model=False):
    """Steady-state images/s over ``steps`` steps after 5 warm-up steps (compilation included there)."""
    torch.manual_seed(0)
    x_pool, y_pool = synthetic(size)
    loader = EpochLoader(x_pool, y_pool, batch, seed=0, augment=PadCropFlip(4, True))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run = torch.compile(model) if compile_model else model
    # the recipe's optimizer and loss (fast-cifar: Nesterov, weight decay 5e-4, label smoothing 0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    warmup, total = 5, 5 + steps

    def batches():
        epoch = 0
        while True:
            for _, xb, yb in loader.batches(epoch):
                yield xb, yb
            epoch += 1

    def step(i, xb, yb):
        for group in opt.param_groups:  # cosine learning rate, set every step as the trainer does
            group["lr"] = 0.05 * (1 + math.cos(math.pi * i / total))
        x = xb.float().div_(255).sub_(0.5).contiguous(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = run(x)
        loss = F.cross_entropy(out.float(), yb % out.shape[1], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    stream = batches()
    for i in range(warmup):
        step(i, *next(stream))
    start = time.perf_counter()
    for i in range(warmup, total):
        step(i, *next(stream))
    return batch * steps / (time.perf_counter() - start)


def loop_images_per_second(model: str, batch: int, size: int, epochs: int, model_args: dict | None = None) -> float:
    """``resnetlab.fit`` on the synthetic images with the fast-cifar recipe; images/s of the epochs after
    the first (which compiles), from the run's own records."""
    from resnetlab.train import fit, make_config

    x, y = synthetic(size)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synthetic.npz"
        np.savez(data, x_train=x.permute(0, 2, 3, 1).numpy(), y_train=y.numpy(), x_test=x[:500].permute(0, 2, 3, 1)
                 .numpy(), y_test=y[:500].numpy())  # fmt: skip
        # the images at their own size throughout (no progressive resizing), as every other path times them
        config = make_config("fast-cifar", model=model, data=f"npz:{data}", epochs=epochs, batch_size=batch,
                             threads=torch.get_num_threads(), out=str(Path(tmp) / "run"),
                             model_args=model_args or {}, small_size=0)  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):  # its log stays in the run folder
            fit(config)
        records = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    first, last = records[0], records[-1]
    return (last["iteration"] - first["iteration"]) * batch / (last["time_s"] - first["time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", choices=["resnet20", "resnet9", "resnet18", "resnet50"])
    parser.add_argument("--width", type=float, default=1.0, help="resnet9: the width multiplier (0.5: half)")
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model argument for resnetlab's model (JSON value or text), e.g. activation=gelu",
    )
    parser.add_argument("--steps", type=int, default=200, help="timed steps per path, after 5 warm-up steps")
    parser.add_argument("--loop-epochs", type=int, default=3, help="loop: epochs of 78 steps (the first not timed)")
    parser.add_argument("--batch-size", type=int, help="default: 128 for resnet20, 16 for resnet18 and resnet50")
    parser.add_argument(
        "--paths",
        default=",".join(default_paths()),
        help=f"comma-separated, from auto, reference-best, loop, {', '.join(PATHS)}",
    )
    args = parser.parse_args()
    imagenet = args.model in ("resnet18", "resnet50")
    kwargs = {"width": args.width} if args.model == "resnet9" else {}
    for item in args.model_arg:
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    batch, size = (16, 224) if imagenet else (128, 32)
    batch = args.batch_size or batch
    macs = resnetlab.summary(resnetlab.create_model(args.model, **kwargs), (3, size, size)).total_mult_adds
    gflop = 3 * macs * 2 / 1e9  # per image, training
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads; {args.model}"
        f"{f' {kwargs}' if kwargs else ''}, "
        f"batch {batch}, {size}x{size}, {gflop:.2f} GFLOP per training image; "
        f"CPU {hardware.describe()}, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {'yes' if hardware.native_bf16() else 'no'}; auto = {hardware.fast_path(torch.device('cpu'))[:3]}"
    )
    ref = images_per_second(reference(args.model, args.width), batch, size, args.steps)
    print(f"{'path':>22} {'img/s':>8} {'GFLOP/s':>8} {'vs reference':>13}")
    print(f"{'reference (plain torch)':>22} {ref:8.1f} {ref * gflop:8.1f} {1.0:12.2f}x")
    for name in args.paths.split(","):
        if name == "reference-best":
            ips = images_per_second(reference(args.model, args.width), batch, size, args.steps, True, True, True)
        elif name == "loop":
            if imagenet:
                continue  # the trainer's recipe is a CIFAR one; ResNet-50 is timed by the step alone
            ips = loop_images_per_second(args.model, batch, size, args.loop_epochs, kwargs)
        else:
            bf16, cl, kernel, compiled = auto_path() if name == "auto" else PATHS[name]
            set_batchnorm_kernel(kernel)
            model = resnetlab.create_model(args.model, **kwargs)
            if name == "auto" and hardware.matmul_weight_grad("bf16" if bf16 else "fp32", torch.device("cpu")):
                convert_matmul_weight_grad(model)  # as the trainer does (bf16 on AMX)
            ips = images_per_second(model, batch, size, args.steps, bf16, cl, compiled)
        print(f"{name:>22} {ips:8.1f} {ips * gflop:8.1f} {ips / ref:12.2f}x", flush=True)
    set_batchnorm_kernel("eager")


if __name__ == "__main__":
    main()
