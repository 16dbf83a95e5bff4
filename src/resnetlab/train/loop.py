"""The training loop, readable top to bottom: ``fit(config)`` trains and returns the final metrics.

What a run needs before its first step is built by ``session.open_session``; what a checkpoint holds is
``state.py``; what plugs in (warm-up, progressive resizing, weight averaging, clipping, tests) is a hook."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..data.shard_stream import ShardLoader
from ..data.stream import StreamLoader
from ..errors import DataError
from ..evaluation import autocast, evaluate_batches, shard, torch_predictor
from ..plots import plot_curves
from . import hooks as hooks_module
from .config import TrainConfig
from .hooks import Hook, Step
from .metrics import COLUMNS, write_metrics
from .schedule import learning_rate
from .session import Session, open_session
from .setup import compile_errors, graceful_interrupt
from .state import NonFiniteLoss, TrainingInterrupted, mark_diverged


def fit(config: TrainConfig, resume: bool = False, hooks: Sequence[Hook] = ()) -> dict:
    """Train ``config.model`` on ``config.data``; write config, log, metrics, curves and checkpoints under
    ``config.out``; continue from its last checkpoint when ``resume``. ``hooks`` plug into the loop (see
    ``hooks.Hook``). Returns the last epoch's record."""
    with open_session(config, resume, [*hooks, *hooks_module.from_env()]) as session:
        try:
            return _train(session)
        except NonFiniteLoss as e:
            if session.world.main:
                mark_diverged(session.out, e)  # a resume or a torchrun restart would replay the divergence
            raise


def _train(s: Session) -> dict:
    config, state, data, world = s.config, s.state, s.data, s.world
    processes = "" if world.size == 1 else f" per process × {world.size} processes ({_sync_note(config.sync_bn)})"
    s.log(
        f"resnetlab {config.model} on {data.name}: {data.split_size('train')} training images, "
        f"{data.split_size('val')} validation, {data.split_size('test')} test; {s.total} iterations "
        f"({s.n_epochs} epochs of {s.loader.steps_per_epoch}) on {s.device}, {torch.get_num_threads()} threads"
        f"{processes}"
    )
    if data.split_size("val") and data.split_size("test"):
        s.log(
            "the test split is not scored while a validation split is held out (choose on validation); "
            "score it once with `resnetlab eval RUN`, or train on all the training images"
        )
    if config.lr_base_size or s.warmup:
        s.log(f"learning rate: peak {config.peak_lr:g}"
              + (f" ({config.lr:g} per {config.lr_base_size} images, scaled to {config.batch_size})"
                 if config.lr_base_size else "")
              + (f", reached by {s.warmup} iterations of linear warm-up" if s.warmup else ""))  # fmt: skip
    s.log(f"config:\n{config}")

    # Epochs of SGD steps; Ctrl-C stops between two steps, and every way out but divergence saves.
    leaving: BaseException | None = None  # the exception on its way out, if any
    lr = 0.0  # the last step's, for the epoch's record
    try:
        with graceful_interrupt(announce=world.size == 1) as interrupt:
            stop = False  # a Ctrl-C on any process, agreed on by all of them in the step's all-reduce
            while state.iteration < s.total and not stop:
                steps = min(s.loader.steps_per_epoch, state.step + s.total - state.iteration)
                shown = sys.stdout.isatty() and world.main
                bar = tqdm(total=steps, initial=state.step, desc=f"epoch {state.epoch + 1}/{s.n_epochs}",
                           leave=False, disable=not shown, dynamic_ncols=True)  # fmt: skip
                tick = time.perf_counter()
                for step, x, y in _timed(s.loader.batches(state.epoch, state.step, steps), s):
                    # One SGD step on an augmented batch; its randomness depends on (seed, epoch, step) only.
                    scheduled = learning_rate(config, state.iteration, s.total, s.warmup)
                    lr = s.hooks.learning_rate(state.iteration, scheduled)
                    x = s.hooks.transform_inputs(s.normalize(x))
                    stop = sgd_step(s, step, x, y, lr, interrupt["requested"])
                    s.images += len(y) * world.size
                    if s.streamed and (state.iteration - 1) * config.batch_size < READS_CHECKED_AT <= (
                        state.iteration * config.batch_size
                    ):
                        stop_if_unreadable(s, *count_unreadable(s))
                    bar.update(1)
                    spent = s.train_s + time.perf_counter() - tick
                    bar.set_postfix(loss=f"{state.loss_sum / state.seen:.3f}",
                                    acc=f"{100 - 100 * state.errors / state.seen:.1f}%", lr=f"{lr:.3g}",
                                    img_s=f"{s.images / spent:.0f}", data=f"{100 * s.wait_s / spent:.0f}%",
                                    refresh=False)  # fmt: skip
                    if config.save_every and state.iteration % config.save_every == 0:
                        s.save()
                    if stop:
                        break
                bar.close()
                s.train_s += time.perf_counter() - tick
                if state.step == s.loader.steps_per_epoch or state.iteration == s.total:
                    end_epoch(s, lr)
            if stop:
                raise TrainingInterrupted(
                    f"interrupted at iteration {state.iteration}; continue with: resnetlab train --resume {s.out}",
                    state.iteration,
                    s.out,
                )
    except BaseException as e:
        leaving = e
        raise
    finally:
        # Divergence saves nothing (the last good checkpoint stays), nor does a way out in the middle of a step
        # (a lost process, a second Ctrl-C): the forward may have moved BN's running statistics past the
        # iteration the state records.
        if not isinstance(leaving, NonFiniteLoss) and not s.in_step and 0 < state.iteration != s.saved_at:
            _save_on_the_way_out(
                s, leaving, together=leaving is None or isinstance(leaving, (TrainingInterrupted, UnreadableFiles))
            )
    s.log(f"done: {s.out}")
    return state.metrics[-1] if state.metrics else {}


