"""The checkpoint format, shared by training, the experiments and deployment (none imports another), and
the loading of shipped weights beside it (``load_pretrained``, ``open_model``, ``pack``).

Checkpoints that survive a crash: each is a folder ``checkpoints/<iteration>/`` written under a
temporary name and renamed into place, with ``last`` and ``best`` symlinks swapped by an atomic
rename. A kill between the folder's rename and the symlink swap leaves ``last`` one behind, so
resuming takes the newest complete numbered folder, not the symlink. Only safetensors and JSON are
read back: loading never unpickles anything."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import pretrained
from .errors import UsageError
from .models import create_model, has_model, model_kwargs

MODEL, STATE, META = "model.safetensors", "state.safetensors", "state.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, write) -> None:
    write(path)
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _point(root: Path, name: str, target: str) -> None:
    """Swap the symlink ``root/name`` to ``target`` atomically."""
    tmp = root / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, root / name)


def save_checkpoint(
    root: Path, iteration: int, model_state: dict, tensors: dict, meta: dict, best: bool = False, keep: int = 3
) -> Path:
    """Write ``root/<iteration>/`` atomically, point ``last`` (and ``best``) at it, prune old ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(iteration)
    tmp = root / f".tmp-{iteration}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write(tmp / MODEL, lambda p: save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, p))
    _write(tmp / STATE, lambda p: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, p))
    _write(tmp / META, lambda p: p.write_text(json.dumps(meta, indent=1)))
    _fsync_dir(tmp)
    if final.exists():  # the same iteration saved again (e.g. after a resume): replace it whole
        old = root / f".old-{iteration}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _point(root, "last", final.name)
    if best:
        _point(root, "best", final.name)
    _fsync_dir(root)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    pinned = {os.readlink(root / p) for p in ("last", "best") if (root / p).is_symlink()}
    numbered = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    for p in numbered[:-keep] if keep > 0 else numbered:
        if p.name not in pinned:
            shutil.rmtree(p)
    for p in root.glob(".tmp-*"):  # left by a process killed while writing
        shutil.rmtree(p, ignore_errors=True)


def latest(root: Path) -> Path | None:
    """The newest numbered checkpoint folder under ``root`` (a ``checkpoints/`` folder), or None.
    A numbered folder only ever appears whole (it is renamed into place), so the newest is complete."""
    numbered = [p for p in root.iterdir() if p.name.isdigit() and (p / META).exists()] if root.is_dir() else []
    return max(numbered, key=lambda p: int(p.name), default=None)


def resolve(path: str | Path) -> Path:
    """A checkpoint folder from a run folder (its newest checkpoint), a ``checkpoints/`` folder, a
    checkpoint folder (``last``, ``best``, ``<iteration>``) or a ``model.safetensors`` inside one."""
    path = Path(path)
    if path.is_file() and path.name == MODEL:
        path = path.parent
    for candidate in (latest(path / "checkpoints"), latest(path), path):
        if candidate is not None and ((candidate / META).exists() or (candidate / MODEL).exists()):
            return candidate.resolve()
    raise UsageError(
        f"{path}: no checkpoint here (expected a run folder with checkpoints/<iteration>/, or a "
        f"folder holding {MODEL}, {STATE} and {META})"
    )


def read_checkpoint(path: str | Path, tensors: bool = True) -> tuple[dict, dict, dict]:
    """(model state_dict, other tensors, metadata) of a checkpoint; a clear error if incomplete."""
    folder = resolve(path)
    try:
        meta = json.loads((folder / META).read_text())
        model_state = load_file(folder / MODEL)
        other = load_file(folder / STATE) if tensors else {}
    except (OSError, json.JSONDecodeError, SafetensorError) as e:
        raise UsageError(
            f"checkpoint {folder} is incomplete or corrupt ({type(e).__name__}: {e}); "
            f"use an earlier one from {folder.parent}"
        ) from None
    return model_state, other, meta


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a resnetlab checkpoint, a .safetensors file, or a torchvision .pth file
    (read with ``weights_only=True``: tensors only, never arbitrary objects)."""
    path = Path(path)
    if path.is_dir() or path.name == MODEL:
        return read_checkpoint(path, tensors=False)[0]
    if not path.is_file():
        raise UsageError(f"--weights {path}: no such file or checkpoint folder")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"--weights {path}: not a readable state_dict ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"--weights {path}: expected a state_dict (a dict of tensors)")
    return state


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """The model of a run folder (its last checkpoint) or checkpoint folder, in eval mode, and its
    metadata: ``class_names``, ``normalization`` (mean, std), ``image_size``, ``config``, ``iteration``."""
    model_state, _, meta = read_checkpoint(path, tensors=False)
    try:
        model = create_model(meta["model"], **model_kwargs(meta))
        model.load_state_dict(model_state, strict=True)
    except (KeyError, RuntimeError, TypeError) as e:
        raise UsageError(
            f"checkpoint {path} does not match its own description ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    return model.eval(), meta


def load_pretrained(model: str, weights: str, folder: Path = pretrained.FOLDER) -> tuple[nn.Module, dict]:
    """As ``load_checkpoint`` for a shipped file: the model in eval mode and its description."""
    state, meta = pretrained.load_weights(model, weights, folder)
    net = create_model(model, **model_kwargs(meta))
    net.load_state_dict(state, strict=True)  # copies float16 into the float32 parameters
    return net.eval(), meta


def parse_source(source: str | Path) -> tuple[str | Path, str | None]:
    """A model SOURCE as (path, None), or (model, weights) for ``MODEL.WEIGHTS`` (timm's tag form:
    ``resnet56.cifar10``, the shipped weights of resnet56). An existing path wins."""
    if Path(source).exists():
        return source, None
    model, dot, weights = str(source).rpartition(".")
    return (model, weights) if dot and has_model(model) else (source, None)


def open_model(source: str | Path, weights: str | None = None) -> tuple[nn.Module, dict, str]:
    """What eval, predict and export read: (model in eval mode, description, a name for messages), from a
    SOURCE (a run folder, a checkpoint, or ``MODEL.WEIGHTS``: shipped weights), or the model ``source``'s
    shipped ``weights``."""
    if weights is None:
        source, weights = parse_source(source)
    if weights is None:
        return (*load_checkpoint(source), str(source))
    return (*load_pretrained(str(source), weights), f"{source}.{weights}")


def pack(run: str | Path, weights: str, out: Path, extra: dict) -> Path:
    """Write ``<model>-<weights>.safetensors`` into ``out`` from a run's last checkpoint: matrices and
    kernels in float16, everything else as trained; ``extra`` (test error, CPU, wall time) joins the
    description under ``weights``."""
    state, _, meta = read_checkpoint(run, tensors=False)
    tensors = {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in state.items()}
    keep = ("model", "num_classes", "in_channels", "image_size", "input_size", "class_names", "normalization",
            "eval_transform")  # fmt: skip
    description = {k: meta[k] for k in keep if k in meta}
    description.update(
        config={k: v for k, v in meta["config"].items() if k not in ("out", "device", "threads", "weights")},
        iteration=meta["iteration"],
        weights={"name": weights, **extra},
        evaluation={"precision": "fp32", "tta": "none"},
    )
    return pretrained.write_weights(tensors, description, out)
