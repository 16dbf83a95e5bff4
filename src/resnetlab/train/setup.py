"""The pieces a session is built from (session.py puts them together): data, model, weights, compilation,
provenance, a log, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .. import pretrained
from ..checkpoints import load_state_dict_file
from ..data import ImageData, channel_stats, normalizer
from ..data.augment import generator
from ..data.folder import Transform
from ..data.shard_stream import ShardedData
from ..data.sources import open_data
from ..data.stream import StreamedFolder
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, TRAIN_TRANSFORMS, EvalTransform
from ..errors import UsageError
from ..hardware import describe
from ..models import check_model_args, create_model, default_input_size, run_model_kwargs
from ..nn.whitening import PatchWhitening, fit_whitening
from ..version import __version__
from .config import TrainConfig


def provenance(device: torch.device) -> dict:
    """Where a result came from: versions, the git commit and whether the tree differed from it (with a
    hash of the difference: a number from a dirty tree names the change it ran), hardware, threads."""
    return {
        "resnetlab": __version__,
        **git_state(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": describe(),  # the model name and the flags that choose the fast paths
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def git_state(folder: Path = Path(__file__).parent) -> dict:
    """``git_commit`` (None outside a checkout), ``git_dirty`` (uncommitted changes to tracked files, or
    untracked files git does not ignore) and ``git_diff_sha256`` (of ``git diff HEAD``, None when clean)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or None
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}
    dirty = bool((git("status", "--porcelain") or "").strip())
    diff = git("diff", "HEAD") if dirty else None
    untracked = git("ls-files", "--others", "--exclude-standard") if dirty else None
    digest = hashlib.sha256(f"{diff}\n{untracked}".encode()).hexdigest() if dirty else None
    return {"git_commit": commit, "git_dirty": dirty, "git_diff_sha256": digest}


