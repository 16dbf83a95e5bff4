"""Progressive resizing as a hook: the first ``--small-until`` of the steps train on batches downscaled
to ``--small-size`` pixels (antialiased bilinear), cheaper steps while the network is far from trained."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from .hooks import Hook, SessionView


class ProgressiveResizing(Hook):
    def __init__(self, size: int, until: float):
        self.size, self.until = size, until

    def on_start(self, session: SessionView) -> None:
        side = tuple(session.data.image_shape[-2:])
        if self.size >= min(side):
            raise UsageError(
                f"--small-size {self.size}: give fewer pixels than the training images' {side}, or 0 for no "
                "progressive resizing"
            )
        self.session = session  # its state is read at each step: a resume replaces it

    def transform_inputs(self, x: Tensor) -> Tensor:
        if self.session.state.iteration >= self.until * self.session.total:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
