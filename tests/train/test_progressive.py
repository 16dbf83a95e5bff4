"""--small-size: progressive resizing trains on downscaled batches for the first --small-until of the
iterations and on full-size ones after (a resumed run switches at the same iteration: tests/train/test_hooks.py)."""

import pytest
from tests.hooks import Recorder
from tests.train.test_fit import tiny_config

from resnetlab.train import fit, make_config


def test_small_batches_first_then_full_size(tiny_npz, tmp_path):
    seen = Recorder()  # after the built-in hooks: it sees the batches as the model does
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=8, small_size=8, small_until=0.25), hooks=[seen])
    side = seen.sizes[-1]
    assert side[0] > 8 and seen.sizes == [(8, 8)] * 2 + [side] * 6


def test_off_by_default(tiny_npz, tmp_path):
    seen = Recorder()
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=3), hooks=[seen])
    assert len(set(seen.sizes)) == 1 and seen.sizes[0][0] > 8


def test_bad_sizes_are_refused(tiny_npz, tmp_path):
    with pytest.raises(ValueError, match="small_size must be 0 .off. or at least 8"):
        make_config("paper-cifar", small_size=4, iterations=1)
    with pytest.raises(ValueError, match="small_until must be a fraction"):
        make_config("paper-cifar", small_size=16, small_until=0, iterations=1)
    with pytest.raises(ValueError, match="--small-size 64: give fewer pixels than the training images'"):
        fit(tiny_config(tiny_npz, tmp_path / "run", small_size=64))
