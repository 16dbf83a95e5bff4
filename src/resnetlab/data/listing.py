"""The files of an image folder as NumPy arrays, with torchvision ImageFolder's rules: built once, cached,
and cheap to hand to worker processes (three arrays, no Python list of a million strings to copy).

Rules: the classes are the sorted names of the root's sub-folders (symlinked folders followed), a class's
files are found recursively and sorted, extensions are case-insensitive (``.JPEG``), hidden files and
folders (``.*``, including macOS's ``._*``) are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/resnetlab/listings`` (default ``~/.cache/resnetlab/listings``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "resnetlab" / "listings"


@dataclass(frozen=True, eq=False)
class Listing:
    """``len(listing)`` files of ``root``: file i is ``names[offsets[i]:offsets[i + 1]]`` (its path relative to
    ``root``, as the file system's bytes) with class ``labels[i]`` of ``classes``."""

    root: str
    classes: tuple[str, ...]
    names: np.ndarray  # uint8, the relative paths concatenated
    offsets: np.ndarray  # int64, len + 1
    labels: np.ndarray  # int32
    empty: tuple[str, ...] = ()  # classes without a single image file
    key: str = ""  # the ``fingerprint`` of the folder when it was listed

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.names[self.offsets[i] : self.offsets[i + 1]].tobytes()))

    @property
    def nbytes(self) -> int:
        return self.names.nbytes + self.offsets.nbytes + self.labels.nbytes


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _files(folder: str) -> list[bytes]:
    """The image files under ``folder``, recursively, as paths relative to it, sorted."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if _visible(d)]
        rel = os.path.relpath(here, folder)
        found += [os.fsencode(os.path.normpath(os.path.join(rel, f))) for f in files
                  if _visible(f) and f.lower().endswith(EXTENSIONS)]  # fmt: skip
    return sorted(found)


def scan(root: str | Path) -> Listing:
    """List ``root/<class>/**`` (see the module's rules)."""
    root = os.path.abspath(root)
    classes = sorted(e.name for e in os.scandir(root) if _visible(e.name) and e.is_dir())
    names: list[bytes] = []
    labels: list[int] = []
    empty = []
    for label, name in enumerate(classes):
        files = [os.fsencode(name) + b"/" + f for f in _files(os.path.join(root, name))]
        if not files:
            empty.append(name)
        names += files
        labels += [label] * len(files)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(n) for n in names], out=offsets[1:])
    buffer = np.frombuffer(b"".join(names), dtype=np.uint8).copy()
    return Listing(root, tuple(classes), buffer, offsets, np.asarray(labels, dtype=np.int32), tuple(empty))


def fingerprint(root: str | Path) -> str:
    """What a cached listing of ``root`` is valid for: its absolute path, and the modification time and entry
    count of the root and of every class folder (adding, removing or renaming a file changes its folder's)."""
    root = os.path.abspath(root)
    parts = [root]
    for folder in [root, *sorted(e.path for e in os.scandir(root) if _visible(e.name) and e.is_dir())]:
        with os.scandir(folder) as entries:
            parts.append(f"{os.stat(folder).st_mtime_ns}:{sum(1 for _ in entries)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def save(listing: Listing, path: Path, key: str) -> None:
    """An ``.npz`` of plain arrays (no pickle), written under a temporary name and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"key": key, "root": listing.root, "classes": listing.classes, "empty": listing.empty})
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, names=listing.names, offsets=listing.offsets, labels=listing.labels, meta=np.array(meta))
    os.replace(tmp, path)


def load(path: Path, key: str) -> Listing | None:
    """The listing saved at ``path`` if it was made for ``key``, else None (absent, stale or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta["key"] != key:
                return None
            return Listing(meta["root"], tuple(meta["classes"]), f["names"], f["offsets"], f["labels"],
                           tuple(meta["empty"]), key)  # fmt: skip
    except (OSError, ValueError, KeyError):
        return None


def cached(root: str | Path, run_file: Path | None = None, cache: Path | None = None,
           log: Callable[[str], None] = print) -> Listing:  # fmt: skip
    """The listing of ``root``: from ``run_file`` (in the run folder) or the user's cache when it is still
    valid, else scanned and saved to both (never beside the data, which may be read-only). Says when a cache
    was stale."""
    key = fingerprint(root)
    places = [p for p in (run_file, (cache or user_cache()) / f"{key}.npz") if p]
    for place in places:
        found = load(place, key)
        if found is not None:
            return found
    stale = [p for p in places if p.exists()]
    if stale:
        log(f"the listing of {root} changed since {stale[0]} was written: listing it again")
    listing = replace(scan(root), key=key)
    for place in places:
        if place == run_file and not run_file.parent.is_dir():  # a run folder not made yet: kept later
            continue
        try:
            save(listing, place, key)
        except OSError as e:  # a cache that cannot be written costs a scan next time, nothing else
            log(f"could not cache the listing in {place} ({e.strerror or e})")
    return listing
