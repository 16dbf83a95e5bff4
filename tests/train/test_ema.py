"""--ema: the average is the model a run evaluates and saves, computed as the formula says from the
trained weights of every step (a resumed run averages exactly as an uninterrupted one: test_hooks.py)."""

import pytest
import torch
from safetensors.torch import load_file
from tests.hooks import Recorder
from tests.train.test_fit import final_weights, tiny_config

from resnetlab.train import fit, load_checkpoint, make_config
from resnetlab.train.ema import WeightAverage


def test_average_follows_the_formula_from_every_steps_weights(tiny_npz, tmp_path):
    """save_every=1 keeps the trained weights of every step (``raw.*``); the average is recomputed
    from them by hand: θ̄_t = d_t·θ̄_{t-1} + (1 − d_t)·θ_t, d_t = min(d, (1 + t)/(10 + t)), θ̄ from θ_0."""
    out, steps, decay = tmp_path / "run", 6, 0.5
    seen = Recorder()  # its on_start keeps the initial weights
    fit(tiny_config(tiny_npz, out, iterations=steps, save_every=1, keep_checkpoints=steps, ema=decay), hooks=[seen])
    expected = {k: v.clone().double() for k, v in seen.initial.items() if v.is_floating_point()}
    for t in range(steps):
        raw = load_file(out / "checkpoints" / str(t + 1) / "state.safetensors")
        d = min(decay, (1 + t) / (10 + t))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * raw[f"raw.{k}"].double()
    saved = final_weights(out)
    for k, v in expected.items():
        torch.testing.assert_close(saved[k].double(), v, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(saved["fc.weight"], raw["raw.fc.weight"])  # the average, not the last weights
    model, _ = load_checkpoint(out)  # what eval, predict and export load: the average
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)


def _data(npz):
    from resnetlab.data import load_data

    return load_data(f"npz:{npz}")


def test_the_average_is_what_is_evaluated(tiny_npz, tmp_path):
    out = tmp_path / "run"
    record = fit(tiny_config(tiny_npz, out, iterations=10, ema=0.9))
    model, meta = load_checkpoint(out)
    data = _data(tiny_npz)
    mean, std = (torch.tensor(meta["normalization"][k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        pred = model((data.x_test.float() / 255 - mean) / std).argmax(1)
    assert record["test_error"] == pytest.approx((pred != data.y_test).float().mean().item())


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="ema must be a decay in"):
        make_config("paper-cifar", ema=1.0, iterations=1)
    with pytest.raises(ValueError, match="--ema 1.5: give a decay in"):
        WeightAverage(torch.nn.Linear(2, 2), 1.5)


def test_the_average_only_observes(tiny_npz, tmp_path):
    """The trained weights kept beside the average are those of the same run without averaging, bit for bit:
    the no-EMA ablation of a run is its own trained weights (benchmarks/ema_twin.py)."""
    fit(tiny_config(tiny_npz, tmp_path / "ema", iterations=10, ema=0.9))
    fit(tiny_config(tiny_npz, tmp_path / "plain", iterations=10))
    raw = load_file(tmp_path / "ema" / "checkpoints" / "last" / "state.safetensors")
    plain = final_weights(tmp_path / "plain")
    assert all(torch.equal(raw[f"raw.{k}"], v) for k, v in plain.items()) and len(plain) > 10