def _save_on_the_way_out(s: Session, leaving: BaseException | None, together: bool) -> None:
    """The last checkpoint (``together``: every process is leaving the same way); when it fails while another
    exception is leaving (e.g. Ctrl-C), that one wins and the failed save is one line of the log."""
    try:
        s.save(together=together)
    except Exception as e:
        if leaving is None:
            raise
        s.log(f"could not save a checkpoint at iteration {s.state.iteration} ({type(e).__name__}: {e}); {s.kept()}")


def sgd_step(s: Session, step: int, x: Tensor, y: Tensor, lr: float, interrupted: bool = False) -> bool:
    """One SGD step at ``lr`` on the batch (x, y) (this process's slice of it), counted into ``state`` as step
    ``step`` of the epoch. A non-finite loss stops the run before the update can reach the weights. Loss,
    errors and a Ctrl-C (``interrupted``) are summed over every process before any of them is acted on, so
    that all processes stop, or go on, together; returns whether any was interrupted."""
    config, state = s.config, s.state
    s.in_step = True  # until the step is whole: weights, statistics and state at one iteration
    for group in s.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    s.model.train()
    with compile_errors(s.run.compile):  # torch.compile builds forward and backward lazily
        with autocast(s.device, s.run.precision):
            logits = s.forward(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        local = [loss.item() * len(y), float((logits.argmax(1) != y).sum()), float(len(y)), float(interrupted)]
        loss_sum, errors, seen, stops = s.world.all_sum(local, s.device)
        if not math.isfinite(loss_sum):
            raise NonFiniteLoss(
                f"the loss is {loss_sum / seen} at iteration {state.iteration + 1}: training diverged (try a "
                f"lower --lr); {s.kept()}",
                state.iteration + 1,
            )
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
    s.hooks.before_optimizer_step(s.model)
    s.optimizer.step()

    state.loss_sum += loss_sum
    state.errors += int(errors)
    state.seen += int(seen)
    state.iteration += 1
    state.step = step + 1
    s.hooks.after_step(state, Step(state.iteration, loss_sum / seen, errors / seen, lr))
    s.in_step = False
    return stops > 0


def end_epoch(s: Session, lr: float) -> None:
    """Record the epoch, evaluating every ``eval_every`` epochs and at the end; rank 0 logs and writes the
    metrics. Every process takes part in the checkpoint (its weights check is agreed), which rank 0 writes."""
    config, state, data = s.config, s.state, s.data
    seen = max(1, state.seen)
    record: dict[str, Any] = dict.fromkeys(COLUMNS)  # a metrics row; None: not measured (e.g. no validation)
    record.update(epoch=state.epoch + 1, iteration=state.iteration, train_loss=state.loss_sum / seen,
                  train_error=state.errors / seen, lr=lr)  # fmt: skip
    last = state.iteration == s.total
    if last or (config.eval_every > 0 and (state.epoch + 1) % config.eval_every == 0):
        predict = torch_predictor(s.evaluated, s.normalize, s.device, s.run.precision)
        for split in scored_splits(data):  # every process evaluates its slice of the split
            batches = data.eval_batches(split, *shard(data.split_size(split)), EVAL_BATCH)
            result = evaluate_batches(predict, batches, data.class_names, config.tta, data.eval_crop)
            record[f"{split}_error"], record[f"{split}_error_tta"] = result.error, result.error_tta
    record["time_s"] = round(s.elapsed_s(), 3)
    record["images_per_s"] = round(s.images / max(s.train_s, 1e-9), 1)
    record["data_wait_s"] = round(s.wait_s, 3)
    unreadable = count_unreadable(s) if s.streamed else None
    if unreadable is not None:
        record["bad_files"] = int(unreadable[0])
    s.train_s = s.wait_s = 0.0
    s.images = 0
    s.hooks.on_epoch_end(record)
    state.next_epoch()
    improved = record["val_error"] is not None and (
        state.best_val_error is None or record["val_error"] < state.best_val_error
    )
    if improved:
        state.best_val_error = record["val_error"]
    if s.world.main:
        _write_epoch(s, record, lr, last)
    if config.save_every is None or improved:  # best is chosen on validation error only, never test
        s.save(best=improved)
    if unreadable is not None:
        stop_if_unreadable(s, *unreadable)


def scored_splits(data) -> tuple[str, ...]:
    """The splits evaluated during training: the validation split when one is held out, else the test split.
    A recipe chosen on validation never sees the test set; ``resnetlab eval`` scores it once."""
    return ("val",) if data.split_size("val") else ("test",) if data.split_size("test") else ()


def _write_epoch(s: Session, record: dict, lr: float, last: bool) -> None:
    """Rank 0's part of an epoch's end: the metrics files, the curves, the log line."""
    config, state = s.config, s.state
    state.metrics.append(record)
    write_metrics(s.out, state.metrics)
    plot_curves(s.out / "curves.png", {config.model: state.metrics}, title=f"{config.model} on {s.data.name}")
    s.log(" ".join(
        [f"epoch {record['epoch']}/{s.n_epochs}", f"iter {record['iteration']}", f"loss {record['train_loss']:.4f}",
         f"train {100 * record['train_error']:.2f}%"]
        + [f"{k} {100 * record[f'{k}_error']:.2f}%" for k in ("val", "test") if record[f"{k}_error"] is not None]
        + [f"{k} {config.tta} {100 * record[f'{k}_error_tta']:.2f}%" for k in ("val", "test")
           if record[f"{k}_error_tta"] is not None]
        + ([f"grad norm {record['grad_norm']:.3g}"] if record["grad_norm"] is not None else [])
        + [f"lr {lr:.4g}", f"{record['images_per_s']:.0f} img/s", f"data wait {record['data_wait_s']:.1f}s",
           f"{record['time_s']:.0f}s"]
        + ([f"{record['bad_files']} unreadable files"] if record["bad_files"] else [])
        + ([] if last else [f"eta {_duration(s.remaining_s())}"])
    ))  # fmt: skip


READS_CHECKED_AT = 1000  # files read before the first check of unreadable ones (then at every epoch's end)
BAD_FRACTION = 0.01  # unreadable files above this fraction stop the run
EVAL_BATCH = 500


class UnreadableFiles(DataError):
    """Too many unreadable files: every process stops at the same step (the count is agreed)."""


def count_unreadable(s: Session) -> tuple[float, float]:
    """(unreadable files, files read) of a streamed folder so far, summed over every process."""
    loader = s.loader
    assert isinstance(loader, (StreamLoader, ShardLoader))
    bad, read = s.world.all_sum([float(len(loader.bad)), float(loader.read)], s.device)
    return bad, read


def stop_if_unreadable(s: Session, bad: float, read: float) -> None:
    """Above 1% of the files read, unreadable ones stop the run (after its checkpoint) with one line naming the
    count and the first files; checked after the first 1,000 files and at each epoch's end."""
    if bad > BAD_FRACTION * read:
        assert isinstance(s.loader, (StreamLoader, ShardLoader))
        raise UnreadableFiles(
            f"{int(bad)} of {int(read)} files read ({100 * bad / read:.1f}%, over {100 * BAD_FRACTION:.0f}%) could not "
            f"be decoded, e.g. {', '.join(list(s.loader.bad)[:3])}: repair or remove them (the warnings name each), "
            f"then continue with --resume {s.out}"
        )


def _timed(batches: Iterator[tuple[int, Tensor, Tensor]], s: Session) -> Iterator[tuple[int, Tensor, Tensor]]:
    """``batches``, adding the time spent waiting for each to ``s.wait_s``."""
    while True:
        start = time.perf_counter()
        item = next(batches, None)
        s.wait_s += time.perf_counter() - start
        if item is None:
            return
        yield item


def _sync_note(sync_bn: bool) -> str:
    return "batch norm synchronized" if sync_bn else "per-process batch norm statistics (--no-sync-bn)"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return (
        f"{seconds:.0f}s" if seconds < 60 else f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
    )