class Log:
    """Print to the console and append the same line to ``train.log`` (on rank 0 of a data-parallel run
    only: ``enabled=False`` elsewhere, where errors alone are printed). Lines said before the run folder
    exists are written into it with the first line after."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled
        self.pending: list[str] = []

    def __call__(self, message: str = "") -> None:
        if not self.enabled:
            return
        print(message, flush=True)
        self.pending.append(message)
        if self.path.parent.is_dir():
            with open(self.path, "a") as f:
                f.write("".join(line + "\n" for line in self.pending))
            self.pending = []

    def warn(self, message: str) -> None:
        """A warning: in the log on rank 0, on the standard error elsewhere."""
        if self.enabled:
            self(f"warning: {message}")
        else:
            print(f"resnetlab: warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Data:
    """The run's data (its subset and validation split, in memory or streamed), the per-channel mean and std
    of its training images on the [0, 1] scale, and how it is read."""

    data: ImageData | StreamedFolder | ShardedData
    mean: list[float]
    std: list[float]
    mode: str  # memory | stream
    why: str


def prepare_data(config: TrainConfig, image_size: int, out: Path, log: Log, mode: str, local_size: int) -> Data:
    """The run's ``Data``; ``mode``: the requested data mode (a resume's: the one it started with);
    ``local_size``: the processes sharing this machine's cores."""
    train_transform, eval_transform, per_file = transforms(config, image_size)
    data, mode, why = open_data(config.data, image_size, mode, out, log, config.subset, per_file, train_transform,
                                eval_transform, config.num_classes)  # fmt: skip
    data = data.subset(config.subset).split_validation(config.val_split)
    if isinstance(data, (StreamedFolder, ShardedData)):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = (
            config.workers if config.workers is not None else max(1, cores // local_size - torch.get_num_threads())
        )
        data = replace(data, workers=workers)
    if config.mean_std == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        mean, std = data.stats() if isinstance(data, (StreamedFolder, ShardedData)) else channel_stats(data.x_train)
    return Data(data, mean, [max(s, 1e-3) for s in std], mode, why)


def transforms(config: TrainConfig, size: int) -> tuple[Transform | None, EvalTransform, str | None]:
    """(the per-file training transform of ``--augment``, or None for pad-crop-flip on the device; the evaluation
    transform; the flag that asks for per-file transforms, or None)."""
    per_file = TRAIN_TRANSFORMS.get(config.augment)
    resize = config.eval_resize or (EvalTransform.imagenet(size).resize if per_file else size)
    if resize < size:
        raise UsageError(f"--eval-resize {resize} is smaller than the {size}-pixel crop; give {size} or more")
    flag = f"--augment {config.augment}" if per_file else f"--eval-resize {resize}" if resize != size else None
    return (per_file(size) if per_file else None), EvalTransform(resize, size), flag


def model_input_size(config: TrainConfig) -> int:
    """The side a model was designed for (224 ImageNet, 32 CIFAR), built on the meta device (free):
    this also checks the model's name and ``model_args`` before any data is loaded."""
    check_model_args(config.model_args)
    with torch.device("meta"):
        model = create_model(config.model, **config.model_args)
    return default_input_size(model)[-1]


def build_model(
    config: TrainConfig, data: ImageData | StreamedFolder | ShardedData, log: Log, channels_last: bool = False,
    normalization: tuple[list[float], list[float]] | None = None,
) -> nn.Module:  # fmt: skip
    """The run's model, initialized from ``config.seed``; patch-whitening layers set from the training images
    normalized with ``normalization`` (mean, std); then ``--weights`` (which may replace them)."""
    torch.manual_seed(config.seed)
    shape = data.image_shape
    model = create_model(config.model, **run_model_kwargs(config.model, data.num_classes, shape[0], config.norm,
                                                          shape, config.model_args, config.to_json()))  # fmt: skip
    whitening = [m for m in model.modules() if isinstance(m, PatchWhitening)]
    if whitening:
        images = whitening_images(data, config.seed, normalization)
        for layer in whitening:
            fit_whitening(layer, images)
        log(f"patch whitening: {len(images)} training images' {whitening[0].kernel_size[0]}×"
            f"{whitening[0].kernel_size[0]} patches")  # fmt: skip
    if config.weights:
        init_from_weights(model, config.weights, log, config.model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
    return model


WHITENING_IMAGES = 5000


def whitening_images(data, seed: int, normalization: tuple[list[float], list[float]] | None) -> torch.Tensor:
    """Up to ``WHITENING_IMAGES`` training images (a permutation keyed on the seed: the same on every process),
    normalized as the model sees them; training images only, never validation or test."""
    if not isinstance(data, ImageData):
        raise UsageError("whiten: patch whitening is computed from training images held in memory; give an in-memory "
                         "source (npz:, cifar10:, a folder with --data-mode memory)")  # fmt: skip
    rows = torch.randperm(len(data.y_train), generator=generator(seed, 7))[:WHITENING_IMAGES]
    x = data.x_train[rows]
    if normalization is None:
        return x.float() / 255
    return normalizer(*normalization, torch.device("cpu"))(x)


def training_forward(model: nn.Module, compile: bool):
    """The module the training steps call: ``model`` itself, or compiled by ``torch.compile``
    (sharing its parameters, so checkpoints and evaluation use ``model`` unchanged)."""
    if not compile:
        return model
    if not hasattr(torch, "compile"):
        raise UsageError(
            f"--compile needs torch.compile (PyTorch >= 2.0; this is {torch.__version__}); run without --compile"
        )
    # Every step's batch has the same shape (a size change, e.g. progressive resizing, gets a second static
    # graph rather than a dynamic-shape one).
    return torch.compile(model, dynamic=False)


@contextlib.contextmanager
def compile_errors(enabled: bool):
    """A failure of torch.compile's compiler (no C++ compiler, unsupported platform) as one line."""
    try:
        yield
    except Exception as e:
        if enabled and type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise UsageError(
                f"--compile: torch.compile failed ({type(e).__name__}: {first}); run without --compile"
            ) from None
        raise


def init_from_weights(model: nn.Module, path: str, log: Log, model_name: str) -> None:
    """Initialize from a checkpoint, a torchvision state_dict or the model's shipped weights named ``path``
    (a name without a folder or suffix that is not a file); a classifier of another size is replaced."""
    shipped = not Path(path).exists() and Path(path).name == path and not Path(path).suffix
    state = pretrained.load_weights(model_name, path)[0] if shipped else load_state_dict_file(path)
    own = model.state_dict()
    if "fc.weight" in state and state["fc.weight"].shape != own["fc.weight"].shape:
        log(f"weights: replacing the classifier ({state['fc.weight'].shape[0]} -> {own['fc.weight'].shape[0]} classes)")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = [k for k in own if k not in state and not k.startswith("fc.")]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        detail = (wrong or [f"missing {k}" for k in missing] or [f"unexpected {k}" for k in unexpected])[:3]
        raise UsageError(
            f"--weights {path} does not fit {type(model).__name__} {getattr(model, 'name', '')}: "
            f"{'; '.join(detail)} (is it the same architecture and input channels?)"
        )
    model.load_state_dict(state, strict=False)
    source = f"{model_name}'s shipped weights {path}" if shipped else path
    log(f"weights: loaded {len(state)} tensors from {source}")


SAME_PRESS_S = 1.0


@contextlib.contextmanager
def graceful_interrupt(announce: bool = True):
    """Turn the first Ctrl-C into a flag the loop checks between steps (so a checkpoint is never
    taken mid-update); a second Ctrl-C interrupts at once. ``announce``: say so at once (one process;
    under torchrun rank 0 says it once the processes have agreed to stop). One key press can arrive twice
    (under torchrun from the terminal and from the launcher, which passes it on): a second SIGINT within
    ``SAME_PRESS_S`` of the first is that same press."""
    state = {"requested": False}
    if sys.platform == "win32" or not _main_thread():
        yield state
        return
    first = [0.0]

    def handler(signum, frame):
        if state["requested"]:
            if time.monotonic() - first[0] < SAME_PRESS_S:
                return
            raise KeyboardInterrupt
        state["requested"], first[0] = True, time.monotonic()
        if announce:
            print("\ninterrupted: finishing this step and saving a checkpoint (Ctrl-C again to abort)", flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def write_json(path: Path, obj) -> None:
    """Written under a temporary name and renamed into place: the file is always whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
