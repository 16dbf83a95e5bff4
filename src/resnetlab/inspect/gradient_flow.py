"""Gradient flow per layer: ‖∂ℓ/∂W‖ of every convolution and linear layer after one backward pass,
with the statistics of the input each layer receives. It shows vanishing or exploding gradients
through depth (He et al. Sec. 1 and 4.1; Ioffe & Szegedy Sec. 3.3) at a glance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ._restore import cannot_run, left_as_it_was

_WIDTH = 88


@dataclass(frozen=True)
class LayerGradient:
    index: int  # 1-based, in the order the forward pass calls the layers (input → output)
    name: str  # qualified module name, e.g. "layer1.0.conv1"
    kind: str  # "Conv2d", "Linear"
    grad_norm: float  # ‖∂ℓ/∂W‖, Frobenius norm of the weight's gradient
    input_mean: float  # of the tensor the layer receives, over the whole batch
    input_var: float


@dataclass(frozen=True)
class GradientFlow:
    layers: list[LayerGradient]
    loss: float

    def __str__(self) -> str:
        line, double = "-" * _WIDTH, "=" * _WIDTH
        out = [line, f"{'Layer (type)':>32} {'Grad norm':>16} {'Input mean':>18} {'Input var':>18}", double]
        for g in self.layers:
            out.append(
                f"{g.name + ' (' + g.kind + ')':>32} {g.grad_norm:>16.3e} {g.input_mean:>18.3e} {g.input_var:>18.3e}"
            )
        first, last = self.layers[0].grad_norm, self.layers[-1].grad_norm
        ratio = f"{first / last:.3e}" if last > 0 else "undefined (last layer's gradient is 0)"
        out += [double, f"Loss: {self.loss:.4f}", f"First / last layer gradient norm: {ratio}", line]
        return "\n".join(out)


def gradient_flow(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
) -> GradientFlow:
    """One forward and backward pass of ``loss_fn(model(x), y)`` in training mode (BN normalizes with
    the batch's statistics, as it does during training). Leaves the model as it was: its train/eval
    mode, BN running statistics and parameters' ``.grad`` are restored afterwards."""
    layers: list[tuple[str, nn.Module]] = []
    stats: dict[nn.Module, tuple[float, float]] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, inputs):
        if module not in stats:  # a layer called twice is listed once, where it was first called
            layers.append((names[module], module))
            inp = inputs[0].detach().float()
            stats[module] = (inp.mean().item(), inp.var().item())

    weighted = [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    if not weighted:
        raise UsageError(f"{type(model).__name__} has no convolution or linear layer to measure")
    handles = [m.register_forward_pre_hook(hook) for m in weighted]
    try:
        with left_as_it_was(model):
            for p in model.parameters():
                p.grad = None
            model.train()
            try:
                loss = loss_fn(model(x), y)
            except RuntimeError as e:
                raise cannot_run(model, f"a batch of shape {tuple(x.shape)}", e) from None
            loss.backward()
            measured = [
                LayerGradient(
                    i + 1,
                    name,
                    type(m).__name__,
                    _grad_norm(m),
                    *stats[m],
                )
                for i, (name, m) in enumerate(layers)
            ]
    finally:
        for h in handles:
            h.remove()
    return GradientFlow(measured, loss.item())


def _grad_norm(m: nn.Module) -> float:
    grad = m.get_parameter("weight").grad
    return grad.norm().item() if grad is not None else 0.0
