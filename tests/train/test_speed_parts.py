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
    return make_config("cosine", model="resnet9", model_args={"width": 0.25}, data=f"npz:{data}", batch_size=32,
                       iterations=50, warmup_iterations=5, lr=0.05, eval_every=0, threads=1, out=str(out),
                       **{**BN, **kw})  # fmt: skip


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


def test_fifty_iterations_learn_and_resume_bit_for_bit(tiny_npz, tmp_path):
    seen = Losses()
    fit(config(tiny_npz, tmp_path / "whole"), hooks=[seen])
    assert len(seen.losses) == 50 and seen.losses[-1] < 0.5 * seen.losses[0], seen.losses
    with pytest.raises(TrainingInterrupted):
        fit(config(tiny_npz, tmp_path / "cut"), hooks=[InterruptAt(24)])
    fit(config(tiny_npz, tmp_path / "cut"), resume=True)
    whole, cut = (load_file(tmp_path / r / "checkpoints" / "last" / "state.safetensors") for r in ("whole", "cut"))
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole if k != "rng.torch")
