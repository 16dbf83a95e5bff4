"""Loading a trained model back: architecture and preprocessing come from the checkpoint's JSON."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..models import create_model
from .checkpoint import read_checkpoint


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """The model of a run folder (its last checkpoint) or checkpoint folder, in eval mode, and its
    metadata: ``class_names``, ``normalization`` (mean, std), ``image_size``, ``config``, ``iteration``."""
    model_state, _, meta = read_checkpoint(path, tensors=False)
    try:
        norm = meta["config"].get("norm", "bn")
        model = create_model(
            meta["model"],
            num_classes=meta["num_classes"],
            in_channels=meta["in_channels"],
            norm_layer=None if norm == "bn" else norm,
        )
        model.load_state_dict(model_state, strict=True)
    except (KeyError, RuntimeError) as e:
        raise ValueError(
            f"checkpoint {path} does not match its own description ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    return model.eval(), meta
