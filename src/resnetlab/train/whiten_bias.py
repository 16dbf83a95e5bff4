"""``--whiten-bias-epochs N``: the bias of airbench's signed whitening layer trains for the first N epochs only
(Jordan 2024: 3). It places where GELU bends each whitened component; once the rest of the network has
adapted to it, airbench stops moving it. Its gradient is dropped before the update, as ``requires_grad``
off would (SGD then skips it: no step, no momentum, no weight decay), without changing the traced graph of a
compiled model. No state of its own: the epoch count is the run's."""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from ..nn.whitening import PatchWhitening
from .hooks import Hook, SessionView


class WhiteningBiasEpochs(Hook):
    name = "whiten_bias_epochs"

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_start(self, session: SessionView) -> None:
        self.session = session
        self.biases = [m.bias for m in session.model.modules() if isinstance(m, PatchWhitening) and m.bias is not None]
        if not self.biases:
            raise UsageError(
                f"--whiten-bias-epochs: {session.config.model} has no signed whitening layer; add --model-arg "
                "whiten=2 --model-arg whiten_signed=true (resnet9), or drop the flag"
            )

    def before_optimizer_step(self, model: nn.Module) -> None:
        if self.session.state.epoch >= self.epochs:
            for bias in self.biases:
                bias.grad = None
