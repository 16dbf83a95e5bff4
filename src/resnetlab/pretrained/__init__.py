"""Pretrained weights shipped with the package, as torchvision's ``weights=`` and akamaster's CIFAR models.

Each file in this folder is ``<model>-<weights>.safetensors`` (e.g. ``resnet56-cifar10.safetensors``):
the final weights of a run in ``docs/reproduction.md``. Convolution and linear weights are stored in
float16 (half the size; every other tensor in float32) and are loaded into a float32 model. The file's
own metadata holds what a user needs besides the tensors: the classes, the normalization, the recipe,
the commit that trained it and the test error measured on those stored tensors (``test_error``,
computed in float64 so that it does not depend on the CPU's kernels). ``checkpoints.pack`` writes such a file
from a run; ``scripts/ship_weights.py`` packs and measures them.

This package reads and writes the files only, and imports nothing of resnetlab but its error class: ``create_model(name,
weights=...)`` (models) and ``checkpoints.pack``/``load_pretrained`` build on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..errors import UsageError

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
        raise UsageError(f"unknown weights {weights!r} for {model}: {offered} (see 'resnetlab models')")
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


def write_weights(tensors: dict[str, torch.Tensor], description: dict, out: Path) -> Path:
    """Write ``<model>-<weights>.safetensors`` into ``out``: ``tensors`` with ``description`` (the model,
    its classes and normalization, ``weights``: name and measured error) in the file's metadata."""
    path = out / f"{description['model']}-{description['weights']['name']}.safetensors"
    save_file(tensors, path, metadata={_KEY: json.dumps(description)})
    path.chmod(0o644)  # package data: readable by every user (safetensors writes it 0600)
    return path
