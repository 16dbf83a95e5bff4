"""The training loop, readable top to bottom: ``fit(config)`` trains and returns the final metrics."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .. import checkpoints as ckpt
from .. import hardware
from ..data import EpochLoader, normalizer
from ..hardware import resolve_device
from ..nn import convert_sync_batchnorm
from . import distributed
from .config import TrainConfig, resolve_precision, saved_value
from .distributed import ONE_PROCESS, World, world_from_env
from .ema import WeightAverage
from .evaluate import autocast, error_rate, predict
from .metrics import plot_curves, write_metrics
from .setup import (
    Log,
    Prepared,
    build_model,
    compile_errors,
    graceful_interrupt,
    model_input_size,
    prepare_data,
    provenance,
    training_forward,
    write_json,
)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: training diverged at ``iteration``."""

    def __init__(self, message: str, iteration: int):
        super().__init__(message)
        self.iteration = iteration


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run in ``out`` stopped after ``iteration`` and saved a checkpoint there."""

    def __init__(self, message: str, iteration: int, out: Path):
        super().__init__(message)
        self.iteration, self.out = iteration, out


def learning_rate(config: TrainConfig, iteration: int, total: int, warming_up: bool) -> float:
    if warming_up and config.warmup_lr is not None:  # Sec. 4.2 (ResNet-110): constant lr until error < 80%
        return config.warmup_lr
    if config.schedule == "step":  # lr / 10 at each milestone (32k and 48k of 64k in the paper)
        return config.lr * 0.1 ** sum(iteration >= round(m * total) for m in config.milestones)
    w = config.warmup_iterations
    if iteration < w:
        return config.lr * (iteration + 1) / w
    progress = (iteration - w) / max(1, total - w)  # 0 after the warm-up, 1 at the end
    if config.schedule == "linear":  # linear to zero (one-cycle's shape, as the fast CIFAR recipes use)
        return config.lr * (1 - progress)
    return 0.5 * config.lr * (1 + math.cos(math.pi * progress))


def fit(config: TrainConfig, resume: bool = False) -> dict:
    """Train ``config.model`` on ``config.data``; write config, log, metrics, curves and checkpoints
    under ``config.out``; continue from its last checkpoint when ``resume``. Returns the last record."""
    out, world = Path(config.out), world_from_env()
    model_size = model_input_size(config)  # checks the model's name and arguments before anything is written
    image_size = config.image_size or model_size
    if config.batch_size % world.size:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) does not divide among {world.size} "
                         f"processes; choose a multiple of {world.size}")  # fmt: skip
    if not resume and (out / "checkpoints").exists():
        raise ValueError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "train.log", enabled=world.main)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.start(world, resolve_device(config.device), config.dist_timeout)
    saved = _saved_precision(out) if resume else None
    config, choice = resolve_precision(config, device, saved)
    if not resume and world.main:  # before the data: a run folder always holds a complete config.json
        write_json(out / "config.json", {"config": config.to_json(), "precision": choice, "command": sys.argv,
                                         "provenance": provenance(device)})  # fmt: skip
    log(f"precision {config.precision} ({choice['reason']}), compile {config.compile}, channels-last "
        f"{config.channels_last} on {choice['cpu']}")  # fmt: skip
    if config.precision == "bf16" and device.type == "cpu" and not hardware.native_bf16():
        log("bf16 on a CPU without native bf16: the same computation, emulated and slow")
    try:
        return _fit(config, resume, out, world, log, device, image_size)
    finally:
        distributed.stop(world)


def _saved_precision(out: Path) -> str | None:
    """The precision a run folder's config.json resolved when the run started, if it has one."""
    try:
        return json.loads((out / "config.json").read_text())["config"]["precision"]
    except (OSError, ValueError, KeyError):
        return None


