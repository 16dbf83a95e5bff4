"""WebDataset shards: an image folder packed once into tar files (``pack``), described by ``_info.json`` in
timm's layout (per split: ``num_samples``, ``filenames``, ``shard_lengths``; plus ``class_names``), and read back
sample by sample (``samples``). Members are ``KEY.jpg`` (or ``.png``, ...: the original bytes) and ``KEY.cls``
(the class index as text); WebDataset splits a member's name into key and extension at the first dot of its
base name, so keys hold no dot."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError
from .decode import Source
from .folder import UNREADABLE, FileSet, folder_splits, list_folder

INFO = "_info.json"
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}  # Pillow's name → member's
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KI": 2**10, "MI": 2**20, "GI": 2**30}


def parse_size(text: str) -> int:
    """Bytes of ``256MB``, ``1GiB``, ``500k`` or ``1000000``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?)?[bB]?\s*", text)
    if not match:
        raise UsageError(f"--shard-size {text!r}: give a size such as 256MB, 1GiB or 100000000")
    return int(float(match[1]) * _UNITS[(match[2] or "").upper()])


@dataclass(frozen=True)
class Split:
    """One split's shards: their paths and how many samples each holds."""

    name: str
    files: tuple[str, ...]
    lengths: tuple[int, ...]

    @property
    def num_samples(self) -> int:
        return sum(self.lengths)


@dataclass(frozen=True)
class ShardInfo:
    name: str
    class_names: tuple[str, ...]
    splits: dict[str, Split]

    def split(self, *names: str) -> Split | None:
        """The first of ``names`` that exists (e.g. test, then ImageNet's val)."""
        return next((self.splits[n] for n in names if n in self.splits), None)


def read_info(spec: str, num_classes: int | None = None) -> ShardInfo:
    """The shards a ``wds:`` source names: ``DIR`` (with its ``_info.json``), or ``TRAIN::VAL`` brace patterns
    of shards written by other tools (``train-{000000..000099}.tar::val-{000000..000009}.tar``), counted by
    reading them once, whose classes are ``0 .. num_classes - 1``."""
    if "::" in spec or spec.endswith(".tar"):
        if not num_classes:
            raise UsageError(f"wds:{spec}: shards without an {INFO} need --num-classes N")
        train, _, test = spec.partition("::")
        splits = {}
        for name, pattern in (("train", train), ("test", test)):
            if pattern:
                files = tuple(expand(pattern))
                missing = [f for f in files if not Path(f).is_file()]
                if missing:
                    raise UsageError(f"wds:{spec}: no shard {missing[0]} ({len(missing)} of {len(files)} missing)")
                splits[name] = Split(name, files, tuple(count(f) for f in files))
        return ShardInfo(Path(train).parent.name, tuple(str(i) for i in range(num_classes)), splits)
    root = Path(spec)
    path = root / INFO
    if not path.is_file():
        raise UsageError(f"wds:{spec}: no {INFO} there (write shards with 'resnetlab data pack folder:ROOT --out "
                         f"{spec}', or give TRAIN_PATTERN::VAL_PATTERN with --num-classes)")  # fmt: skip
    try:
        info = json.loads(path.read_text())
        splits = {
            name: Split(name, tuple(str(root / f) for f in s["filenames"]), tuple(int(n) for n in s["shard_lengths"]))
            for name, s in info["splits"].items()
        }
        classes = info.get("class_names") or [str(i) for i in range(num_classes or 0)]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a shard description ({type(e).__name__}: {e})") from None
    if not classes:
        raise UsageError(f"{path}: names no class_names; give --num-classes N")
    return ShardInfo(info.get("name", root.name), tuple(classes), splits)


def expand(pattern: str) -> list[str]:
    """Bash-style braces as WebDataset reads them: ``{000..099}`` (zero-padded ranges) and ``{a,b}``."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail, body = pattern[: match.start()], pattern[match.end() :], match[1]
    if ".." in body:
        lo, hi = body.split("..")
        options = [str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [p for option in options for p in expand(head + option + tail)]


def count(shard: str) -> int:
    """Samples (keys with an image member) in a shard, from its headers."""
    with tarfile.open(shard) as tar:
        return len({_split(m.name)[0] for m in tar if m.isfile() and _split(m.name)[1] in IMAGE_EXTENSIONS})


def _split(name: str) -> tuple[str, str]:
    """(key, extension) of a member, as WebDataset splits them: at the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


@dataclass(frozen=True)
class Sample:
    key: str
    image: bytes
    label: int
    shard: str


class BadSample(Exception):
    """A member group that is not a sample (no image or no class), or a shard cut short: named, and skipped."""


