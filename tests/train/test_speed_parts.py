"""The speed records' parts in a run: ResNet-9 with ghost batch norm, frozen γ and batch norm's own
learning-rate scale and weight decay (the optimizer's parameter groups), learning and resuming bit for bit."""

import pytest
import torch
from safetensors.torch import load_file
from tests.hooks import InterruptAt

from resnetlab.errors import UsageError
from resnetlab.nn.norm import BatchNorm2d
from resnetlab.train import Hook, TrainingInterrupted, fit, make_config
from resnetlab.train.loop import sgd_step
from resnetlab.train.session import open_session

BN = dict(bn_ghost_size=8, bn_freeze_weight=True, bn_lr_scale=2.0, bn_weight_decay=0.0)


def config(data, out, **kw):
    base = dict(model="resnet9", model_args={"width": 0.25}, data=f"npz:{data}", batch_size=32, iterations=50,
                warmup_iterations=5, lr=0.05, eval_every=0, threads=1, out=str(out), **BN)  # fmt: skip
    return make_config("cosine", **{**base, **kw})


def test_batch_norm_trains_apart_in_its_own_parameter_group(tiny_npz, tmp_path):
    with open_session(config(tiny_npz, tmp_path / "run")) as s:
        bns = [m for m in s.model.modules() if isinstance(m, BatchNorm2d)]
        assert bns and all(m.ghost_batch_size == 8 and not m.weight.requires_grad for m in bns)
        weights, norms = s.optimizer.param_groups
        gammas, betas = {id(m.weight) for m in bns}, {id(m.bias) for m in bns}
        assert {id(p) for p in norms["params"]} == betas  # γ is frozen: in no group
        assert not gammas & {id(p) for g in s.optimizer.param_groups for p in g["params"]}
        assert norms["weight_decay"] == 0.0 and weights["weight_decay"] == s.config.weight_decay
        x, y = next(iter(s.loader.batches(0)))[1:]
        sgd_step(s, 0, s.normalize(x), y, lr=0.01)
        assert (weights["lr"], norms["lr"]) == (0.01, 0.02)
    with pytest.raises(UsageError, match="--norm bn"):
        make_config("cosine", epochs=1, norm="torch", bn_ghost_size=8)


class Losses(Hook):
    def __init__(self):
        self.losses = []

    def after_step(self, state, step):
        self.losses.append(step.loss)


@pytest.mark.slow
def test_fifty_iterations_learn_and_resume_bit_for_bit(tiny_npz, tmp_path):
    seen = Losses()
    fit(config(tiny_npz, tmp_path / "whole"), hooks=[seen])
    assert len(seen.losses) == 50 and seen.losses[-1] < 0.5 * seen.losses[0], seen.losses
    with pytest.raises(TrainingInterrupted):
        fit(config(tiny_npz, tmp_path / "cut"), hooks=[InterruptAt(24)])
    fit(config(tiny_npz, tmp_path / "cut"), resume=True)
    whole, cut = (load_file(tmp_path / r / "checkpoints" / "last" / "state.safetensors") for r in ("whole", "cut"))
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole if k != "rng.torch")


def test_patch_whitening_is_numpys_pca_and_whitens():
    """The filters against NumPy's eigendecomposition of the same patches; whitened patches have identity
    covariance (up to ε)."""
    import numpy as np

    from resnetlab.nn.whitening import PatchWhitening, fit_whitening

    gen = torch.Generator().manual_seed(0)
    base = torch.randn(64, 3, 12, 12, generator=gen)
    images = base + 0.8 * base.roll(1, dims=3) + 0.5 * base[:, :1]  # correlated neighbours and channels
    for k in (2, 3):
        layer = PatchWhitening(3, k, eps=1e-9)
        fit_whitening(layer, images)
        patches = np.lib.stride_tricks.sliding_window_view(images.double().numpy(), (k, k), axis=(2, 3))
        flat = patches.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)  # (channel, row, column) per patch
        values, vectors = np.linalg.eigh(np.cov(flat, rowvar=False))
        order = np.argsort(values)[::-1]
        expected = (vectors[:, order] / np.sqrt(values[order] + 1e-9)).T
        got = layer.weight.double().reshape(3 * k * k, -1).numpy()
        assert np.allclose(np.abs(got), np.abs(expected), atol=1e-4 * np.abs(expected).max())  # signs: a convention
        out = torch.nn.functional.conv2d(images.double(), layer.weight.double(), padding=0)
        whitened = out.permute(0, 2, 3, 1).reshape(-1, 3 * k * k).numpy()
        assert np.allclose(np.cov(whitened, rowvar=False), np.eye(3 * k * k), atol=1e-3)
        assert not layer.weight.requires_grad


