"""Image folders larger than memory: the files are listed once (``folder.list_folder``) and decoded batch by
batch in DataLoader worker processes. The batches reach the loop as uint8, as the in-memory ones do, and are
the same batches: epoch e's order is the permutation keyed on (seed, 0, e) and step s's pad-crop-flip is
drawn from (seed, 1, e, s) on the device (``EpochLoader``'s rules), so nothing depends on ``--workers``. The
ImageNet augmentations (``transforms.py``) crop each file anew in the workers instead, file i of epoch e drawing
from (seed, 2, e, i).
``choose_mode`` says which of the two a run gets."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..errors import DataError
from .augment import PadCropFlip, generator
from .dataset import DecodedFromFiles, check_subset, validation_rows
from .folder import UNREADABLE, FileSet, Transform, load_image
from .transforms import EvalTransform, sample_rng

MEMORY_FRACTION, MEMORY_LIMIT = 0.25, 4 << 30  # in memory when the decoded training set fits under both
STATS_SAMPLE = 2000  # training images the normalization is measured on when streaming


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def choose_mode(images: int, size: int, mode: str = "auto") -> tuple[str, str]:
    """("memory" | "stream", why): in memory (every image decoded once, before the first step) when the
    decoded training set is at most 25% of physical memory and at most 4 GB; ``mode`` other than auto wins."""
    need, memory = images * 3 * size * size, physical_memory()
    if mode != "auto":
        return mode, f"--data-mode {mode}"
    fits = need <= MEMORY_FRACTION * memory and need <= MEMORY_LIMIT
    return ("memory" if fits else "stream"), (
        f"{images} images decoded at {size}×{size} take {need / 2**30:.2f} GB, "
        f"{'within' if fits else 'over'} the limit of min(25% of {memory / 2**30:.0f} GB, 4 GB)"
    )


@dataclass(frozen=True, eq=False)
class StreamedFolder(DecodedFromFiles):
    """An image folder as ``ImageData`` presents one (name, classes, shape, augmentation, split sizes), whose
    images stay on disk: ``train``, ``val`` and ``test`` are lists of files, decoded at ``size``: training files
    through ``train_transform`` (random, per file: ``transforms.TRAIN_TRANSFORMS``) or, without one, as the
    in-memory folders are and then pad-crop-flipped on the device; evaluation files at ``eval_transform``'s
    centre square (``evaluation``; cropped by ``evaluation.views``)."""

    name: str
    class_names: tuple[str, ...]
    train: FileSet
    size: int
    augmentation: PadCropFlip = PadCropFlip(pad=4, flip=True)
    val: FileSet | None = None
    test: FileSet | None = None
    workers: int = 0  # processes decoding its files (0: the calling process)
    train_transform: Transform | None = None
    evaluation: EvalTransform | None = None  # None: fitted to size×size, as in memory

    def split_size(self, split: str) -> int:
        files = {"train": self.train, "val": self.val, "test": self.test}[split]
        return 0 if files is None else len(files)

    def subset(self, n: int | None) -> StreamedFolder:
        if n is None:
            return self
        check_subset(n, len(self.train), self.name)
        return replace(self, train=self.train.take(slice(0, n)))

    def split_validation(self, n: int) -> StreamedFolder:
        """As ``ImageData.split_validation``: the same files held out."""
        if not n:
            return self
        train, val = validation_rows(len(self.train), n)
        return replace(self, train=self.train.take(train.numpy()), val=self.train.take(val.numpy()))

    def eval_batches(self, split: str, lo: int, hi: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Files ``lo`` to ``hi`` of ``split`` in batches, decoded by ``workers`` processes; an unreadable
        file is left out of the evaluation (and named)."""
        files = self.val if split == "val" else self.test
        assert files is not None, split
        keys = [(i, min(i + batch_size, hi)) for i in range(lo, hi, batch_size)]
        reader = _Reader(files, self.eval_transform.square, Reading(self.workers))
        for x, y, bad in reader.reading.each(DataLoader(reader, batch_size=None, sampler=keys,
                                                        **_worker_options(self.workers))):  # fmt: skip
            for path, reason in bad:
                print(f"resnetlab: warning: {path} is unreadable ({reason}): left out of the evaluation",
                      file=sys.stderr)  # fmt: skip
            yield x, y

    def stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std on the [0, 1] scale, over up to ``STATS_SAMPLE`` training images (a fixed
        choice: seed 0), so that a resumed run computes the same normalization."""
        n = len(self.train)
        rows = np.sort(np.random.default_rng(0).permutation(n)[: min(n, STATS_SAMPLE)])
        sample = _Reader(self.train.take(rows), EvalTransform(self.size, self.size), Reading(self.workers))
        keys = [(i, min(i + 100, len(rows))) for i in range(0, len(rows), 100)]
        loader = DataLoader(sample, batch_size=None, sampler=keys, **_worker_options(self.workers))
        return channel_moments(x for x, _, _ in sample.reading.each(loader))


def channel_moments(batches: Iterable[Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the [0, 1] scale of uint8 (N, 3, H, W) batches, accumulated in float64."""
    total = torch.zeros(3, dtype=torch.float64)
    squares, count = torch.zeros(3, dtype=torch.float64), 0
    for x in batches:
        x = x.to(torch.float64).div_(255).transpose(0, 1).reshape(3, -1)
        total, squares, count = total + x.sum(1), squares + x.square().sum(1), count + x.shape[1]
    mean = total / max(count, 1)
    return mean.tolist(), (squares / max(count, 1) - mean.square()).clamp_min(0).sqrt().tolist()


