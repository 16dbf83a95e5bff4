"""Shared by the inspectors: run a model without leaving a trace, and name why it could not run."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def left_as_it_was(model: nn.Module):
    """Restore every module's train/eval mode, every buffer (BN running statistics) and every
    parameter's ``.grad`` on exit, whatever ran inside."""
    modes = {m: m.training for m in model.modules()}
    buffers = [b.detach().clone() for b in model.buffers()]
    grads = {p: p.grad for p in model.parameters()}
    try:
        yield
    finally:
        for m, training in modes.items():
            m.train(training)
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
        for p, g in grads.items():
            p.grad = g


def cannot_run(model: nn.Module, what: str, error: RuntimeError) -> ValueError:
    """A one-line error for a model that fails on an input: the first line of PyTorch's reason."""
    reason = str(error).strip().splitlines()[0]
    return ValueError(f"{type(model).__name__} cannot run on {what}: {reason}")