def test_a_run_whitens_from_its_training_images_and_saves_the_filters(tiny_npz, tmp_path):
    from resnetlab.checkpoints import load_checkpoint
    from resnetlab.nn.whitening import PatchWhitening, fit_whitening
    from resnetlab.train.setup import whitening_images

    cfg = config(tiny_npz, tmp_path / "run", iterations=4, model_args={"width": 0.25, "whiten": 2})
    with open_session(cfg) as s:
        images = whitening_images(s.data, cfg.seed, (s.mean, s.std))
        assert len(images) == 320 and torch.equal(images, whitening_images(s.data, cfg.seed, (s.mean, s.std)))
        fitted = s.model.whiten.weight.clone()
    fit(cfg)
    model, _ = load_checkpoint(tmp_path / "run")  # rebuilt with whiten=2, the filters from the checkpoint
    layer = PatchWhitening(3, 2)
    fit_whitening(layer, images)  # recomputed independently of the run from the same images
    assert torch.equal(model.whiten.weight, fitted) and torch.allclose(fitted, layer.weight)


def test_signed_whitening_is_the_filters_and_their_negatives_then_the_activation():
    """airbench's layer: 2·C·k² channels, the fitted filters then their negatives, a trainable bias from 0 and
    GELU after it, against the same composition written out with F.conv2d."""
    from resnetlab.models import create_model
    from resnetlab.nn.whitening import PatchWhitening, fit_whitening

    images = torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    plain, signed = PatchWhitening(3, 2), PatchWhitening(3, 2, signed=True)
    fit_whitening(plain, images)
    fit_whitening(signed, images)
    assert signed.weight.shape == (24, 3, 2, 2) and torch.equal(signed.weight, torch.cat([plain.weight, -plain.weight]))
    assert signed.bias.requires_grad and not signed.weight.requires_grad and not signed.bias.any()
    model = create_model("resnet9", width=0.25, whiten=2, whiten_signed=True, activation="gelu")
    assert model.prep[0].in_channels == 24
    fit_whitening(model.whiten, images)
    with torch.no_grad():
        model.whiten.bias.normal_()
        expected = torch.nn.functional.gelu(torch.nn.functional.conv2d(images, model.whiten.weight, model.whiten.bias))
        assert torch.allclose(model.forward_stages(images)[0], model.prep(expected))
    with pytest.raises(UsageError, match="give whiten=2 or 3"):
        create_model("resnet9", whiten_signed=True)


def test_the_whitening_bias_trains_for_its_epochs_only(tiny_npz, tmp_path):
    """--whiten-bias-epochs 1: the bias moves in the first epoch (10 steps) and not after, where the other
    weights go on training; a model without a signed whitening layer is refused in one line."""
    out = tmp_path / "run"
    signed = {"width": 0.25, "whiten": 2, "whiten_signed": True}
    fit(config(tiny_npz, out, iterations=None, epochs=3, warmup_iterations=0, save_every=10, model_args=signed,
               whiten_bias_epochs=1))  # fmt: skip
    saved = [load_file(out / "checkpoints" / str(t) / "model.safetensors") for t in (10, 20, 30)]
    assert saved[0]["whiten.bias"].abs().min() > 0
    assert torch.equal(saved[0]["whiten.bias"], saved[1]["whiten.bias"])
    assert torch.equal(saved[1]["whiten.bias"], saved[2]["whiten.bias"])
    assert not torch.equal(saved[1]["prep.0.weight"], saved[2]["prep.0.weight"])
    with pytest.raises(UsageError, match="no signed whitening layer"):
        fit(config(tiny_npz, tmp_path / "plain", iterations=2, whiten_bias_epochs=1))
    with pytest.raises(UsageError, match="whiten_bias_epochs must be"):
        make_config("cosine", epochs=1, whiten_bias_epochs=-1)