class Reading:
    """Which file each worker process is decoding, in shared memory (a pid and a path per worker), so that a
    worker that dies can be named by its file; ``each`` iterates a DataLoader and reports such a death."""

    def __init__(self, workers: int):
        self.table = torch.zeros(max(workers, 1), 1024, dtype=torch.uint8).share_memory_()

    def decode(self, path: str, transform: Transform, rng: np.random.Generator | None = None) -> np.ndarray:
        info = get_worker_info()
        if info is None:
            return load_image(path, transform, rng)
        name = os.fsencode(path)[: self.table.shape[1] - 8]
        slot = self.table[info.id]
        slot[:8] = torch.tensor([os.getpid()], dtype=torch.int64).view(torch.uint8)
        slot[8 : 8 + len(name)] = torch.frombuffer(bytearray(name), dtype=torch.uint8)
        slot[8 + len(name) :] = 0
        try:
            return load_image(path, transform, rng)
        finally:
            slot[8:] = 0

    def each(self, loader: DataLoader) -> Iterator:
        """The items of ``loader``; a worker's death is a ``DataError`` naming the file it was reading."""
        items = iter(loader)
        _quiet_sigchld()
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except RuntimeError as e:
                raise self.died(e) from None
            except (ConnectionError, EOFError):  # a worker killed while it handed over a batch's shared memory
                workers = getattr(items, "_workers", [])  # the DataLoader's processes (its iterator's, private)
                for w in workers:
                    w.join(timeout=1.0)  # its sockets close as it dies: let it finish dying
                dead = [str(w.pid) for w in workers if w.exitcode is not None]
                if not dead:
                    raise
                message = f"DataLoader worker (pid(s) {', '.join(dead)}) exited unexpectedly"  # as torch words it
                raise self.died(RuntimeError(message)) from None
            yield item

    def died(self, e: RuntimeError) -> Exception:
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if not message.startswith("DataLoader worker"):
            return e
        pids = {int(p) for p in re.findall(r"\d+", message.partition("pid")[2].partition(")")[0])}
        reading = []
        for slot in self.table:
            pid = int(slot[:8].view(torch.int64))
            path = bytes(slot[8:].tolist()).rstrip(b"\0")
            if path and (pid in pids or not pids):
                reading.append(os.fsdecode(path))
        what = f"while reading {', '.join(reading)}" if reading else "between files"
        return DataError(f"a data worker process died {what} ({message}); try fewer --workers or check that file")


class _Reader(Dataset):
    """Key (i, j) → files i to j of ``files`` decoded: (images, labels, [(path, reason)] of the unreadable)."""

    def __init__(self, files: FileSet, transform: EvalTransform, reading: Reading):
        self.files, self.transform, self.reading = files, transform, reading

    def __getitem__(self, key: tuple[int, int]):
        images, labels, bad = [], [], []
        for i in range(*key):
            try:
                images.append(self.reading.decode(self.files.path(i), self.transform))
                labels.append(int(self.files.labels[i]))
            except UNREADABLE as e:
                bad.append((self.files.path(i), _reason(e)))
        side = self.transform.crop
        x = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64), bad


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" if str(e) else type(e).__name__


