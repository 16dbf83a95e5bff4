"""Evaluation: predictions over a whole split, error, per-class accuracy, confusion matrix."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(
    model: nn.Module,
    x: Tensor,
    normalize,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 500,
    flip: bool = False,
) -> Tensor:
    """Logits (float32, on the CPU) for uint8 images ``x``, in eval mode; the mode is restored.
    ``flip``: test-time augmentation, the mean of the logits of each image and its mirror image."""
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            with autocast(device, precision):
                batch = normalize(x[i : i + batch_size])
                logits = model(batch).float()
                if flip:
                    logits = (logits + model(batch.flip(3)).float()) / 2
            outs.append(logits.cpu())
        return torch.cat(outs) if outs else torch.zeros(0)
    finally:
        model.train(was_training)


def error_rate(logits: Tensor, y: Tensor) -> float:
    return (logits.argmax(1) != y).float().mean().item()


def confusion_matrix(pred: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Rows: true class, columns: predicted class."""
    return torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