def samples(shard: str) -> Iterator[Sample | BadSample]:
    """The samples of a shard in order, streamed (the file is read once, front to back). A group of members
    without an image or a class is a ``BadSample`` in the sequence; a truncated or unreadable shard ends with
    one."""
    group: dict[str, bytes] = {}
    key = None
    try:
        with tarfile.open(shard, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                k, ext = _split(member.name)
                if k != key and key is not None:
                    yield _sample(key, group, shard)
                    group = {}
                key = k
                f = tar.extractfile(member)
                group[ext] = f.read() if f is not None else b""
        if key is not None:
            yield _sample(key, group, shard)
    except (tarfile.TarError, OSError, EOFError) as e:
        yield BadSample(f"{shard}: unreadable after {key or 'its start'} ({type(e).__name__}: {e}); the rest of it "
                        "is skipped")  # fmt: skip


def _sample(key: str, group: dict[str, bytes], shard: str) -> Sample | BadSample:
    image = next((group[e] for e in IMAGE_EXTENSIONS if e in group), None)
    try:
        label = int(group["cls"].decode().strip())
    except (KeyError, ValueError, UnicodeDecodeError):
        return BadSample(f"{shard}:{key} has no class (a .cls member holding an integer)")
    if image is None:
        return BadSample(f"{shard}:{key} has no image (.{', .'.join(IMAGE_EXTENSIONS)})")
    return Sample(key, image, label, shard)


def decode(sample: Sample, transform: Callable, rng: np.random.Generator | None = None) -> np.ndarray:
    """The sample's image through ``transform`` (``transforms.py``); raises ``folder.UNREADABLE``."""
    return transform(Source(sample.image), rng)


def _key(name: str, taken: set[str]) -> str:
    key = re.sub(r"[^A-Za-z0-9_-]", "_", name)  # no dot: WebDataset's key ends at the first one
    unique, n = key, 1
    while unique in taken:
        n += 1
        unique = f"{key}_{n}"
    taken.add(unique)
    return unique


def pack(root: str | Path, out: str | Path, shard_size: int = 256 * 10**6, seed: int = 0,
         log: Callable[[str], None] = print) -> ShardInfo:  # fmt: skip
    """Write the image folder ``root`` as shards in ``out``: per split (train, and test or val as the folder
    names it), its readable images in a random order of ``seed`` (classes mixed: a shard of one class would
    give one rank one-class batches), a new shard when the next image would pass ``shard_size`` bytes. Each
    image is fully decoded once to check it; unreadable files are named and left out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_files, test_files = list_folder(root, log=log)
    _, test_root = folder_splits(root)
    classes = train_files.listing.classes
    splits: dict[str, Split] = {}
    described = {}
    for name, files in (("train", train_files), (test_root.name if test_root else "test", test_files)):
        if files is None:
            continue
        split, bad = _write_split(files, name, out, shard_size, np.random.default_rng([seed, 6]), classes)
        for line in bad:
            log(f"warning: left out {line}")
        splits[name] = split
        names = [Path(f).name for f in split.files]
        described[name] = {"name": name, "num_samples": split.num_samples, "filenames": names,
                           "shard_lengths": list(split.lengths)}  # fmt: skip
        log(f"{name}: {split.num_samples} images in {len(split.files)} shards" + (f", {len(bad)} unreadable left out"
                                                                                  if bad else ""))  # fmt: skip
    info = {"name": Path(root).name, "class_names": list(classes), "splits": described}
    tmp = out / f".{INFO}.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / INFO)
    return ShardInfo(Path(root).name, tuple(classes), splits)


def _write_split(files: FileSet, name: str, out: Path, shard_size: int, rng: np.random.Generator,
                 classes: tuple[str, ...]) -> tuple[Split, list[str]]:  # fmt: skip
    paths: list[str] = []
    lengths: list[int] = []
    bad: list[str] = []
    taken: set[str] = set()
    tar: tarfile.TarFile | None = None
    written = 0
    for i in rng.permutation(len(files)):
        path = files.path(int(i))
        try:
            data = Path(path).read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                ext = FORMATS.get(image.format or "")
                image.load()
        except UNREADABLE as e:
            bad.append(f"{path} ({type(e).__name__})")
            continue
        if ext is None:
            bad.append(f"{path} (a {image.format} image: shards hold {', '.join(FORMATS)})")
            continue
        if tar is None or (written + len(data) > shard_size and lengths[-1]):
            if tar is not None:
                tar.close()
                os.replace(paths[-1] + ".tmp", paths[-1])
            paths.append(str(out / f"{name}-{len(paths):06d}.tar"))
            lengths.append(0)
            tar, written = tarfile.open(paths[-1] + ".tmp", "w", format=tarfile.USTAR_FORMAT), 0
        label = int(files.labels[int(i)])
        key = _key(f"{classes[label]}_{Path(path).stem}", taken)
        for member, payload in ((f"{key}.{ext}", data), (f"{key}.cls", str(label).encode())):
            entry = tarfile.TarInfo(member)
            entry.size, entry.mode, entry.mtime = len(payload), 0o444, 0  # reproducible bytes
            tar.addfile(entry, io.BytesIO(payload))
        written += len(data) + 2048
        lengths[-1] += 1
    if tar is not None:
        tar.close()
        os.replace(paths[-1] + ".tmp", paths[-1])
    return Split(name, tuple(paths), tuple(lengths)), bad
