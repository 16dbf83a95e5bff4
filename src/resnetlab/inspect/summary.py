"""The familiar ``Layer (type) | Output Shape | Param #`` table (as torchsummary prints it), plus
multiply-adds per layer. Owned here rather than imported: it is small and its counts are tested."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._restore import cannot_run, left_as_it_was

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_MB = 1024.0**2
_WIDTH = 88


@dataclass(frozen=True)
class SummaryRow:
    layer: str  # "Conv2d-1": type and call order, as torchsummary numbers rows
    name: str  # qualified module name, e.g. "layer1.0.conv1"
    output_shape: list  # [-1, C, H, W]; a list of shapes for several outputs
    params: int  # parameters owned by this module itself
    mult_adds: int  # multiply-adds per sample (convolutions and linear layers)


@dataclass(frozen=True)
class ModelSummary:
    rows: list[SummaryRow]
    input_size: tuple[int, ...]
    total_params: int
    trainable_params: int
    total_mult_adds: int  # per sample
    output_bytes: int  # per sample, all rows' outputs
    input_bytes: int
    param_bytes: int

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        line, double = "-" * _WIDTH, "=" * _WIDTH
        out = [line, f"{'Layer (type)':>25}  {'Output Shape':>25} {'Param #':>15} {'Mult-Adds':>17}", double]
        for r in self.rows:
            out.append(f"{r.layer:>25}  {str(r.output_shape):>25} {r.params:>15,} {r.mult_adds:>17,}")
        fwd_bwd = 2 * self.output_bytes / _MB  # outputs kept for the backward pass: ×2 (torchsummary)
        total = self.input_bytes / _MB + fwd_bwd + self.param_bytes / _MB
        out += [
            double,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            _mult_adds_line(self.total_mult_adds),
            line,
            f"Input size (MB): {self.input_bytes / _MB:.2f}",
            f"Forward/backward pass size (MB): {fwd_bwd:.2f}",
            f"Params size (MB): {self.param_bytes / _MB:.2f}",
            f"Estimated Total Size (MB): {total:.2f}",
            line,
        ]
        return "\n".join(out)


def _mult_adds_line(n: int) -> str:
    unit, scale = ("G", 1e9) if n >= 1e9 else ("M", 1e6)
    return f"Total mult-adds ({unit}): {n / scale:,.2f}"


def _shape(out) -> list:
    if isinstance(out, torch.Tensor):
        return [-1, *out.shape[1:]]
    if isinstance(out, (list, tuple)):
        return [_shape(o) for o in out]
    return []


def _nbytes(out) -> int:
    """Bytes of one sample's output(s)."""
    if isinstance(out, torch.Tensor):
        return out[0].numel() * out.element_size()
    if isinstance(out, (list, tuple)):
        return sum(_nbytes(o) for o in out)
    return 0


def _mult_adds(module: nn.Module, out) -> int:
    """Multiply-adds per sample: each output of a conv takes C_in/groups·k_h·k_w, of a linear C_in."""
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        return out[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return out[0].numel() * module.in_features
    return 0


@torch.no_grad()
def summary(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), dtype=torch.float32) -> ModelSummary:
    """Run one sample of ``input_size`` (C, H, W) through ``model`` in eval mode and tabulate every
    layer it calls. BN running statistics and the model's train/eval mode are left as they were."""
    rows: list[SummaryRow] = []
    out_bytes: list[int] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, _inputs, out):
        params = sum(p.numel() for p in module.parameters(recurse=False))
        layer = f"{type(module).__name__}-{len(rows) + 1}"
        rows.append(SummaryRow(layer, names[module], _shape(out), params, _mult_adds(module, out)))
        out_bytes.append(_nbytes(out))

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if m is not model and not isinstance(m, _CONTAINERS)
    ]
    first = next(model.parameters(), None)
    x = torch.zeros((1, *input_size), dtype=dtype, device=first.device if first is not None else None)
    try:
        with left_as_it_was(model):
            model.eval()
            model(x)
    except RuntimeError as e:
        raise cannot_run(model, f"input size {tuple(input_size)}", e) from None
    finally:
        for h in handles:
            h.remove()
    params = list(model.parameters())
    return ModelSummary(
        rows=rows,
        input_size=tuple(input_size),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_mult_adds=sum(r.mult_adds for r in rows),
        output_bytes=sum(out_bytes),
        input_bytes=x.numel() * x.element_size(),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
    )
