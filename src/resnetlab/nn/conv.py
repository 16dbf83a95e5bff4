"""A 3×3 convolution whose weight gradient is one matrix product (im2col), for the small late-stage feature maps
where oneDNN's own weight gradient is slow on AMX.

Measured on a 2-core AMX Xeon, bf16, channels-last, batch 512 (docs/performance.md, "fast94"): oneDNN's
AMX weight gradient of a 384→384 3×3 convolution on 3×3 feature maps runs at ~50 GFLOP/s, a fifth of the same
layer's forward (~255); written as patches(N·H·W × 9C)ᵀ · grad_out(N·H·W × O), it is one bf16 matmul that
oneDNN runs on AMX at ~300. The trainer converts the eligible layers only on AMX in bf16
(``convert_matmul_weight_grad``); in fp32 the measurement found no steady gain (0.45–1.35×, mostly below 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# where the matmul won on AMX (bf16, batch 512; 3×3: 3.0×, 4×4: 1.5×, 7×7: 1.2× with 192-512 channels;
# 8×8 with 64-128 channels and 14×14 lost): feature maps of at most 7×7 positions, at least 128 channels
MAX_POSITIONS = 49
MIN_CHANNELS = 128


def im2col_weight_grad(grad: Tensor, x: Tensor) -> Tensor:
    """d loss / d weight of a 3×3, stride-1, padding-1 convolution of ``x`` (N, C, H, W) with output gradient
    ``grad`` (N, O, H, W): patches ᵀ · grad as one matrix product, returned as (O, C, 3, 3)."""
    n, c, h, w = x.shape
    nhwc = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # a view when x is channels-last
    cols = torch.stack([nhwc[:, i : i + h, j : j + w] for i in range(3) for j in range(3)], dim=3)
    cols = cols.reshape(n * h * w, 9 * c)  # (N·H·W, 9C), the 9 taps in (kh, kw) order, then channels
    out = grad.permute(0, 2, 3, 1).reshape(n * h * w, grad.shape[1])
    return (cols.t() @ out).t().reshape(-1, 3, 3, c).permute(0, 3, 1, 2)


class _MatmulGradConv3x3(torch.autograd.Function):
    """conv2d(x, weight, padding=1) whose input gradient is oneDNN's and whose weight gradient is
    ``im2col_weight_grad``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, None, 1, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = im2col_weight_grad(grad, x)
        return grad_x, grad_w


class MatmulGradConv2d(nn.Conv2d):
    """``nn.Conv2d`` (3×3, stride 1, padding 1, no bias) whose weight gradient on feature maps of at most
    ``MAX_POSITIONS`` positions is ``im2col_weight_grad``; the same parameters, state dict and forward."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled() and self.weight.requires_grad
                and x.shape[-2] * x.shape[-1] <= MAX_POSITIONS):  # fmt: skip
            return super().forward(x)
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        # autocast's cast made explicit, so that the saved tensors and the backward are in its dtype
        with torch.autocast(x.device.type, enabled=False):
            return _MatmulGradConv3x3.apply(x.to(dtype), self.weight.to(dtype))


def _eligible(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (3, 3) and module.stride == (1, 1) and module.padding == (1, 1)
        and module.dilation == (1, 1) and module.groups == 1 and module.bias is None
        and module.padding_mode == "zeros"
        and min(module.in_channels, module.out_channels) >= MIN_CHANNELS
    )  # fmt: skip


def convert_matmul_weight_grad(model: nn.Module) -> int:
    """Make the eligible ``nn.Conv2d`` layers of ``model`` (3×3, stride 1, no bias, ≥ ``MIN_CHANNELS``)
    ``MatmulGradConv2d`` in place, keeping their parameters; returns how many."""
    layers = [m for m in model.modules() if _eligible(m)]
    for m in layers:
        m.__class__ = MatmulGradConv2d
    return len(layers)
