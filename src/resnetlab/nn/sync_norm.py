"""Batch normalization over the global batch of a data-parallel run (Algorithm 1 with the mini-batch
spread over processes), on any ``torch.distributed`` backend: gloo on CPU, NCCL on GPU.

``torch.nn.SyncBatchNorm`` has CUDA kernels only and ``convert_sync_batchnorm`` skips this project's BN,
so this is the project's own: the same formulas as ``norm.py`` with their two reductions made global.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import UsageError
from .norm import BatchNorm1d, BatchNorm2d, _BatchNorm, _channel_view, _reduce_dims, _upcast

_GROUPS: dict[str, Any] = {"": None}  # process groups by name ("": the default group), for the op below


@torch.library.custom_op("resnetlab::sum_over_processes", mutates_args=())
def sum_over_processes(t: Tensor, group: str) -> Tensor:
    """``t`` summed over every process of the group named ``group`` ("": the default group), in one all-reduce.
    An operator of its own, opaque to torch.compile: a node of the compiled graph, not a break in it (the
    in-place ``dist.all_reduce`` and a ``ProcessGroup`` argument would break the graph at every BN)."""
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=_GROUPS[group])
    return out


@sum_over_processes.register_fake
def _(t: Tensor, group: str) -> Tensor:
    return torch.empty_like(t)


def _group_name(group: Any) -> str:
    if group is None:
        return ""
    _GROUPS.setdefault(group.group_name, group)
    return group.group_name


class SyncBatchNormFunction(torch.autograd.Function):
    """Forward: per-channel count, Σx and Σx² of every process in one all-reduce, in float64 (the local
    sums come from a centred float32 variance, so E[x²] − E[x]² loses nothing even when |μ| ≫ σ);
    processes may hold different counts. Backward: the paper's formulas with Σ ∂ℓ/∂y and
    Σ ∂ℓ/∂y·(x − μ_B) summed over processes; ∂ℓ/∂γ and ∂ℓ/∂β stay local (DistributedDataParallel
    averages them, like every other parameter's gradient)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float, group: str):
        xf = _upcast(x)
        dims, nd = _reduce_dims(x.dim()), x.dim()
        m = x.numel() // x.size(1)
        var, mean = torch.var_mean(xf, dim=dims, correction=0)
        mean64 = mean.double()
        count = torch.full_like(mean64, float(m))
        stats = torch.cat([count, m * mean64, m * (var.double() + mean64 * mean64)])
        count, total, total_sq = sum_over_processes(stats, group).chunk(3)
        g_mean = total / count
        g_var = (total_sq / count - g_mean * g_mean).clamp_(min=0)
        mean, var = g_mean.to(xf.dtype), g_var.to(xf.dtype)
        invstd = torch.rsqrt(var + eps)
        scale = weight * invstd
        y = torch.addcmul(_channel_view(bias - mean * scale, nd), xf, _channel_view(scale, nd))
        total_count = count[:1].clone()  # the global m, a tensor: reading it as a number would break a compiled graph
        ctx.save_for_backward(x, weight, mean, invstd, total_count)
        ctx.group = group
        ctx.mark_non_differentiable(mean, var, total_count)
        return y.to(x.dtype), mean, var, total_count

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor, _grad_mean, _grad_var, _grad_count):
        x, weight, mean, invstd, m = ctx.saved_tensors
        xf, dy = _upcast(x), _upcast(grad_y)
        dims, nd = _reduce_dims(x.dim()), x.dim()
        local_dy = dy.sum(dims)
        local_dy_xc = (dy * (xf - _channel_view(mean, nd))).sum(dims)
        sum_dy, sum_dy_xc = sum_over_processes(torch.cat([local_dy, local_dy_xc]), ctx.group).chunk(2)
        m = m.to(xf.dtype)
        # as in batchnorm_backward (norm.py), with the global sums and the global count m
        a = weight * invstd
        b = weight * sum_dy_xc * (-0.5) * invstd.pow(3) * (2.0 / m)
        c = -weight * invstd * sum_dy / m - b * mean
        grad_x = torch.addcmul(_channel_view(c, nd), xf, _channel_view(b, nd)).addcmul_(dy, _channel_view(a, nd))
        return grad_x.to(x.dtype), local_dy_xc * invstd, local_dy, None, None


class _SyncBatchNorm(_BatchNorm):
    """Training-mode statistics over every process of ``process_group`` (None: the default group).
    Outside a process group of more than one process, it is the ordinary BN."""

    process_group: Any = None

    def _forward_batch_stats(self, x: Tensor) -> Tensor:
        group = self.process_group
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1):
            return super()._forward_batch_stats(x)
        weight, bias = self._affine(x)
        y, mean, var, count = SyncBatchNormFunction.apply(x, weight, bias, self.eps, _group_name(group))
        if not torch.compiler.is_compiling() and int(count) <= 1:  # eager only: a number read back breaks a graph
            raise UsageError(f"Expected more than 1 value per channel over all processes, got {int(count)}")
        if self.track_running_stats:
            self._update_running_stats(mean, var, count)
        return y


class SyncBatchNorm1d(_SyncBatchNorm, BatchNorm1d):
    """``BatchNorm1d`` whose training statistics span every process."""


class SyncBatchNorm2d(_SyncBatchNorm, BatchNorm2d):
    """``BatchNorm2d`` whose training statistics span every process."""


def convert_sync_batchnorm(model: nn.Module, process_group: Any = None) -> nn.Module:
    """Every resnetlab BN of ``model`` turned into its synchronized form, in place (parameters, buffers
    and ``state_dict`` keys unchanged). ``torch.nn.BatchNorm*`` on CUDA goes through
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``; on CPU it is refused (torch's kernels are CUDA-only)."""
    torch_bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if torch_bns:
        if any(p.device.type != "cuda" for p in model.parameters()):
            raise UsageError(
                "--sync-bn: torch.nn.BatchNorm is synchronized by torch.nn.SyncBatchNorm, which runs on CUDA only; "
                "use this project's BN (--norm bn) on CPU, or --no-sync-bn"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
    for module in list(model.modules()):
        if isinstance(module, _BatchNorm) and module.ghost_batch_size:
            raise UsageError("ghost batch norm normalizes groups of each process's images by definition: run it "
                             "with --no-sync-bn (or without --bn-ghost-size)")  # fmt: skip
        if isinstance(module, _BatchNorm) and not isinstance(module, _SyncBatchNorm):
            sync = SyncBatchNorm2d if isinstance(module, BatchNorm2d) else SyncBatchNorm1d
            module.__class__ = sync  # the same parameters and buffers, the synchronized forward
            module.process_group = process_group
    return model


__all__ = ["SyncBatchNorm1d", "SyncBatchNorm2d", "SyncBatchNormFunction", "convert_sync_batchnorm"]
