"""CIFAR-10 loaders on files generated here in the official python-version format."""

import pickle
import tarfile

import numpy as np
import pytest

from resnetlab.data import load_cifar10, load_data, load_npz
from resnetlab.data.cifar10 import CLASSES


def write_official(folder, per_batch=20):
    """data_batch_1..5, test_batch and batches.meta as pickled dicts with bytes keys, as in the tarball."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * per_batch},
                f,
            )
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}, f)
    return batches


def test_official_folder_and_tarball(tmp_path):
    batches = write_official(tmp_path / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    for source in (tmp_path, tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz"):
        d = load_cifar10(source)
        assert d.x_train.shape == (100, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
        assert d.class_names == CLASSES and d.flip
        data, labels = batches["data_batch_2"]
        # Row-major 3072 = 3 planes of 32×32 (R, G, B), as the CIFAR page describes.
        np.testing.assert_array_equal(d.x_train[20].numpy(), data[0].reshape(3, 32, 32))
        assert d.y_train[20:40].tolist() == labels
    assert load_data(f"cifar10:{tmp_path}").x_train.shape[0] == 100


def test_missing_or_wrong_files_are_one_clear_line(tmp_path):
    write_official(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with pytest.raises(ValueError, match="missing test_batch.*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "c")
    with pytest.raises(ValueError, match="no such folder"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "c" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch file"):
        load_cifar10(tmp_path / "c")


def test_pickles_cannot_run_code(tmp_path):
    write_official(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_cifar10(tmp_path / "c")


def test_npz_checks(tmp_path):
    x = np.zeros((4, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    d = load_npz(tmp_path / "ok.npz")
    assert d.class_names == ("0", "1", "2", "3") and d.x_train.shape == (4, 3, 32, 32)
    np.savez(tmp_path / "bad.npz", x_train=x.astype(np.float32), y_train=np.arange(4))
    with pytest.raises(ValueError, match="must be uint8"):
        load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "labels.npz", x_train=x, y_train=np.array([0, 1, 2, 9]), class_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        load_npz(tmp_path / "labels.npz")
    np.savez(tmp_path / "keys.npz", images=x)
    with pytest.raises(ValueError, match="missing x_train, y_train"):
        load_npz(tmp_path / "keys.npz")
    with pytest.raises(ValueError, match="expected default | cifar10:PATH"):
        load_data("imagenet:/x")


def test_real_cifar10_npz(cifar_npz):
    d = load_npz(cifar_npz)
    assert d.x_train.shape == (50000, 3, 32, 32) and d.x_test.shape == (10000, 3, 32, 32)
    assert d.class_names[0] == "airplane" and d.y_train.bincount().tolist() == [5000] * 10
    split = d.split_validation(5000)
    assert len(split.y_train) == 45000 and len(split.y_val) == 5000