def _fit(config: TrainConfig, resume: bool, out: Path, world: World, log: Log, device, image_size: int) -> dict:
    # Data, model, optimizer, and where the run stands (a checkpoint restores all of it).
    prep = prepare_data(config, image_size)
    data = prep.data
    if config.tta_flip and not data.flip:
        raise ValueError(
            f"--tta-flip: {data.name} is not flip-safe (a mirrored image is another class, e.g. "
            f"a digit); run without --tta-flip"
        )
    if config.small_size >= min(data.x_train.shape[-2:]):
        raise ValueError(
            f"--small-size {config.small_size}: give fewer pixels than the training images' "
            f"{tuple(data.x_train.shape[-2:])}, or 0 for no progressive resizing"
        )
    model = build_model(config, data, log).to(device)
    average = WeightAverage(model, config.ema) if config.ema else None  # what is evaluated and saved, when on
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    n_train = len(data.y_train)
    batch_size = min(config.batch_size, n_train - n_train % world.size)
    loader = EpochLoader(  # on the device: augmentation runs there, on whole batches; each rank its slice
        data.x_train.to(device), data.y_train.to(device), batch_size, config.seed, data.augmentation,
        world.rank, world.size,
    )  # fmt: skip
    steps_per_epoch = loader.steps_per_epoch
    state = restore(out, model, optimizer, config, log, world, average) if resume else RunState.new(config)
    run = _Run(
        config,
        out,
        log,
        device,
        prep,
        model,
        optimizer,
        state,
        total=config.total_iterations(steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        saved_at=state.iteration if resume else -1,
        world=world,
        average=average,
    )
    processes = "" if world.size == 1 else f" per process × {world.size} processes ({_sync_note(config)})"
    log(
        f"resnetlab {config.model} on {data.name}: {n_train} training images, "
        f"{0 if data.y_val is None else len(data.y_val)} validation, "
        f"{0 if data.y_test is None else len(data.y_test)} test; {run.total} iterations "
        f"({run.n_epochs} epochs of {steps_per_epoch}) on {device}, {torch.get_num_threads()} threads{processes}"
    )
    log(f"config:\n{config}")

    # Epochs of SGD steps; Ctrl-C stops between two steps, and every way out but divergence saves.
    diverged = False
    lr = run.learning_rate()
    try:
        with graceful_interrupt() as interrupt:
            stop = False  # a Ctrl-C on any process, agreed on by all of them in the step's all-reduce
            while state.iteration < run.total and not stop:
                epoch = state.epoch
                steps = min(steps_per_epoch, state.step + run.total - state.iteration)
                bar = tqdm(
                    total=steps,
                    initial=state.step,
                    desc=f"epoch {epoch + 1}/{run.n_epochs}",
                    leave=False,
                    disable=not (sys.stdout.isatty() and world.main),
                    dynamic_ncols=True,
                )
                tick, seen_at_tick = time.perf_counter(), state.seen
                for step, x, y in loader.batches(epoch, state.step, steps):
                    # One SGD step on an augmented batch; its randomness depends on (seed, epoch, step) only.
                    lr = run.learning_rate()
                    stop = run.sgd_step(step, run.inputs(x), y, lr, interrupt["requested"])
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{state.loss_sum / state.seen:.3f}",
                        acc=f"{100 - 100 * state.errors / state.seen:.1f}%",
                        lr=f"{lr:.3g}",
                        img_s=f"{(state.seen - seen_at_tick) / (time.perf_counter() - tick):.0f}",
                        refresh=False,
                    )
                    if config.save_every and state.iteration % config.save_every == 0:
                        run.save()
                    if stop:
                        break
                bar.close()
                if state.step == steps_per_epoch or state.iteration == run.total:
                    run.end_epoch(lr)
            if stop:
                raise TrainingInterrupted(
                    f"interrupted at iteration {state.iteration}; continue with: resnetlab train --resume {out}",
                    state.iteration,
                    out,
                )
    except NonFiniteLoss:
        diverged = True
        raise
    finally:
        # A way out in the middle of a step (a lost process, a second Ctrl-C) saves nothing: the forward may
        # have moved BN's running statistics past the iteration the state records.
        if not diverged and not run.in_step and run.saved_at != state.iteration and state.iteration > 0:
            run.save()
    log(f"done: {out}")
    return state.metrics[-1] if state.metrics else {}


