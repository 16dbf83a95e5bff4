"""Prototype: ghost BN over a (k, G, C, ...) view (no transposition copies), timed against today's through the
trainer (path_speed's images_per_s), alternating, and checked against it numerically."""
import sys, time, tempfile
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, "/work/main/benchmarks")
from resnetlab.nn import norm
from resnetlab.nn.norm import _upcast
from torch.autograd.function import once_differentiable


def _v(t, nd):  # (k, C) -> (k, 1, C, 1, ...)
    return t.view(t.size(0), 1, t.size(1), *([1] * (nd - 3)))


def fwd(xg, weight, bias, eps):
    nd = xg.dim()
    dims = (1,) + tuple(range(3, nd))
    var, mean = torch.var_mean(xg, dim=dims, correction=0)  # (k, C)
    invstd = torch.rsqrt(var + eps)
    scale = weight * invstd
    shift = bias - mean * scale
    y = torch.addcmul(_v(shift, nd), xg, _v(scale, nd))
    return y, mean, var, invstd


def bwd(gy, xg, weight, mean, invstd):
    nd = xg.dim()
    dims = (1,) + tuple(range(3, nd))
    m = xg.numel() // (xg.size(0) * xg.size(2))
    sum_dy = gy.sum(dims)
    sum_dy_xc = (gy * (xg - _v(mean, nd))).sum(dims)
    grad_var = weight * sum_dy_xc * (-0.5) * invstd.pow(3)
    grad_mean = -weight * invstd * sum_dy
    a = weight * invstd
    b = grad_var * (2.0 / m)
    c = grad_mean / m - b * mean
    gx = torch.addcmul(_v(c, nd), xg, _v(b, nd)).addcmul_(gy, _v(a, nd))
    return gx, (sum_dy_xc * invstd).sum(0), sum_dy.sum(0)


class Grouped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xg, weight, bias, eps):
        y, mean, var, invstd = fwd(_upcast(xg), weight, bias, eps)
        ctx.save_for_backward(xg, weight, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y.to(xg.dtype), mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, _a, _b):
        xg, weight, mean, invstd = ctx.saved_tensors
        gx, gw, gb = bwd(_upcast(gy), _upcast(xg), weight, mean, invstd)
        return gx.to(xg.dtype), gw, gb, None


OLD = norm._BatchNorm._ghost


def new_ghost(self, x, weight, bias):
    n, c, g = x.size(0), x.size(1), self.ghost_batch_size
    k = n // g
    xg = x.unflatten(0, (k, g))
    y, mean, var = Grouped.apply(xg, weight, bias, self.eps)
    if self.training and self.track_running_stats:
        self._update_running_stats(mean.mean(0), var.mean(0), xg.numel() // (k * c))
    return y.flatten(0, 1)


def check():
    torch.manual_seed(0)
    bn = norm.BatchNorm2d(8, ghost_batch_size=4)
    bn.weight.data.uniform_(0.5, 1.5); bn.bias.data.normal_()
    for cl in (False, True):
        x = torch.randn(16, 8, 5, 5) * 3 + 1
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for impl in (OLD, new_ghost):
            norm._BatchNorm._ghost = impl
            b = norm.BatchNorm2d(8, ghost_batch_size=4); b.load_state_dict(bn.state_dict())
            xi = x.clone().requires_grad_(True)
            y = b(xi); gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
            (y * gy).sum().backward()
            outs.append((y.detach(), xi.grad, b.weight.grad, b.bias.grad, b.running_mean.clone(), b.running_var.clone()))
        for a, bb in zip(*outs):
            assert torch.allclose(a, bb, atol=1e-4, rtol=1e-5), (a - bb).abs().max()
    norm._BatchNorm._ghost = OLD
    print("numerics: equal")


if __name__ == "__main__":
    check()
    from path_speed import images_per_s
    from profile_step import synthetic_npz
    from time_to_accuracy import PATHS
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_npz(Path(tmp) / "s.npz", 1024 * 17)
        for r in range(rounds):
            for name, impl in (("old", OLD), ("new", new_ghost)):
                norm._BatchNorm._ghost = impl
                s = images_per_s("fast94", {}, data, Path(tmp) / f"{name}{r}", 12, 4)
                print(f"round {r} {name}: {s:.1f} img/s", flush=True)
