"""Weight averaging: an exponential moving average of the weights, evaluated and shipped in their place.

Polyak averaging as the fast-training recipes use it (e.g. Tan & Le 2019; timm's ModelEmaV2): after
every SGD step, θ̄ ← d_t·θ̄ + (1 − d_t)·θ with d_t = min(d, (1 + t)/(10 + t)) at step t, so that the
average forgets the initialization within the first few hundred steps. Batch norm's running
statistics are averaged like the weights; integer buffers (``num_batches_tracked``) are copied.
As a hook, the average is what the run evaluates and checkpoints ship; the trained weights are kept
beside it in the checkpoint, so that a resume continues both.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import UsageError
from .hooks import Hook, SessionView, Step
from .state import RunState


class WeightAverage:
    """The averaged copy of ``model`` (``module``, in eval mode) and its update after each step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise UsageError(f"--ema {decay}: give a decay in (0, 1), e.g. 0.999, or 0 for no averaging")
        self.decay = decay
        self.module = frozen_copy(model)

    def update(self, model: nn.Module, step: int) -> None:
        """Move the average toward ``model``'s weights after step ``step`` (counted from 0)."""
        move_toward(self.module, model, 1 - min(self.decay, (1 + step) / (10 + step)))


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode without gradients: the weights an averaging hook keeps beside it."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def move_toward(average: nn.Module, model: nn.Module, weight: float) -> None:
    """``average`` ← ``average`` + ``weight``·(``model`` − ``average``) for every floating-point weight and buffer
    (batch norm's running statistics too); integer buffers are copied."""
    mine, theirs = average.state_dict(), model.state_dict()
    floats = [(mine[k], v) for k, v in theirs.items() if v.is_floating_point()]
    torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], weight)
    for k, v in theirs.items():
        if not v.is_floating_point():
            mine[k].copy_(v)


class WeightAveraging(Hook):
    """``--ema D``: the run evaluates and ships ``WeightAverage(model, D)``, updated after every step."""

    def __init__(self, decay: float):
        self.decay = decay

    def on_start(self, session: SessionView) -> None:
        self.model = session.model
        self.average = WeightAverage(session.model, self.decay)
        session.evaluated = self.average.module

    def after_step(self, state: RunState, step: Step) -> None:
        self.average.update(self.model, step.iteration - 1)
