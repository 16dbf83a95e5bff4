"""Everything a run needs before its first step, done once and in order (nanoGPT's order: build the model,
keep it apart, wrap a copy of the reference for the steps): world and device, the resolved execution,
data and loader, model and weights, channels-last, sync BN, DDP, compile, optimizer, hooks, restore."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import hardware
from ..data import EpochLoader, ImageData, normalizer
from ..data.folder import keep_listing
from ..data.shard_stream import ShardedData, ShardLoader
from ..data.stream import StreamedFolder, StreamLoader
from ..errors import UsageError
from ..hardware import resolve_device
from ..models import model_family
from ..nn import convert_matmul_weight_grad, convert_sync_batchnorm
from ..nn.norm import BATCHNORM_TYPES
from . import distributed
from .clip import GradientClipping
from .config import TrainConfig
from .distributed import World, world_from_env
from .ema import WeightAveraging
from .hooks import Hook, Hooks
from .lighting import Lighting
from .lookahead import Lookahead
from .progressive import ProgressiveResizing
from .schedule import ConstantWarmup
from .setup import Log, build_model, model_input_size, prepare_data, provenance, training_forward, write_json
from .state import DIVERGED, RunState, Trained, diverged, kept, not_finite, restore, save
from .whiten_bias import WhiteningBiasEpochs

PAPER_WARMUP_LR, PAPER_WARMUP_DEPTH = 0.01, 110  # Sec. 4.2: ResNet-110 warms up at lr 0.01


@dataclass(frozen=True)
class Resolved:
    """What the request (``config``) became on this machine: fixed when the run starts, kept by resumes."""

    precision: str  # fp32 | bf16 (--precision auto: the CPU's choice, hardware.FAST_PATHS)
    compile: bool
    channels_last: bool
    warmup_lr: float | None  # the constant warm-up of Sec. 4.2, or None
    reason: str  # why this precision
    cpu: str
    data_mode: str = "memory"  # memory | stream (--data-mode auto: the choice of data.stream.choose_mode)


def resolve(config: TrainConfig, device: torch.device, saved: dict | None) -> Resolved:
    """``--precision auto`` and unset ``--compile``/``--channels-last`` made concrete: the CPU's fast path
    for auto, off otherwise; a resumed run (``saved``: what it resolved when it started) keeps its choices.
    The Sec. 4.2 warm-up, unless given: on for the CIFAR family from 110 layers under paper-cifar."""
    precision, compile_, channels_last, reason = hardware.fast_path(device)
    auto = config.precision == "auto"
    if not auto:
        precision, compile_, channels_last, reason = config.precision, False, False, "given"
    if saved:
        compile_, channels_last = saved["compile"], saved["channels_last"]
        if auto:
            precision, reason = saved["precision"], "resolved when the run started"
    warmup_lr = config.warmup_lr
    if warmup_lr is None and config.recipe == "paper-cifar":
        family, depth = model_family(config.model) or ("", 0)
        warmup_lr = PAPER_WARMUP_LR if family == "cifar" and depth >= PAPER_WARMUP_DEPTH else None
    return Resolved(
        precision=precision,
        compile=compile_ if config.compile is None else config.compile,
        channels_last=channels_last if config.channels_last is None else config.channels_last,
        warmup_lr=warmup_lr or None,  # 0: off
        reason=reason,
        cpu=hardware.describe(),
    )


@dataclass(eq=False)
class Session:
    """One call of ``fit``: what it trains and with what; ``state`` is where the run stands."""

    config: TrainConfig  # as requested; ``run`` holds what it resolved to
    run: Resolved
    out: Path
    world: World
    device: torch.device
    log: Log
    data: ImageData | StreamedFolder | ShardedData
    mean: list[float]  # the normalization, per channel, from the training images
    std: list[float]
    loader: EpochLoader | StreamLoader | ShardLoader
    model: nn.Module  # the trained model, as built: checkpoints and evaluation use it
    forward: Callable[[Tensor], Tensor]  # what the steps call: the model under DDP and torch.compile
    optimizer: torch.optim.Optimizer
    hooks: Hooks
    state: RunState
    total: int  # iterations of the whole run
    evaluated: nn.Module  # evaluated and shipped: the model, or what a hook puts here (its weight average)
    saved_at: int = -1  # the iteration of the newest checkpoint: written by this process, or resumed from
    in_step: bool = False  # True from a step's first change until the step is whole
    # this epoch in this session: seconds in training steps (evaluation excluded) and waiting for data, images
    train_s: float = 0.0
    wait_s: float = 0.0
    images: int = 0

    def __post_init__(self) -> None:
        self.normalize = normalizer(self.mean, self.std, self.device, self.run.channels_last)
        self.n_epochs = math.ceil(self.total / self.loader.steps_per_epoch)
        self.warmup = self.config.warmup_steps(self.loader.steps_per_epoch)  # linear warm-up iterations
        self.started, self.started_at = time.perf_counter(), self.state.iteration

    @property
    def streamed(self) -> bool:
        return isinstance(self.loader, (StreamLoader, ShardLoader))

    def elapsed_s(self) -> float:
        """Compute time of the whole run: the sessions before this one, and this one so far."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    def remaining_s(self) -> float:
        """At this session's pace so far."""
        done = self.state.iteration - self.started_at
        return (self.total - self.state.iteration) * (time.perf_counter() - self.started) / max(1, done)

    def trained(self) -> Trained:
        return Trained(self.model, self.evaluated, self.optimizer, list(self.hooks))

    def save(self, best: bool = False, together: bool = True) -> None:
        """A checkpoint of everything (``state.save``), written by rank 0; the state is global. Non-finite
        weights on any process stop every process (``together``: all of them are saving now, so they agree
        in one all-reduce; False on the way out of a failure of this process alone, which checks its own)."""
        bad = float(not self.trained().finite())
        if (self.world.all_sum([bad], self.device)[0] if together else bad) > 0:
            raise not_finite(self.state.iteration, self.out / "checkpoints")
        if self.world.main:
            meta = {
                "elapsed_s": self.elapsed_s(),
                "config": self.config.to_json(),
                "resolved": asdict(self.run),
                "model": self.config.model,
                "num_classes": self.data.num_classes,
                "in_channels": self.data.image_shape[0],
                "image_size": self.data.image_shape[-1],
                "input_size": list(self.data.image_shape),
                "class_names": list(self.data.class_names),
                "normalization": {"mean": self.mean, "std": self.std},
                "eval_transform": self.data.eval_transform.to_json(self.mean, self.std),
                "world_size": self.world.size,
            }
            keep = self.config.keep_checkpoints
            save(self.out / "checkpoints", self.state, self.trained(), meta, best=best, keep=keep)
        if together:  # no process goes on (or exits, and has its launcher stop the others) before it is whole
            self.world.all_sum([0.0], self.device)
        self.saved_at = self.state.iteration

    def kept(self) -> str:
        return kept(self.out / "checkpoints")

    def close(self) -> None:
        """Drop the DDP wrapper while the process group still exists: freed after it, its reducer would
        free the group and join gloo's thread while holding the GIL that thread waits for (a hang at exit). A
        streamed folder's worker processes stop with the session."""
        self.forward = self.model
        if isinstance(self.loader, (StreamLoader, ShardLoader)):
            self.loader.close()


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups: one, unless batch norm's parameters train apart (``--bn-lr-scale``,
    ``--bn-weight-decay``: the speed records' settings) or γ is frozen (left out: it never changes). Each group's
    ``lr_scale`` multiplies the scheduled learning rate."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    apart = config.bn_lr_scale != 1.0 or config.bn_weight_decay is not None
    if not apart:
        return [{"params": trainable, "lr_scale": 1.0}]
    bn = {id(p) for m in model.modules() if isinstance(m, BATCHNORM_TYPES) for p in m.parameters(recurse=False)}
    decay = config.weight_decay if config.bn_weight_decay is None else config.bn_weight_decay
    return [
        {"params": [p for p in trainable if id(p) not in bn], "lr_scale": 1.0},
        {"params": [p for p in trainable if id(p) in bn], "lr_scale": config.bn_lr_scale, "weight_decay": decay},
    ]


