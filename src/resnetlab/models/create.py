"""``create_model``: a registered model by name, with its shipped weights when asked for them, as
torchvision's builders load theirs (``resnet50(weights=...)``)."""

from __future__ import annotations

from torch import nn

from .. import pretrained
from ..errors import UsageError
from .interface import model_kwargs
from .registry import builder


def create_model(name: str, weights: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model by name, e.g. ``create_model("resnet50", num_classes=10)``; ``weights``
    names shipped pretrained weights (``create_model("resnet56", weights="cifar10")``, see
    ``resnetlab models``), returned in training mode as any new module. With weights, ``kwargs`` may only
    repeat what they fix (``num_classes=10``): another head or input would not fit them."""
    if weights is None:
        return builder(name)(**kwargs)
    state, meta = pretrained.load_weights(name, weights)
    fixed = model_kwargs(meta)
    clash = {k: v for k, v in kwargs.items() if k not in fixed or fixed[k] != v}
    if clash:
        given = ", ".join(f"{k}={v!r}" for k, v in clash.items())
        raise UsageError(
            f"{name} weights {weights!r} fix {', '.join(f'{k}={v!r}' for k, v in fixed.items())}; {given} "
            f"does not fit them (to train another head from them: resnetlab train --model {name} --weights {weights})"
        )
    model = builder(name)(**fixed)
    model.load_state_dict(state, strict=True)  # copies float16 into the float32 parameters
    return model
