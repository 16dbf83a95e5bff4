"""--small-size: progressive resizing trains on downscaled batches for the first --small-until of the
iterations and on full-size ones after, and a resumed run switches at the same iteration."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tests.train.test_fit import interrupt, tiny_config, without_time

from resnetlab.train import fit, make_config
from resnetlab.train import loop as loop_module


def _record_sizes(monkeypatch) -> list:
    """The (H, W) of every batch the training steps feed the model."""
    sizes: list = []
    real = loop_module.training_forward

    def recording(model, config):
        forward = real(model, config)
        return lambda x: (sizes.append(tuple(x.shape[-2:])), forward(x))[1]

    monkeypatch.setattr(loop_module, "training_forward", recording)
    return sizes


def test_small_batches_first_then_full_size(tiny_npz, tmp_path, monkeypatch):
    sizes = _record_sizes(monkeypatch)
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=8, small_size=8, small_until=0.25))
    side = sizes[-1]
    assert side[0] > 8 and sizes == [(8, 8)] * 2 + [side] * 6


def test_off_by_default(tiny_npz, tmp_path, monkeypatch):
    sizes = _record_sizes(monkeypatch)
    fit(tiny_config(tiny_npz, tmp_path / "run", iterations=3))
    assert len(set(sizes)) == 1 and sizes[0][0] > 8


def test_resumed_run_switches_where_an_uninterrupted_one_does(tiny_npz, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    fit(tiny_config(tiny_npz, reference, small_size=8))
    out = tmp_path / "interrupted"
    # Ctrl-C during step 6 of 24: the resumed run itself makes the switch to full size at step 12.
    interrupt(tiny_config(tiny_npz, out, small_size=8), monkeypatch, checks=5)
    fit(tiny_config(tiny_npz, out, small_size=8), resume=True)
    ref, got = (load_file(p / "checkpoints" / "last" / "model.safetensors") for p in (reference, out))
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    metrics = lambda p: without_time(json.loads((p / "metrics.json").read_text()))  # noqa: E731
    assert metrics(out) == metrics(reference)


def test_bad_sizes_are_refused(tiny_npz, tmp_path):
    with pytest.raises(ValueError, match="small_size must be 0 .off. or at least 8"):
        make_config("paper-cifar", small_size=4, iterations=1)
    with pytest.raises(ValueError, match="small_until must be a fraction"):
        make_config("paper-cifar", small_size=16, small_until=0, iterations=1)
    with pytest.raises(ValueError, match="--small-size 64: give fewer pixels than the training images'"):
        fit(tiny_config(tiny_npz, tmp_path / "run", small_size=64))
