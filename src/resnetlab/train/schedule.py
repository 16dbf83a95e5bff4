"""The learning rate of every step: the recipe's schedule, and the constant warm-up of Sec. 4.2 as a hook."""

from __future__ import annotations

import math

from .config import TrainConfig
from .hooks import Hook, SessionView, Step
from .state import RunState


def learning_rate(config: TrainConfig, iteration: int, total: int, warmup: int | None = None) -> float:
    """The schedule's lr at step ``iteration`` (from 0) of ``total``, after ``warmup`` steps of linear warm-up
    from 0 (default ``config.warmup_iterations``; a run passes ``config.warmup_steps``)."""
    peak = config.peak_lr
    w = config.warmup_iterations if warmup is None else warmup
    if iteration < w:
        return peak * (iteration + 1) / w
    if config.schedule == "step":  # lr / 10 at each milestone (32k and 48k of 64k in the paper)
        return peak * 0.1 ** sum(iteration >= round(m * total) for m in config.milestones)
    progress = (iteration - w) / max(1, total - w)  # 0 after the warm-up, 1 at the end
    if config.schedule == "linear":  # linear to zero (one-cycle's shape, as the fast CIFAR recipes use)
        return peak * (1 - progress)
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


class ConstantWarmup(Hook):
    """Sec. 4.2 (ResNet-110): "we use 0.01 to warm up the training until the training error is below 80%
    (about 400 iterations), and then go back to 0.1". The error is a moving average of the global batch's
    (every process sees the same), so all processes end the warm-up at the same step."""

    name = "warmup"

    def __init__(self, lr: float, below_error: float):
        self.lr, self.below_error = lr, below_error
        self.done, self.error_ema = False, 1.0

    def on_start(self, session: SessionView) -> None:
        self.log = session.log

    def learning_rate(self, iteration: int, lr: float) -> float:
        return lr if self.done else self.lr

    def after_step(self, state: RunState, step: Step) -> None:
        self.error_ema = 0.9 * self.error_ema + 0.1 * step.error
        if not self.done and self.error_ema < self.below_error:
            self.done = True
            self.log(f"warm-up done at iteration {step.iteration} (training error < {100 * self.below_error:.0f}%)")

    def state_dict(self) -> dict:
        return {"done": self.done, "error_ema": self.error_ema}

    def load_state_dict(self, state: dict) -> None:
        self.done, self.error_ema = bool(state["done"]), float(state["error_ema"])
