"""Training and evaluation from WebDataset shards (``--data wds:DIR``, written by ``shards.pack``).

The training shards are dealt once to the processes of a run and, within each, to its worker processes,
balanced by sample count; every epoch then reads each worker's shards in a new order keyed on (seed, epoch,
rank, worker) through a shuffle buffer of ``SHUFFLE_BUFFER`` samples (sample-level shuffling is weaker than
the folder source's global permutation: a sample moves at most a buffer's length from its place in its
shards). Each worker forms whole batches of its process's share of the global batch; a process interleaves
its workers' batches in a fixed schedule and every process takes the same number of steps, agreed from the
shard lengths of ``_info.json`` (each worker's last partial batch is left out of the epoch, and logged).
Resuming inside an epoch re-reads each worker's stream up to the step it stopped at without decoding it, so
the resumed run takes the batches an uninterrupted one takes; only a stream whose skipped part held
unreadable samples shifts by their number (each was replaced by the sample after it).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from ..errors import DataError, UsageError
from .augment import PadCropFlip, generator
from .dataset import DecodedFromFiles
from .folder import UNREADABLE, Transform
from .shards import BadSample, Sample, Split, decode, samples
from .stream import STATS_SAMPLE, _quiet_sigchld, _quiet_worker, _reason, channel_moments
from .transforms import EvalTransform, sample_rng

SHUFFLE_BUFFER = 1000  # samples (undecoded bytes: ~110 MB of ImageNet JPEGs) held by each worker process


def deal(lengths: tuple[int, ...], bins: int) -> list[list[int]]:
    """Shard indices dealt into ``bins`` groups of nearly equal sample counts (largest shard first, each to the
    group with the fewest samples so far; ties to the lowest group)."""
    groups: list[list[int]] = [[] for _ in range(bins)]
    totals = [0] * bins
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        b = min(range(bins), key=lambda b: (totals[b], b))
        groups[b].append(i)
        totals[b] += lengths[i]
    return groups


def interleave(counts: list[int]) -> list[int]:
    """The worker of each batch of a process: worker w's ``counts[w]`` batches spread evenly through the
    sequence (batch k of worker w at (k + 0.5) / counts[w])."""
    slots = [((k + 0.5) / c, w) for w, c in enumerate(counts) for k in range(c)]
    return [w for _, w in sorted(slots)]


@dataclass(frozen=True)
class Plan:
    """Which shards each worker of this process reads, how many batches each gives, the schedule of
    the epoch's steps (the worker of each), and the steps every process takes."""

    shards: list[list[int]]
    schedule: list[int]
    steps: int

    @classmethod
    def make(cls, split: Split, per: int, rank: int, world_size: int, workers: int) -> Plan:
        ranks = deal(split.lengths, world_size)
        counts_of_rank = []
        for own in ranks:
            sub = deal(tuple(split.lengths[i] for i in own), max(1, workers))
            counts_of_rank.append((
                [[own[j] for j in group] for group in sub],
                [sum(split.lengths[own[j]] for j in group) // per for group in sub],
            ))  # fmt: skip
        steps = min(sum(counts) for _, counts in counts_of_rank)
        shards, counts = counts_of_rank[rank]
        return cls(shards, interleave(counts)[:steps], steps)


class ShardBatches(IterableDataset):
    """One worker's batches of an epoch: its shards in the epoch's order, through the shuffle buffer, decoded
    ``per`` at a time; batches ``skip`` to ``count`` are yielded as (images, labels, [(sample, reason)] of the
    unreadable, each replaced by the next sample). A worker whose stream runs short reads it again. Which epoch
    and batches are read is set in shared memory (``start``) before each iteration, so that the worker process
    persists from epoch to epoch."""

    def __init__(self, files: list[str], per: int, key: tuple[int, ...], seed: int, size: int,
                 transform: Transform | None):  # fmt: skip
        self.files, self.per, self.key, self.seed, self.size, self.transform = files, per, key, seed, size, transform
        self.fit = EvalTransform(size, size)
        self.control = torch.zeros(3, dtype=torch.int64).share_memory_()  # epoch, count, skip

    def start(self, epoch: int, count: int, skip: int) -> None:
        self.control.copy_(torch.tensor([epoch, count, skip]))

    def stream(self, epoch: int) -> Iterator[Sample | BadSample]:
        rng = np.random.default_rng([*self.key, epoch])
        while True:  # a second pass only when unreadable samples made the first one short
            buffer: list[Sample | BadSample] = []
            good = 0
            for i in rng.permutation(len(self.files)):
                for item in samples(self.files[i]):
                    good += isinstance(item, Sample)
                    if len(buffer) < SHUFFLE_BUFFER:
                        buffer.append(item)
                        continue
                    j = int(rng.integers(len(buffer)))
                    buffer[j], item = item, buffer[j]
                    yield item
            while buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
            if not good:
                raise DataError(f"not one sample of the shards {', '.join(self.files)} can be read")

    def __iter__(self):
        epoch, count, skip = self.control.tolist()
        stream = self.stream(epoch)
        for b in range(count):
            x = torch.empty(self.per, self.size, self.size, 3, dtype=torch.uint8)
            y = torch.empty(self.per, dtype=torch.int64)
            bad: list[tuple[str, str]] = []
            k = 0
            while k < self.per:
                item = next(stream)
                if b < skip:  # re-read, not decoded: the batches before a resumed step
                    k += isinstance(item, Sample)
                    continue
                if isinstance(item, BadSample):
                    bad.append((str(item), "not a sample"))
                    continue
                try:
                    x[k] = torch.from_numpy(self._decode(item, epoch))
                except UNREADABLE as e:
                    bad.append((f"{item.shard}:{item.key}", _reason(e)))
                    continue
                y[k] = item.label
                k += 1
            if b >= skip:
                yield x.permute(0, 3, 1, 2).contiguous(), y, bad

    def _decode(self, item: Sample, epoch: int) -> np.ndarray:
        if self.transform is None:
            return decode(item, self.fit)
        rng = sample_rng(self.seed, epoch, zlib.crc32(item.key.encode()))  # the key's: any worker, any run
        return decode(item, self.transform, rng)


class ShardLoader:
    """``StreamLoader``'s interface over shards: (step, images, labels) of an epoch, pad-crop-flip keyed on
    (seed, 1, epoch, step) on the device as everywhere else, unreadable samples counted in ``bad``/``read``."""

    def __init__(self, split: Split, size: int, batch_size: int, seed: int, augment: PadCropFlip | None,
                 rank: int, world_size: int, workers: int, device: torch.device,
                 warn: Callable[[str], None] = print, transform: Transform | None = None):  # fmt: skip
        self.split, self.size, self.batch_size, self.seed = split, size, batch_size, seed
        self.augment, self.rank, self.workers, self.device, self.warn = augment, rank, workers, device, warn
        self.per = batch_size // world_size
        self.rows = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        self.transform = transform
        self.plan = Plan.make(split, self.per, rank, world_size, workers)
        if self.plan.steps < 1:
            raise UsageError(
                f"wds: {len(split.files)} training shards of {split.num_samples} samples give no full batch of "
                f"{self.per} to every one of {world_size} processes × {max(1, workers)} workers: pack smaller shards "
                "(--shard-size), or use fewer processes or workers"
            )
        self.bad: dict[str, str] = {}
        self.read = 0
        self.datasets = [
            ShardBatches([split.files[i] for i in shards], self.per, (seed, 5, rank, w), seed, size, transform)
            for w, shards in enumerate(self.plan.shards)
        ]
        self.loaders = [  # one persistent process per worker, so that the schedule says whose batch comes next
            DataLoader(d, batch_size=None, num_workers=1, worker_init_fn=_quiet_worker, prefetch_factor=2,
                       persistent_workers=True) if workers else d for d in self.datasets
        ]  # fmt: skip

    @property
    def steps_per_epoch(self) -> int:
        return self.plan.steps

    @property
    def dropped(self) -> int:
        return self.split.num_samples - self.plan.steps * self.batch_size

    def close(self) -> None:
        """Stop the worker processes now."""
        for loader in self.loaders:
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
                loader._iterator = None  # type: ignore[union-attr]  # a DataLoader: it had an iterator

    def batches(self, epoch: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Tensor, Tensor]]:
        stop = self.plan.steps if stop is None else stop
        schedule = self.plan.schedule
        for w, dataset in enumerate(self.datasets):
            dataset.start(epoch, schedule[:stop].count(w), schedule[:start].count(w))
        iterators = [iter(loader) for loader in self.loaders]
        _quiet_sigchld()
        for step in range(start, stop):
            w = schedule[step]
            try:
                x, y, bad = next(iterators[w])
            except RuntimeError as e:
                if not str(e).startswith("DataLoader worker"):
                    raise
                names = ", ".join(self.split.files[i] for i in self.plan.shards[w])
                first = str(e).splitlines()[0]
                raise DataError(f"a data worker process died while reading the shards {names} ({first}); check them, "
                                "or try fewer --workers") from None  # fmt: skip
            self.read += len(y) + len(bad)
            for where, reason in bad:
                if where not in self.bad:
                    self.bad[where] = reason
                    self.warn(f"skipped unreadable sample {where} ({reason}); the next sample takes its place")
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.augment is not None:
                x = self.augment(x, generator(self.seed, 1, epoch, step), batch=self.batch_size, rows=self.rows)
            yield step, x, y


