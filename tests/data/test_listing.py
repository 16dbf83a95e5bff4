"""The listing of an image folder: ImageFolder's rules, arrays small enough for a million files, and a cache
that is reused while valid and rebuilt, saying so, when the folder changes."""

import os
import pickle

import numpy as np

from resnetlab.data import listing as listing_module
from resnetlab.data.listing import cached, scan


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_imagefolder_rules(tmp_path):
    root = tmp_path / "train"
    for rel in ["dog/b.JPEG", "dog/a.png", "dog/sub/c.jpg", "cat/z.Jpg", "cat/.hidden.jpg", "cat/._z.jpg",
                "cat/notes.txt", ".cache/x.jpg", "dog/.thumbs/t.jpg"]:  # fmt: skip
        _touch(root / rel)
    (root / "empty").mkdir()
    (tmp_path / "elsewhere" / "e.jpg").parent.mkdir()
    _touch(tmp_path / "elsewhere" / "e.jpg")
    os.symlink(tmp_path / "elsewhere", root / "linked")  # a symlinked class folder is followed
    found = scan(root)
    assert found.classes == ("cat", "dog", "empty", "linked") and found.empty == ("empty",)
    assert [os.path.relpath(found.path(i), root) for i in range(len(found))] == [
        "cat/z.Jpg", "dog/a.png", "dog/b.JPEG", "dog/sub/c.jpg", "linked/e.jpg"]  # fmt: skip
    assert found.labels.tolist() == [0, 1, 1, 1, 3] and found.labels.dtype == np.int32


def test_arrays_stay_small_and_pickle_cheaply(tmp_path):
    root = tmp_path / "imgs"
    for c in range(10):
        for i in range(300):
            _touch(root / f"n0{c:07d}" / f"n0{c:07d}_{i:05d}.JPEG")  # ImageNet's names
    found = scan(root)
    assert len(found) == 3000 and found.nbytes / len(found) <= 200
    assert len(pickle.dumps(found)) < found.nbytes + 2000  # three arrays, not 3,000 Python strings


def test_cache_is_reused_then_rebuilt_when_the_folder_changes(tmp_path, monkeypatch):
    root, run, cache = tmp_path / "data", tmp_path / "run", tmp_path / "cache"
    for rel in ["a/1.png", "b/2.png"]:
        _touch(root / rel)
    os.chmod(root, 0o555)  # the data may be read-only: nothing is written beside it
    run.mkdir()  # the run folder exists (a session keeps its copy itself when it does not yet)
    said = []
    first = cached(root, run / "listing.npz", cache, said.append)
    assert (run / "listing.npz").is_file() and len(list(cache.iterdir())) == 1 and not said
    scans = []
    monkeypatch.setattr(listing_module, "scan", lambda r: scans.append(r) or scan(r))
    again = cached(root, run / "listing.npz", cache, said.append)
    assert not scans and again.labels.tolist() == first.labels.tolist()  # from the cache
    os.chmod(root, 0o755)
    _touch(root / "b" / "3.png")  # a new file: the class folder's count and time change
    third = cached(root, run / "listing.npz", cache, said.append)
    assert len(scans) == 1 and len(third) == 3 and "changed" in said[0] and "listing it again" in said[0]
    assert not any(p.name.endswith(".npz") for p in root.rglob("*"))
