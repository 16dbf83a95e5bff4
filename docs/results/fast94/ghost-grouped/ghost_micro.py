"""Ghost BN + GELU, compiled, forward and backward, bf16 autocast, channels-last, fast94's BN shapes at batch 1024:
the transposing ghost (before) against the grouped view (now), alternated call by call so drift hits both."""
import time

import torch
import torch.nn.functional as F

from resnetlab.nn import norm
from resnetlab.nn.norm import BatchNorm2d, BatchNormFunction


def old_ghost(self, x, weight, bias):
    n, c, g = x.size(0), x.size(1), self.ghost_batch_size
    k, rest = n // g, x.shape[2:]
    grouped = x.reshape(k, g, c, *rest).transpose(0, 1).reshape(g, k * c, *rest)
    y, mean, var = BatchNormFunction.apply(grouped, weight.repeat(k), bias.repeat(k), self.eps)
    if self.training and self.track_running_stats:
        m = grouped.numel() // grouped.size(1)
        self._update_running_stats(mean.view(k, c).mean(0), var.view(k, c).mean(0), m)
    return y.reshape(g, k, c, *rest).transpose(0, 1).reshape(x.shape)


class Old(BatchNorm2d):
    _ghost = old_ghost


SHAPES = [(32, 31), (64, 15), (64, 15), (64, 15), (192, 7), (384, 3), (384, 3), (384, 3)]


class Net(torch.nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.bns = torch.nn.ModuleList(cls(c, ghost_batch_size=64, freeze_weight=True) for c, _ in SHAPES)

    def forward(self, xs):
        return [F.gelu(bn(x)) for bn, x in zip(self.bns, xs)]


torch.manual_seed(0)
xs = [torch.randn(1024, c, s, s).bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_()
      for c, s in SHAPES]
gs = [torch.randn(1024, c, s, s).bfloat16().contiguous(memory_format=torch.channels_last) for c, s in SHAPES]
nets = {"before": torch.compile(Net(Old)), "now": torch.compile(Net(BatchNorm2d))}


def step(net):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys = net(xs)
    torch.autograd.backward(ys, gs)


for name, net in nets.items():
    t = time.perf_counter()
    for _ in range(3):
        step(net)
    print(f"{name}: compile + 3 steps {time.perf_counter() - t:.1f} s", flush=True)
times = {k: [] for k in nets}
for r in range(12):
    for name, net in nets.items():
        t = time.perf_counter()
        step(net)
        times[name].append(time.perf_counter() - t)
for name, ts in times.items():
    ts = sorted(ts)
    print(f"{name}: median {1000 * ts[len(ts) // 2]:.1f} ms, min {1000 * ts[0]:.1f} ms a step of 1024 images")
b, n = sorted(times["before"])[6], sorted(times["now"])[6]
print(f"now/before: {n / b:.3f} (median)")
