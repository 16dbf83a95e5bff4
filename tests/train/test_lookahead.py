"""--lookahead K: the slow weights follow airbench's ramped formula, the trained weights return to them every K
steps, the slow weights are what a run saves, and an interrupted run resumes bit for bit."""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from tests.hooks import InterruptAt, Recorder
from tests.train.test_fit import tiny_config
from torch import nn

from resnetlab.train import Step, TrainingInterrupted, fit, make_config
from resnetlab.train.lookahead import Lookahead


def test_slow_weights_follow_the_ramped_formula():
    """Driven by hand: each 'step' moves the weights by a known random amount; every k-th step t of T,
    φ ← κ_t·φ + (1 − κ_t)·θ with κ_t = 0.95^k·(t/T)³, then θ ← φ; BN's integer counter is copied, not averaged."""
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    session = SimpleNamespace(model=model, total=8, evaluated=model)
    hook = Lookahead(2)
    hook.on_start(session)
    assert session.evaluated is hook.slow and hook.slow is not model
    theta = model[0].weight.detach().double().clone()
    phi = theta.clone()
    for t in range(1, 9):
        delta = torch.randn(4, 3, generator=gen)
        with torch.no_grad():
            model[0].weight.add_(delta)
            model[1].num_batches_tracked += 1
        theta = theta + delta.double()
        hook.after_step(None, Step(iteration=t, loss=0.0, error=0.0, lr=0.1))
        if t % 2 == 0:
            kappa = 0.95**2 * (t / 8) ** 3
            phi = kappa * phi + (1 - kappa) * theta
            theta = phi.clone()
        torch.testing.assert_close(
            model[0].weight.double(), theta, rtol=1e-5, atol=1e-6, msg=f"trained weights after step {t}"
        )
        torch.testing.assert_close(
            hook.slow[0].weight.double(), phi, rtol=1e-5, atol=1e-6, msg=f"slow weights after step {t}"
        )
    assert int(hook.slow[1].num_batches_tracked) == 8


def test_a_run_returns_to_the_slow_weights_and_saves_them(tiny_npz, tmp_path):
    """save_every=1 keeps both after every step: the saved model (what eval, predict and export load) is the slow
    weights, the initial ones until the first return; the trained weights equal them right after each return."""
    out, seen = tmp_path / "run", Recorder()
    fit(tiny_config(tiny_npz, out, iterations=6, save_every=1, keep_checkpoints=6, lookahead=2), hooks=[seen])
    for t in range(1, 7):
        slow = load_file(out / "checkpoints" / str(t) / "model.safetensors")
        raw = load_file(out / "checkpoints" / str(t) / "state.safetensors")
        returned = all(torch.equal(raw[f"raw.{k}"], v) for k, v in slow.items())
        assert returned == (t % 2 == 0), f"step {t}"
        if t == 1:
            assert all(torch.equal(seen.initial[k], v) for k, v in slow.items())


def test_an_interrupted_run_resumes_bit_exactly(tiny_npz, tmp_path):
    kw = dict(iterations=9, lookahead=2)
    fit(tiny_config(tiny_npz, tmp_path / "reference", **kw))
    with pytest.raises(TrainingInterrupted):  # stops after step 5: between two returns
        fit(tiny_config(tiny_npz, tmp_path / "run", **kw), hooks=[InterruptAt(4)])
    fit(tiny_config(tiny_npz, tmp_path / "run", **kw), resume=True)
    for name in ("model.safetensors", "state.safetensors"):
        ref = load_file(tmp_path / "reference" / "checkpoints" / "last" / name)
        got = load_file(tmp_path / "run" / "checkpoints" / "last" / name)
        assert all(torch.equal(ref[k], got[k]) for k in ref if k != "rng.torch"), name


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lookahead must be an integer >= 0"):
        make_config("paper-cifar", lookahead=-1, iterations=1)
    with pytest.raises(ValueError, match="--ema and --lookahead each replace"):
        make_config("paper-cifar", lookahead=5, ema=0.99, iterations=1)