@dataclass
class RunState:
    """Where a run stands; every checkpoint holds all of it (as JSON), and a resume restores it."""

    iteration: int = 0  # SGD steps done in all
    epoch: int = 0  # epochs completed
    step: int = 0  # steps done in the current epoch
    loss_sum: float = 0.0  # this epoch so far: summed training loss, misclassified and seen images
    errors: int = 0
    seen: int = 0
    elapsed_s: float = 0.0  # compute time of every session of the run
    best_val_error: float | None = None
    warmup_done: bool = True  # the constant warm-up lr (Sec. 4.2, ResNet-110) has ended
    error_ema: float = 1.0  # moving average of the training error, which ends the warm-up
    metrics: list[dict] = field(default_factory=list)  # one record per epoch

    @classmethod
    def new(cls, config: TrainConfig) -> RunState:
        return cls(warmup_done=config.warmup_lr is None)

    @classmethod
    def from_json(cls, meta: dict) -> RunState:
        return cls(**{f.name: meta[f.name] for f in fields(cls)})


def _sync_note(config: TrainConfig) -> str:
    return "batch norm synchronized" if config.sync_bn else "per-process batch norm statistics (--no-sync-bn)"


@dataclass(eq=False)
class _Run:
    """One call of ``fit``: what it trains, and the steps, epoch ends and checkpoints that move ``state``."""

    config: TrainConfig
    out: Path
    log: Log
    device: torch.device
    prep: Prepared
    model: nn.Module
    optimizer: torch.optim.Optimizer
    state: RunState
    total: int  # iterations of the whole run
    steps_per_epoch: int
    saved_at: int  # the iteration of the newest checkpoint: the one this process wrote or resumed from
    world: World = ONE_PROCESS
    average: WeightAverage | None = None  # --ema: the averaged weights, evaluated and saved as the model

    def __post_init__(self) -> None:
        self.data = self.prep.data
        self.n_epochs = math.ceil(self.total / self.steps_per_epoch)
        self.normalize = normalizer(self.prep.mean, self.prep.std, self.device, bool(self.config.channels_last))
        trained: nn.Module = self.model  # checkpoints and evaluation use self.model; the steps call this
        if self.world.size > 1:
            if self.config.sync_bn:
                convert_sync_batchnorm(self.model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.forward = training_forward(trained, self.config)
        self.started, self.started_at = time.perf_counter(), self.state.iteration
        self.in_step = False

    def inputs(self, x: Tensor) -> Tensor:
        """The uint8 batch as the model trains on it: normalized, and while progressive resizing lasts
        (``--small-size``, the first ``--small-until`` of the iterations) downscaled with antialiasing."""
        x = self.normalize(x)
        size, until = self.config.small_size, self.config.small_until
        if size and self.state.iteration < until * self.total:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x

    def learning_rate(self) -> float:
        return learning_rate(self.config, self.state.iteration, self.total, not self.state.warmup_done)

    def elapsed_s(self) -> float:
        """Compute time of the whole run: the sessions before this one, and this one so far."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    def sgd_step(self, step: int, x: Tensor, y: Tensor, lr: float, interrupted: bool = False) -> bool:
        """One SGD step at ``lr`` on the batch (x, y) (this process's slice of it), counted into ``state``
        as step ``step`` of the epoch. A non-finite loss stops the run before the update can reach the
        weights. Loss, errors and a Ctrl-C (``interrupted``) are summed over every process before any of
        them is acted on, so that all processes stop, or go on, together; returns whether any was interrupted."""
        config, state = self.config, self.state
        self.in_step = True  # until the step is whole: weights, statistics and state at one iteration
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with compile_errors(bool(config.compile)):  # torch.compile builds forward and backward lazily
            with autocast(self.device, config.precision):
                logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            local = [loss.item() * len(y), float((logits.argmax(1) != y).sum()), float(len(y)), float(interrupted)]
            loss_sum, errors, seen, stops = self.world.all_sum(local, self.device)
            if not math.isfinite(loss_sum):
                raise NonFiniteLoss(
                    f"the loss is {loss_sum / seen} at iteration {state.iteration + 1}: "
                    f"training diverged (try a lower --lr); {self._kept()}",
                    state.iteration + 1,
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model, state.iteration)

        state.loss_sum += loss_sum
        state.errors += int(errors)
        state.seen += int(seen)
        state.iteration += 1
        state.step = step + 1
        state.error_ema = 0.9 * state.error_ema + 0.1 * errors / seen
        if not state.warmup_done and state.error_ema < config.warmup_error:
            state.warmup_done = True
            self.log(
                f"warm-up done at iteration {state.iteration} (training error < "
                f"{100 * config.warmup_error:.0f}%): lr {config.lr}"
            )
        self.in_step = False
        return stops > 0

    def end_epoch(self, lr: float) -> None:
        """Record the epoch (evaluating every ``eval_every`` epochs and at the end), log it, save: on rank 0;
        the other processes go on to the next step, where they wait for it."""
        config, state, data = self.config, self.state, self.data
        if not self.world.main:
            state.epoch, state.step, state.loss_sum, state.errors, state.seen = state.epoch + 1, 0, 0.0, 0, 0
            return
        seen = max(1, state.seen)
        record: dict[str, Any] = {
            "epoch": state.epoch + 1,
            "iteration": state.iteration,
            "train_loss": state.loss_sum / seen,
            "train_error": state.errors / seen,
            "val_error": None,
            "test_error": None,
            "lr": lr,
        }
        last = state.iteration == self.total
        evaluate = last or (config.eval_every > 0 and (state.epoch + 1) % config.eval_every == 0)
        evaluated = self.model if self.average is None else self.average.module
        for split, x, y in (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
            if x is not None and y is not None and evaluate:
                logits = predict(evaluated, x, self.normalize, self.device, config.precision, flip=config.tta_flip)
                record[f"{split}_error"] = error_rate(logits, y)
        record["time_s"] = round(self.elapsed_s(), 3)
        state.metrics.append(record)
        write_metrics(self.out, state.metrics)
        plot_curves(self.out / "curves.png", {config.model: state.metrics}, title=f"{config.model} on {data.name}")
        self.log(
            " ".join(
                [
                    f"epoch {record['epoch']}/{self.n_epochs}",
                    f"iter {record['iteration']}",
                    f"loss {record['train_loss']:.4f}",
                    f"train {100 * record['train_error']:.2f}%",
                ]
                + [
                    f"{s} {100 * record[f'{s}_error']:.2f}%"
                    for s in ("val", "test")
                    if record[f"{s}_error"] is not None
                ]
                + [f"lr {lr:.4g}", f"{record['time_s']:.0f}s"]
                + ([] if last else [f"eta {_duration(self._remaining_s())}"])
            )
        )
        improved = record["val_error"] is not None and (
            state.best_val_error is None or record["val_error"] < state.best_val_error
        )
        if improved:
            state.best_val_error = record["val_error"]
        state.epoch, state.step, state.loss_sum, state.errors, state.seen = state.epoch + 1, 0, 0.0, 0, 0
        if config.save_every is None or improved:  # best is chosen on validation error only, never test
            self.save(best=improved)

    def save(self, best: bool = False) -> None:
        """A checkpoint of the model, the optimizer, the RNG and all of ``state``: what ``restore`` reads.
        Rank 0 writes it; the state is global (every rank holds the same)."""
        state, data = self.state, self.data
        if not self.world.main:
            self.saved_at = state.iteration
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):  # never save a diverged model
            raise NonFiniteLoss(
                f"the weights are not finite at iteration {state.iteration}: training "
                f"diverged (try a lower --lr); {self._kept()}",
                state.iteration,
            )
        meta = {
            **asdict(state),
            "elapsed_s": self.elapsed_s(),
            "config": self.config.to_json(),
            "model": self.config.model,
            "num_classes": data.num_classes,
            "in_channels": data.image_shape[0],
            "image_size": data.image_shape[-1],
            "input_size": list(data.image_shape),
            "class_names": list(data.class_names),
            "normalization": {"mean": self.prep.mean, "std": self.prep.std},
            "world_size": self.world.size,
        }
        tensors = {"rng.torch": torch.get_rng_state()}
        shipped = self.model
        if self.average is not None:  # the averaged weights are the model; the trained ones resume the run
            shipped = self.average.module
            tensors.update({f"raw.{k}": v for k, v in self.model.state_dict().items()})
        for i, s in self.optimizer.state_dict()["state"].items():
            tensors.update({f"optimizer.{i}.{k}": v for k, v in s.items() if isinstance(v, torch.Tensor)})
        ckpt.save_checkpoint(
            self.out / "checkpoints",
            state.iteration,
            shipped.state_dict(),
            tensors,
            meta,
            best=best,
            keep=self.config.keep_checkpoints,
        )
        self.saved_at = state.iteration

    def _kept(self) -> str:
        last = ckpt.latest(self.out / "checkpoints")
        return "no checkpoint had been saved yet" if last is None else f"the last good checkpoint is kept: {last}"

    def _remaining_s(self) -> float:  # at this session's pace so far
        done = self.state.iteration - self.started_at
        return (self.total - self.state.iteration) * (time.perf_counter() - self.started) / max(1, done)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return (
        f"{seconds:.0f}s" if seconds < 60 else f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
    )


def restore(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    log=print,
    world: World = ONE_PROCESS,
    average: WeightAverage | None = None,
) -> RunState:
    """The state of the last checkpoint of ``out``, loaded into ``model``, ``optimizer`` and the weight
    ``average`` (with --ema the checkpoint's model is the average, the trained weights ``raw.*``). A run that
    stopped before its first checkpoint starts over from its config (the model as ``fit`` built it)."""
    if ckpt.latest(out / "checkpoints") is None:
        log(f"{out} has no checkpoint yet (the run stopped before its first one): starting it over from its config")
        return RunState.new(config)
    model_state, tensors, meta = ckpt.read_checkpoint(out)
    changed = config.differences(meta["config"], execution=False)
    if changed:
        made = ", ".join(
            f"{k} {json.dumps(saved_value(meta['config'], k))} (not {json.dumps(getattr(config, k))})" for k in changed
        )
        raise ValueError(
            f"{out} holds a run made with {made}: continue it with the same settings, or choose another --out"
        )
    for k in config.differences(meta["config"]):  # execution fields only, e.g. --compile on a resume
        log(
            f"resuming with {k} {json.dumps(getattr(config, k))} "
            f"(the run so far: {json.dumps(saved_value(meta['config'], k))})"
        )
    if average is not None:  # the checkpoint's model is the average; the trained weights are kept beside it
        average.module.load_state_dict(model_state, strict=True)
        model_state = {k.removeprefix("raw."): v for k, v in tensors.items() if k.startswith("raw.")}
    model.load_state_dict(model_state, strict=True)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, i, name = key.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": optimizer.state_dict()["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    before = meta.get("world_size", 1)
    if before != world.size:  # the checkpoint holds global state only: any number of processes continues it
        same = (
            "computes the same (batch norm is synchronized)"
            if config.sync_bn or 1 in (before, world.size)
            else ("now computes per-process batch norm statistics over another number of processes (--no-sync-bn)")
        )
        log(f"resuming with {world.size} processes (the run so far: {before}); the global batch is unchanged and "
            f"the run {same}")  # fmt: skip
    state = RunState.from_json(meta)
    log(f"resumed {out} at iteration {state.iteration}")
    return state
