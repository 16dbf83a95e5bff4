"""What ``resnetlab summary`` prints: a model's layer table and, on request, its gradient flow at
initialization (seed 0, a batch of N(0, 1) noise with random labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import UsageError
from ..models import as_classifier, builder_takes, create_model, default_input_size
from .gradient_flow import gradient_flow
from .summary import summary


def model_report(
    name: str,
    input_size: Sequence[int] | None = None,
    num_classes: int | None = None,
    model_args: Mapping[str, Any] | None = None,
    gradient_flow_batch: int = 0,
) -> str:
    """The layer table of ``name`` (built with ``model_args``; for ``input_size``, default the model's own),
    and with ``gradient_flow_batch`` images, each layer's gradient norm at initialization."""
    if gradient_flow_batch != 0 and gradient_flow_batch < 2:
        raise UsageError(
            f"--gradient-flow {gradient_flow_batch}: give a batch of at least 2 images (batch norm needs 2 to "
            "compute a variance), e.g. --gradient-flow 16"
        )
    if gradient_flow_batch:
        torch.manual_seed(0)  # the same initial weights on every call
    kwargs = {**(model_args or {}), **({"num_classes": num_classes} if num_classes else {})}
    if input_size and builder_takes(name, "input_size"):  # the MLPs are built for their input
        kwargs["input_size"] = tuple(input_size)
    model = create_model(name, **kwargs)
    size = tuple(input_size) if input_size else default_input_size(model)
    text = str(summary(model, size))
    if gradient_flow_batch:
        g = torch.Generator().manual_seed(0)  # the network at initialization, on noise with random labels
        x = torch.randn((gradient_flow_batch, *size), generator=g)
        y = torch.randint(0, as_classifier(model).fc.out_features, (gradient_flow_batch,), generator=g)
        text += (f"\n\nGradient flow at initialization: one batch of {gradient_flow_batch} N(0, 1) inputs, random "
                 f"labels\n{gradient_flow(model, x, y)}")  # fmt: skip
    return text