@dataclass(frozen=True, eq=False)
class ShardedData(DecodedFromFiles):
    """Shards as ``ImageData`` presents a dataset; images decoded at ``size`` (training: through
    ``train_transform`` when given, else fitted and pad-crop-flipped on the device; evaluation: the centre
    square of ``evaluation``)."""

    name: str
    class_names: tuple[str, ...]
    train: Split
    size: int
    augmentation: PadCropFlip = PadCropFlip(pad=4, flip=True)
    test: Split | None = None
    workers: int = 0
    train_transform: Transform | None = None
    evaluation: EvalTransform | None = None

    def split_size(self, split: str) -> int:
        found = {"train": self.train, "val": None, "test": self.test}[split]
        return 0 if found is None else found.num_samples

    def subset(self, n: int | None) -> ShardedData:
        if n is not None:
            raise UsageError("--subset: shards are read whole; pack a smaller folder instead")
        return self

    def split_validation(self, n: int) -> ShardedData:
        if n:
            raise UsageError("--val-split: shards are streamed, not held out from; pack the validation images as "
                             "their own folder's test split and train on the rest")  # fmt: skip
        return self

    def eval_batches(self, split: str, lo: int, hi: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Samples ``lo`` to ``hi`` of the test shards in their order, in batches; unreadable ones left out (and
        named)."""
        assert split == "test" and self.test is not None, split
        reader = _EvalShards(self.test, lo, hi, batch_size, self.eval_transform.square)
        loader = (
            DataLoader(reader, batch_size=None, num_workers=1, worker_init_fn=_quiet_worker) if self.workers else reader
        )
        for x, y, bad in loader:
            for where in bad:
                print(f"resnetlab: warning: {where}: left out of the evaluation", file=sys.stderr)
            if len(y):
                yield x, y

    def stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std on the [0, 1] scale over the first ``STATS_SAMPLE`` training samples (the
        shards' own order: the same for every run and resume)."""
        n = min(STATS_SAMPLE, self.train.num_samples)
        return channel_moments(x for x, _, _ in _EvalShards(self.train, 0, n, 200, EvalTransform(self.size, self.size)))


class _EvalShards(IterableDataset):
    """Samples ``lo`` to ``hi`` of a split in order, decoded through ``transform``, in batches."""

    def __init__(self, split: Split, lo: int, hi: int, batch_size: int, transform: EvalTransform):
        self.split, self.lo, self.hi, self.batch_size, self.transform = split, lo, hi, batch_size, transform

    def __iter__(self):
        starts = np.cumsum((0, *self.split.lengths))
        images, labels, bad = [], [], []
        for i, path in enumerate(self.split.files):
            if starts[i + 1] <= self.lo or starts[i] >= self.hi:
                continue
            for j, item in enumerate(samples(path), start=int(starts[i])):
                if j < self.lo or j >= self.hi:
                    continue
                if isinstance(item, BadSample):
                    bad.append(str(item))
                    continue
                try:
                    images.append(decode(item, self.transform))
                    labels.append(item.label)
                except UNREADABLE as e:
                    bad.append(f"{item.shard}:{item.key} ({_reason(e)})")
                if len(images) == self.batch_size:
                    yield self._batch(images, labels, bad)
                    images, labels, bad = [], [], []
        if images or bad:
            yield self._batch(images, labels, bad)

    def _batch(self, images, labels, bad):
        side = self.transform.crop
        x = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64), bad
