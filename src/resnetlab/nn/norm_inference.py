"""Algorithm 2 of Ioffe & Szegedy (2015): population statistics for inference, then folding.

``recalibrate_batchnorm`` recomputes E[x] and Var[x] over chosen batches (lines 8–10);
``fold_batchnorm`` merges each BN's inference transform into the convolution or linear layer before it
(line 11).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import UsageError
from .norm import BATCHNORM_TYPES, BatchNorm


def _batchnorms(model: nn.Module) -> list[BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BATCHNORM_TYPES) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable, num_batches: int | None = None) -> nn.Module:
    """Reset every BN's population statistics and recompute them over ``batches`` (Algorithm 2, 8–10).

    E[x] = E_B[μ_B] and Var[x] = m/(m−1)·E_B[σ²_B]: the plain average over batches of the mini-batch
    means and unbiased variances, which is exactly what a BN with ``momentum=None`` accumulates.
    Each batch is run with every BN normalizing by its mini-batch statistics (as in training) and
    every other layer in eval mode (no dropout). ``batches`` yields input tensors or
    ``(inputs, targets)`` pairs; ``num_batches`` caps how many are used. Returns ``model``, with
    every module's train/eval mode as it was.
    """
    bns = _batchnorms(model)
    if not bns:
        return model
    modes = {m: m.training for m in model.modules()}
    momenta = {bn: bn.momentum for bn in bns}
    device = next(iter(bns[0].buffers())).device
    used = 0
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average, Algorithm 2 line 10
            bn.train()
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(inputs.to(device))
            used += 1
    finally:
        for bn, momentum in momenta.items():
            bn.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    if used == 0:
        raise UsageError("recalibrate_batchnorm got no batches: pass a non-empty iterable of inputs")
    return model


class _ConvBNTracer(torch.fx.Tracer):
    """Keeps every norm layer a leaf so the graph shows which convolution feeds which BN."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, BATCHNORM_TYPES) or super().is_leaf_module(m, qualname)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv or linear name, bn name) for every BN whose only input is a conv or linear layer that feeds
    nothing else."""
    try:
        graph = _ConvBNTracer().trace(model)
    except Exception as e:  # the model has data-dependent control flow
        raise UsageError(
            f"fold_batchnorm could not trace {type(model).__name__} with torch.fx ({e}); "
            "fold modules whose forward has no data-dependent Python control flow"
        ) from None
    modules = dict(model.named_modules())
    pairs: list[tuple[str, str]] = []
    for node in graph.nodes:
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, BATCHNORM_TYPES) or not bn.track_running_stats:
            continue  # a BN without population statistics normalizes by the batch even in eval
        src = node.args[0]
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and len(src.users) == 1
            and isinstance(modules[src.target], (nn.Conv2d, nn.Linear))
        ):
            pairs.append((str(src.target), str(node.target)))
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Conv2d | nn.Linear, bn: BatchNorm) -> None:
    # y = γ/√(Var+ε)·(W∗x + b) + (β − γE[x]/√(Var+ε))  →  W' = s·W, b' = s·(b − E[x]) + β
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None  # only BNs with population statistics are folded
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
    bias = (bias - mean) * scale
    if bn.bias is not None:
        bias = bias + bn.bias
    conv.weight.mul_(scale.view(-1, *[1] * (conv.weight.dim() - 1)).to(conv.weight.dtype))
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BN that follows a convolution or linear layer folded into it
    (Algorithm 2, line 11); the folded BN becomes ``nn.Identity``. Other BNs stay as they are."""
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    for conv_name, bn_name in conv_bn_pairs(folded):
        _fold_into(modules[conv_name], modules[bn_name])
        _replace(folded, bn_name, nn.Identity())
    return folded
