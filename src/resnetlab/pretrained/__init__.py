"""Pretrained weights shipped with the package, as torchvision's ``weights=`` and akamaster's CIFAR models.

Each file in this folder is ``<model>-<weights>.safetensors`` (e.g. ``resnet56-cifar10.safetensors``):
the final weights of a run in ``docs/reproduction.md``. Convolution and linear weights are stored in
float16 (half the size; every other tensor in float32) and are loaded into a float32 model. The file's
own metadata holds what a user needs besides the tensors: the classes, the normalization, the recipe,
the commit that trained it and the test error measured on those stored tensors (``test_error``,
computed in float64 so that it does not depend on the CPU's kernels). ``pack`` writes such a file from
a run; ``scripts/ship_weights.py`` packs and measures them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..checkpoints import load_checkpoint, model_kwargs, read_checkpoint
from ..models import create_model

FOLDER = Path(__file__).parent
_KEY = "resnetlab"  # the safetensors metadata entry holding the JSON description


def available(folder: Path = FOLDER) -> dict[str, list[str]]:
    """``{model name: [weights names]}`` of every shipped file, e.g. ``{"resnet20": ["cifar10"]}``."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*-*.safetensors")):
        model, _, weights = path.stem.rpartition("-")
        found.setdefault(model, []).append(weights)
    return found


def _path(model: str, weights: str, folder: Path = FOLDER) -> Path:
    path = folder / f"{model}-{weights}.safetensors"
    if not path.is_file():
        names = available(folder)
        offered = (
            f"{model} has weights {', '.join(names[model])}"
            if model in names
            else f"{model} has no shipped weights; the models with weights: {', '.join(names) or 'none'}"
        )
        raise ValueError(f"unknown weights {weights!r} for {model}: {offered} (see 'resnetlab models')")
    return path


def weights_meta(model: str, weights: str, folder: Path = FOLDER) -> dict:
    """The description stored in a shipped file: checkpoint-shaped (``model``, ``num_classes``,
    ``class_names``, ``normalization``, ``config``, ...) plus ``weights`` (name, test error, commit, CPU,
    wall time) and ``evaluation`` (the precision and test-time augmentation the error was measured with)."""
    with safe_open(_path(model, weights, folder), "pt") as f:
        return json.loads(f.metadata()[_KEY])


def load_weights(model: str, weights: str, folder: Path = FOLDER) -> tuple[dict[str, torch.Tensor], dict]:
    """The state_dict (float16 tensors as stored) and the description of ``model``'s ``weights``
    (``folder``: where the files are; the package's own by default)."""
    return load_file(_path(model, weights, folder)), weights_meta(model, weights, folder)


def build(model: str, weights: str, **kwargs) -> nn.Module:
    """``model`` with its shipped ``weights`` (in training mode, as any new module); ``kwargs`` may only
    repeat what the weights fix (``num_classes=10``): another head or input would not fit them."""
    return _assemble(model, weights, *load_weights(model, weights), **kwargs)


def _assemble(model: str, weights: str, state: dict[str, torch.Tensor], meta: dict, **kwargs) -> nn.Module:
    fixed = model_kwargs(meta)
    clash = {k: v for k, v in kwargs.items() if k not in fixed or fixed[k] != v}
    if clash:
        given = ", ".join(f"{k}={v!r}" for k, v in clash.items())
        raise ValueError(
            f"{model} weights {weights!r} fix {', '.join(f'{k}={v!r}' for k, v in fixed.items())}; {given} "
            f"does not fit them (to train another head from them: resnetlab train --model {model} --weights {weights})"
        )
    net = create_model(model, **fixed)
    net.load_state_dict(state, strict=True)  # copies float16 into the float32 parameters
    return net


def load_pretrained(model: str, weights: str, folder: Path = FOLDER) -> tuple[nn.Module, dict]:
    """As ``checkpoints.load_checkpoint`` for a shipped file: the model in eval mode and its description."""
    state, meta = load_weights(model, weights, folder)
    return _assemble(model, weights, state, meta).eval(), meta


def open_model(source: str | Path, weights: str | None = None) -> tuple[nn.Module, dict, str]:
    """What eval, predict and export read: (model in eval mode, description, a name for messages), from
    a run folder or checkpoint, or, with ``weights``, from the shipped weights of the model ``source``."""
    if weights is None:
        return (*load_checkpoint(source), str(source))
    return (*load_pretrained(str(source), weights), f"{source} weights {weights}")


def pack(run: str | Path, weights: str, out: Path, extra: dict) -> Path:
    """Write ``<model>-<weights>.safetensors`` into ``out`` from a run's last checkpoint: matrices and
    kernels in float16, everything else as trained; ``extra`` (test error, CPU, wall time) joins the
    description under ``weights``."""
    state, _, meta = read_checkpoint(run, tensors=False)
    tensors = {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in state.items()}
    keep = ("model", "num_classes", "in_channels", "image_size", "input_size", "class_names", "normalization")
    description = {k: meta[k] for k in keep if k in meta}
    description.update(
        config={k: v for k, v in meta["config"].items() if k not in ("out", "device", "threads", "weights")},
        iteration=meta["iteration"],
        weights={"name": weights, **extra},
        evaluation={"precision": "fp32", "tta_flip": False},
    )
    path = out / f"{meta['model']}-{weights}.safetensors"
    save_file(tensors, path, metadata={_KEY: json.dumps(description)})
    path.chmod(0o644)  # package data: readable by every user (safetensors writes it 0600)
    return path
