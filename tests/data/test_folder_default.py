"""Image folders (bad files reported, not fatal) and the embedded default dataset."""

import numpy as np
import pytest
from PIL import Image

from resnetlab.data import load_default, load_image_folder


def test_image_folder_resizes_and_skips_unreadable(tmp_path, capsys):
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((40, 60, 3), 50 * c + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not an image")
    d = load_image_folder(tmp_path, size=24)
    assert d.class_names == ("cat", "dog") and d.x_train.shape == (6, 3, 24, 24) and d.x_test is None
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert "broken.jpg" in capsys.readouterr().err


def test_image_folder_train_test_split_and_all_bad(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / "a" / "x.png")
    d = load_image_folder(tmp_path, size=8)
    assert len(d.y_train) == 1 and len(d.y_test) == 1
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable images"):
        load_image_folder(tmp_path / "bad")


def test_default_dataset_is_real_mnist_digits():
    d = load_default()
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.y_train.bincount().tolist() == [400] * 10 and not d.flip
    assert d.x_train.float().mean() > 10  # real strokes, not blank images


def test_default_dataset_without_extra_names_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"resnetlab\[demo\]"):
        load_default()


def test_default_dataset_prefixes_mix_the_classes():
    d = load_default()
    assert len(set(d.y_train[:100].tolist())) == 10 and len(set(d.y_test[:100].tolist())) == 10


def test_default_dataset_loads_are_independent():
    """The parsed file is cached; each load still hands out its own tensors."""
    a = load_default()
    a.x_train.zero_()
    b = load_default()
    assert b.x_train.sum() > 0 and a.x_train.data_ptr() != b.x_train.data_ptr()