class Batches(Dataset):
    """Worker side of ``StreamLoader``: key (epoch, step) → this process's rows of that global batch, decoded,
    with the listing rows it read and the files it could not (each replaced by the next file of this
    process's order for the epoch, so that the batch stays full). Files go through ``transform`` when
    there is one (drawing from their own keyed generator), else are fitted to size×size."""

    def __init__(self, files: FileSet, size: int, seed: int, batch_size: int, rank: int, world_size: int,
                 reading: Reading, transform: Transform | None = None):  # fmt: skip
        self.files, self.size, self.seed, self.batch_size = files, size, seed, batch_size
        self.transform = transform
        self.fit = EvalTransform(size, size)
        self.lo, self.hi = rank * batch_size // world_size, (rank + 1) * batch_size // world_size
        self.reading = reading
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """This process's rows of every full global batch of ``epoch``, in step order."""
        if self._order is None or self._order[0] != epoch:
            n, b = len(self.files), self.batch_size
            perm = torch.randperm(n, generator=generator(self.seed, 0, epoch)).numpy()
            self._order = epoch, perm[: n // b * b].reshape(-1, b)[:, self.lo : self.hi].reshape(-1)
        return self._order[1]

    def __getitem__(self, key: tuple[int, int]):
        epoch, step = key
        order, per = self.order(epoch), self.hi - self.lo
        x = torch.empty(per, self.size, self.size, 3, dtype=torch.uint8)
        rows = torch.empty(per, dtype=torch.int64)
        bad: list[tuple[str, str]] = []
        for k in range(per):
            for tries in range(len(order)):
                row = int(order[(step * per + k + tries) % len(order)])
                try:
                    x[k] = torch.from_numpy(self._decode(epoch, row))
                    rows[k] = row
                    break
                except UNREADABLE as e:
                    bad.append((self.files.path(row), _reason(e)))
            else:
                raise DataError(f"folder:{self.files.listing.root}: not one of its files can be read")
        labels = torch.from_numpy(self.files.labels[rows.numpy()].astype(np.int64))
        return x.permute(0, 3, 1, 2).contiguous(), labels, rows, bad

    def _decode(self, epoch: int, row: int) -> np.ndarray:
        path = self.files.path(row)
        if self.transform is None:
            return self.reading.decode(path, self.fit)
        # keyed on the listing's row: the same file gets the same draw whichever subset or split holds it
        return self.reading.decode(path, self.transform, sample_rng(self.seed, epoch, int(self.files.index[row])))


def _quiet_sigchld() -> None:
    """Remove the SIGCHLD handler the DataLoader installs: it raises a worker's death wherever the main thread
    is, mid-step too, where no checkpoint can be taken. Without it the wait for the next batch reports the
    death (torch checks its workers every 5 s while it waits), between two steps."""
    handler = signal.getsignal(signal.SIGCHLD)
    if threading.current_thread() is threading.main_thread() and getattr(handler, "__module__", "").startswith(
        "torch."
    ):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _quiet_worker(worker_id: int) -> None:
    """Ctrl-C reaches every process of the terminal's group: the workers leave it to the main process, which
    finishes its step, saves and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_options(workers: int, pin_memory: bool = False, persistent: bool = False) -> dict:
    if not workers:
        return {"num_workers": 0}
    return dict(num_workers=workers, worker_init_fn=_quiet_worker, persistent_workers=persistent,
                pin_memory=pin_memory, prefetch_factor=2)  # fmt: skip


class _Keys:
    """The sampler of ``StreamLoader``: the (epoch, step) keys of the batches asked for next."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class StreamLoader:
    """``EpochLoader``'s batches (same steps, same order, same augmentation) from files decoded by ``workers``
    persistent worker processes (0: in this process). ``bad`` holds the files found unreadable (path →
    reason) and ``read`` the files tried, this process's; ``warn`` names each unreadable file once."""

    def __init__(self, files: FileSet, size: int, batch_size: int, seed: int, augment: PadCropFlip | None,
                 rank: int, world_size: int, workers: int, device: torch.device,
                 warn: Callable[[str], None] = print, transform: Transform | None = None):  # fmt: skip
        self.files, self.batch_size, self.seed, self.augment = files, batch_size, seed, augment
        self.rows = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        self.device, self.warn = device, warn
        self.dataset = Batches(files, size, seed, batch_size, rank, world_size, Reading(workers), transform)
        self.keys = _Keys()
        self.loader = DataLoader(self.dataset, batch_size=None, sampler=self.keys,
                                 **_worker_options(workers, device.type == "cuda", persistent=True))  # fmt: skip
        self.bad: dict[str, str] = {}
        self.read = 0
        self.last_rows: Tensor | None = None  # the listing rows of the last batch (tests read them)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.files) // self.batch_size

    def close(self) -> None:
        """Stop the worker processes now (not whenever the garbage collector gets to them)."""
        iterator = getattr(self.loader, "_iterator", None)  # the persistent workers' (DataLoader keeps it)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    @property
    def dropped(self) -> int:
        """Files of every epoch left out: fewer than one global batch."""
        return len(self.files) % self.batch_size

    def batches(self, epoch: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Tensor, Tensor]]:
        """(step, images, labels) for steps ``start`` to ``stop`` (default: the epoch's end) of ``epoch``."""
        stop = self.steps_per_epoch if stop is None else stop
        self.keys.keys = [(epoch, step) for step in range(start, stop)]
        batches = self.dataset.reading.each(self.loader)
        for step in range(start, stop):
            x, y, rows, bad = next(batches)
            self._count(bad, len(y))
            self.last_rows = rows
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.augment is not None:
                x = self.augment(x, generator(self.seed, 1, epoch, step), batch=self.batch_size, rows=self.rows)
            yield step, x, y

    def _count(self, bad: list[tuple[str, str]], good: int) -> None:
        self.read += good + len(bad)
        for path, reason in bad:
            if path not in self.bad:
                self.bad[path] = reason
                self.warn(f"skipped unreadable file {path} ({reason}); the next file of the epoch takes its place")
