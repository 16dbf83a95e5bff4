"""Images/s of a full training step (augmentation, forward, loss, backward, SGD step): resnetlab's
paths against a reference written here in plain PyTorch (torch.nn.BatchNorm2d, NCHW, fp32, eager,
the same batched augmentation), measured in one run.

    .venv/bin/python benchmarks/bench_train.py [--model resnet20|resnet50] [--steps 20] [--batch-size N]
        [--paths eager,compile,...]

Run it alone: the two cores are shared by everything. GFLOP/s counts training as 3 × the forward
multiply-adds × 2. The bf16 paths are listed only where oneDNN has bf16 kernels for this CPU
(elsewhere bf16 convolutions fall back to a slow reference kernel); name them to run them anyway.
"""

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

import resnetlab
from resnetlab import hardware
from resnetlab.data import generator, pad_crop_flip
from resnetlab.nn import set_batchnorm_kernel


# ---- the plain-PyTorch reference (independent of resnetlab's model code) ----
class RefBlock(nn.Module):
    def __init__(self, cin, cout, stride, bottleneck):
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
            if bottleneck and (stride != 1 or cin != cout)
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
    def __init__(self, imagenet: bool):
        super().__init__()
        if imagenet:  # ResNet-50
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
            plan, cin = [(256, 3, 1), (512, 4, 2), (1024, 6, 2), (2048, 3, 2)], 64
        else:  # CIFAR ResNet-20
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            plan, cin = [(16, 3, 1), (32, 3, 2), (64, 3, 2)], 16
        blocks = []
        for cout, n, stride in plan:
            for j in range(n):
                blocks.append(RefBlock(cin, cout, stride if j == 0 else 1, imagenet))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, 1000 if imagenet else 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


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
    return ["auto"] + [name for name, (bf16, *_) in PATHS.items() if bf16_fast or not bf16]


def images_per_second(model, batch, size, steps, bf16=False, channels_last=False, compile_model=False):
    torch.manual_seed(0)
    data = torch.randint(0, 256, (batch * 4, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch * 4,))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run = torch.compile(model) if compile_model else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step(i):
        idx = torch.arange(i % 4 * batch, (i % 4 + 1) * batch)
        x = pad_crop_flip(data[idx], 4, True, generator(0, i)).float().div_(255).sub_(0.5)
        x = x.contiguous(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = run(x)
        loss = F.cross_entropy(out.float(), labels[idx] % out.shape[1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3):  # warm-up (and compilation)
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", choices=["resnet20", "resnet50"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, help="default: 128 for resnet20, 16 for resnet50")
    parser.add_argument(
        "--paths", default=",".join(default_paths()), help=f"comma-separated, from auto, {', '.join(PATHS)}"
    )
    args = parser.parse_args()
    imagenet = args.model == "resnet50"
    batch, size = (16, 224) if imagenet else (128, 32)
    batch = args.batch_size or batch
    macs = resnetlab.summary(resnetlab.create_model(args.model), (3, size, size)).total_mult_adds
    gflop = 3 * macs * 2 / 1e9  # per image, training
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads; {args.model}, "
        f"batch {batch}, {size}x{size}, {gflop:.2f} GFLOP per training image; "
        f"CPU {hardware.describe()}, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {'yes' if hardware.native_bf16() else 'no'}; auto = {hardware.fast_path(torch.device('cpu'))[:3]}"
    )
    ref = images_per_second(RefResNet(imagenet), batch, size, args.steps)
    print(f"{'path':>22} {'img/s':>8} {'GFLOP/s':>8} {'vs reference':>13}")
    print(f"{'reference (plain torch)':>22} {ref:8.1f} {ref * gflop:8.1f} {1.0:12.2f}x")
    for name in args.paths.split(","):
        bf16, cl, kernel, compiled = auto_path() if name == "auto" else PATHS[name]
        set_batchnorm_kernel(kernel)
        ips = images_per_second(resnetlab.create_model(args.model), batch, size, args.steps, bf16, cl, compiled)
        print(f"{name:>22} {ips:8.1f} {ips * gflop:8.1f} {ips / ref:12.2f}x")
    set_batchnorm_kernel("eager")


if __name__ == "__main__":
    main()
