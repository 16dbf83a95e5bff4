"""The checkpoint format, shared by training, the experiments and deployment (none imports another).

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

from .models import builder_takes, create_model

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
    raise ValueError(
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
        raise ValueError(
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
        raise ValueError(f"--weights {path}: no such file or checkpoint folder")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"--weights {path}: not a readable state_dict ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--weights {path}: expected a state_dict (a dict of tensors)")
    return state


def run_input_size(model: str, shape: tuple[int, ...]) -> dict:
    """``{"input_size": shape}`` for the models whose size depends on their input (the MLPs), else ``{}``:
    a run passes its data's shape to them, and loading passes the shape the run recorded."""
    return {"input_size": tuple(shape)} if builder_takes(model, "input_size") else {}


def input_shape(meta: dict) -> tuple[int, int, int]:
    """The (C, H, W) a checkpoint's model was trained on (recorded since ``input_size`` exists; square
    ``image_size`` images before)."""
    c, h, w = meta.get("input_size") or (meta["in_channels"], meta["image_size"], meta["image_size"])
    return c, h, w


def model_kwargs(meta: dict) -> dict:
    """The keyword arguments that rebuild a checkpoint's model: what the run set itself (classes,
    input channels, norm, input size) and the user's ``model_args``. A checkpoint written before
    ``model_args`` existed has none."""
    config = meta.get("config", {})
    norm = config.get("norm", "bn")
    return {
        "num_classes": meta["num_classes"],
        "in_channels": meta["in_channels"],
        "norm_layer": None if norm == "bn" else norm,
        **run_input_size(meta["model"], input_shape(meta)),
        **config.get("model_args", {}),
    }


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """The model of a run folder (its last checkpoint) or checkpoint folder, in eval mode, and its
    metadata: ``class_names``, ``normalization`` (mean, std), ``image_size``, ``config``, ``iteration``."""
    model_state, _, meta = read_checkpoint(path, tensors=False)
    try:
        model = create_model(meta["model"], **model_kwargs(meta))
        model.load_state_dict(model_state, strict=True)
    except (KeyError, RuntimeError, TypeError) as e:
        raise ValueError(
            f"checkpoint {path} does not match its own description ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    return model.eval(), meta
