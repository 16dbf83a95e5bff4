"""Gradient clipping as a hook (``--clip-grad-norm``, torchvision's reference name): the total L2 norm of
all gradients is scaled down to at most X before each update, and the mean pre-clip norm of each epoch
is recorded as ``grad_norm``. Under torchrun the gradients are already averaged over processes, so every
process computes the same norm and scales by the same factor."""

from __future__ import annotations

import torch
from torch import nn

from .hooks import Hook


class GradientClipping(Hook):
    name = "clip_grad_norm"

    def __init__(self, max_norm: float):
        self.max_norm = max_norm
        self.norm_sum, self.steps = 0.0, 0  # this epoch so far

    def before_optimizer_step(self, model: nn.Module) -> None:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_norm)
        self.norm_sum += float(norm)
        self.steps += 1

    def on_epoch_end(self, record: dict) -> None:
        record["grad_norm"] = self.norm_sum / max(1, self.steps)
        self.norm_sum, self.steps = 0.0, 0

    def state_dict(self) -> dict:
        return {"norm_sum": self.norm_sum, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.norm_sum, self.steps = float(state["norm_sum"]), int(state["steps"])
