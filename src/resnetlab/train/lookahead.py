"""Lookahead (Zhang et al. 2019) as airbench uses it (Jordan 2024): slow weights that the SGD weights return to.

Every ``k`` steps the slow weights φ move toward the trained ones θ and θ restarts from them:
φ ← κ_t·φ + (1 − κ_t)·θ, then θ ← φ. Zhang et al. keep κ fixed (1 − α, α = 0.5); airbench ramps it with
the run's progress, κ_t = 0.95^k·(t/T)³: no pull at the start, where it would only slow training, and
most of it at the end, where it averages away the noise of the last steps. Batch norm's running
statistics go with the weights; integer buffers are copied. The slow weights are what the run evaluates
and ships (after the last step θ and φ differ only by the steps since the last return); a checkpoint
keeps θ beside them, so that a resume continues both.
"""

from __future__ import annotations

import torch

from .ema import frozen_copy, move_toward
from .hooks import Hook, SessionView, Step
from .state import RunState

SLOW_DECAY = 0.95  # airbench's per-step share of the slow weights, κ = 0.95^k at the end of the run


class Lookahead(Hook):
    """``--lookahead K``: every K steps the trained weights return to slow weights that follow them."""

    name = "lookahead"

    def __init__(self, every: int):
        self.every = every

    def on_start(self, session: SessionView) -> None:
        self.model, self.total = session.model, session.total
        self.slow = frozen_copy(session.model)
        session.evaluated = self.slow

    def keep(self, iteration: int) -> float:
        """κ after step ``iteration`` (counted from 1): the slow weights' share of the new slow weights."""
        return SLOW_DECAY**self.every * (iteration / self.total) ** 3

    @torch.no_grad()
    def after_step(self, state: RunState, step: Step) -> None:
        if step.iteration % self.every == 0:
            move_toward(self.slow, self.model, 1 - self.keep(step.iteration))
            self.model.load_state_dict(self.slow.state_dict())  # θ ← φ, in place