def builtin_hooks(config: TrainConfig, run: Resolved) -> list[Hook]:
    hooks: list[Hook] = []
    if run.warmup_lr is not None:
        hooks.append(ConstantWarmup(run.warmup_lr, config.warmup_error))
    if config.small_size:
        hooks.append(ProgressiveResizing(config.small_size, config.small_until))
    if config.ema:
        hooks.append(WeightAveraging(config.ema))
    if config.lookahead:
        hooks.append(Lookahead(config.lookahead))
    if config.whiten_bias_epochs is not None:
        hooks.append(WhiteningBiasEpochs(config.whiten_bias_epochs))
    if config.clip_grad_norm is not None:
        hooks.append(GradientClipping(config.clip_grad_norm))
    if config.lighting:
        hooks.append(Lighting(config.lighting))
    return hooks


@contextlib.contextmanager
def open_session(config: TrainConfig, resume: bool = False, hooks: Sequence[Hook] = ()) -> Iterator[Session]:
    """The session of ``config`` in ``config.out`` (continuing its last checkpoint when ``resume``), with the
    built-in hooks and ``hooks`` after them; the process group, if any, ends with the block."""
    out, world = Path(config.out), world_from_env()
    image_size = config.image_size or model_input_size(config)  # checks the model's name and arguments
    if config.batch_size % world.size:
        raise UsageError(f"--batch-size {config.batch_size} (the global batch) does not divide among {world.size} "
                         f"processes; choose a multiple of {world.size}")  # fmt: skip
    if not resume and (out / "checkpoints").exists():
        raise UsageError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.start(world, resolve_device(config.device), config.dist_timeout)
    session: Session | None = None
    try:
        saved = _saved_resolution(out) if resume else None
        run = resolve(config, device, saved)
        log = Log(out / "train.log", enabled=world.main)
        mode = saved.get("data_mode", "memory") if saved and config.data_mode == "auto" else config.data_mode
        prepared = prepare_data(config, image_size, out, log, mode, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        data, mean, std = prepared.data, prepared.mean, prepared.std
        run = replace(run, data_mode=prepared.mode)
        _check_data(config, data, world)

        out.mkdir(parents=True, exist_ok=True)  # a run folder always holds a complete config.json
        if not resume and world.main:
            write_json(out / "config.json", {"config": config.to_json(), "resolved": asdict(run), "command": sys.argv,
                                             "provenance": provenance(device)})  # fmt: skip
        log(f"precision {run.precision} ({run.reason}), compile {run.compile}, channels-last {run.channels_last} "
            f"on {run.cpu}")  # fmt: skip
        if run.precision == "bf16" and device.type == "cpu" and not hardware.native_bf16():
            log("bf16 on a CPU without native bf16: the same computation, emulated and slow")
        if run.warmup_lr is not None:
            log(f"warm-up (Sec. 4.2): lr {run.warmup_lr} until the training error is below "
                f"{100 * config.warmup_error:.0f}%, then the schedule's")  # fmt: skip
        workers = data.workers if isinstance(data, (StreamedFolder, ShardedData)) else 0
        log(f"data: {prepared.mode} ({prepared.why})" + (
            f"; {workers} worker process{'es' if workers != 1 else ''} decode"
            f"{'s' if workers == 1 else ''}, beside {torch.get_num_threads()} torch threads"
            if isinstance(data, (StreamedFolder, ShardedData)) else ""))  # fmt: skip
        if isinstance(data, StreamedFolder) and world.main:
            keep_listing(data.train, out)
        evaluated, alternate = data.eval_transform, config.flip == "alternating"
        moved = config.translate is not None
        plain = config.augment == "pad-crop-flip" and not (config.lighting or alternate or moved)
        if not plain or evaluated.resize != evaluated.crop:
            log(f"augmentation: {config.augment}" + (f", {config.translate}-pixel translation" if moved else "")
                + (", alternating flips" if alternate else "")
                + (f", PCA lighting sigma {config.lighting}" if config.lighting else "")
                + f"; evaluation: shorter side to {evaluated.resize}, centre {evaluated.crop}×{evaluated.crop} crop; "
                f"normalization: {config.mean_std} mean and std")  # fmt: skip

        model = build_model(config, data, log, run.channels_last, (mean, std)).to(device)
        if hardware.matmul_weight_grad(run.precision, device):
            converted = convert_matmul_weight_grad(model)  # oneDNN's AMX weight gradient is slow at ≤ 7×7 (nn/conv.py)
            if converted:
                log(f"{converted} convolution{'s' if converted > 1 else ''} at ≤ 7×7 positions: weight gradient as one "
                    "matmul (AMX)")  # fmt: skip
        if world.size > 1 and config.sync_bn:
            convert_sync_batchnorm(model)
        optimizer = torch.optim.SGD(param_groups(model, config), lr=config.lr, momentum=config.momentum,
                                    nesterov=config.nesterov, weight_decay=config.weight_decay)  # fmt: skip
        loader = _loader(config, prepared, device, world, log)
        session = Session(
            config, run, out, world, device, log, data, mean, std, loader, model,
            forward=training_forward(_data_parallel(model, world, device), run.compile), optimizer=optimizer,
            hooks=Hooks([*builtin_hooks(config, run), *hooks]), state=RunState(),
            total=config.total_iterations(loader.steps_per_epoch), evaluated=model,
        )  # fmt: skip
        session.hooks.on_start(session)
        if resume:
            restored = restore(out, session.trained(), config, log, world)
            if restored is not None:
                session.state, session.saved_at, session.started_at = restored, restored.iteration, restored.iteration
            before = diverged(out) if world.main else None  # one reader: rank 0 removes the marker it read
            if before is not None:  # asked for explicitly (a torchrun restart refuses it)
                log(f"the run diverged at iteration {before['iteration']} before: replaying from its last checkpoint")
                (out / DIVERGED).unlink()
        yield session
    finally:
        if session is not None:
            session.close()
        distributed.stop(world)


def _loader(config: TrainConfig, prepared, device: torch.device, world: World, log: Log
            ) -> EpochLoader | StreamLoader | ShardLoader:  # fmt: skip
    """The training batches, this rank's slice of each global batch; pad-crop-flip runs on the device, on whole
    batches: from the images in memory, or from files decoded by worker processes."""
    data = prepared.data
    augmentation = data.augmentation if config.translate is None else replace(data.augmentation, pad=config.translate)
    if config.flip == "alternating" and isinstance(data, (ShardedData, StreamedFolder)):
        raise UsageError("--flip alternating needs the training images in memory (it is not done for streamed files "
                         "or shards); leave the default --flip random")  # fmt: skip
    if isinstance(data, ShardedData):
        shards = ShardLoader(data.train, data.size, config.batch_size, config.seed,
                             None if data.train_transform else augmentation, world.rank, world.size, data.workers,
                             device, warn=log.warn, transform=data.train_transform)  # fmt: skip
        log(f"data: {len(data.train.files)} training shards dealt to {world.size} process(es) × "
            f"{max(1, data.workers)} worker(s); {shards.steps_per_epoch} steps an epoch, {shards.dropped} of "
            f"{data.train.num_samples} samples left out of each (each worker's last partial batch)")  # fmt: skip
        return shards
    if isinstance(data, StreamedFolder):  # files cropped in the workers take no pad-crop-flip
        augment = None if data.train_transform else augmentation
        loader = StreamLoader(data.train, data.size, config.batch_size, config.seed, augment, world.rank, world.size,
                              data.workers, device, warn=log.warn, transform=data.train_transform)  # fmt: skip
        if loader.dropped:
            log(f"data: {loader.dropped} of {len(data.train)} training files are left out of each epoch (fewer than "
                f"one global batch of {config.batch_size}; a new order each epoch)")  # fmt: skip
        return loader
    augment = replace(augmentation, alternate=config.flip == "alternating")
    return EpochLoader(data.x_train.to(device), data.y_train.to(device), config.batch_size, config.seed,
                       augment, world.rank, world.size)  # fmt: skip


def _data_parallel(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """What the steps call: ``model`` under DDP when there are several processes; ``model`` itself is kept
    apart (nanoGPT's raw_model) for checkpoints and evaluation."""
    if world.size == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _saved_resolution(out: Path) -> dict | None:
    """What a run folder's config.json resolved when the run started (None before that was recorded:
    its config then held the resolved values themselves)."""
    try:
        return json.loads((out / "config.json").read_text()).get("resolved")
    except (OSError, ValueError):
        return None


def _check_data(config: TrainConfig, data: ImageData | StreamedFolder | ShardedData, world: World) -> None:
    """What the data must allow, checked before anything is written."""
    n = data.split_size("train")
    largest = n - n % world.size  # the global batch divides among the processes
    if config.batch_size > largest:
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the {n} training images of {data.name} (after "
            f"--subset/--val-split); give --batch-size {largest} or less"
        )
    if config.tta != "none" and not data.flip:
        raise UsageError(
            f"--tta {config.tta}: {data.name} is not flip-safe (a mirrored image is another class, e.g. a digit); "
            "run with --tta none"
        )
