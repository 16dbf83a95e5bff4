"""Algorithm 2: recalibrated population statistics against NumPy, folding against the unfolded model."""

import numpy as np
import pytest
import torch
from torch import nn

import resnetlab
from resnetlab.nn import BatchNorm2d, fold_batchnorm, recalibrate_batchnorm


class ConvBNNet(nn.Module):
    def __init__(self, norm=BatchNorm2d):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), norm(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 3, padding=1, bias=True), norm(5)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.bn2(self.conv2(self.drop(torch.relu(self.bn1(self.conv1(x))))))


def _numpy_population_stats(model, batches):
    """Algorithm 2, lines 8–10, independently: per-batch μ_B and σ²_B of the first BN's input,
    E[x] = mean of μ_B, Var[x] = m/(m−1)·mean of σ²_B, computed in NumPy."""
    mus, vars_ = [], []
    for b in batches:
        z = model.conv1(b).detach().numpy().astype(np.float64)  # the first BN's input
        z = np.moveaxis(z, 1, 0).reshape(z.shape[1], -1)
        mus.append(z.mean(1))
        vars_.append(z.var(1))
    m = z.shape[1]
    return np.mean(mus, 0), m / (m - 1) * np.mean(vars_, 0)


@pytest.mark.parametrize("norm", [BatchNorm2d, nn.BatchNorm2d])
def test_recalibrate_matches_numpy_average_of_batch_statistics(norm):
    torch.manual_seed(0)
    model = ConvBNNet(norm)
    batches = [torch.randn(8, 3, 6, 6) * (i + 1) + i for i in range(4)]
    model.bn1.running_mean.fill_(123.0)  # stale statistics must be reset, not averaged in
    model.eval()
    out = recalibrate_batchnorm(model, iter(batches))
    assert out is model and not model.training and not model.bn1.training
    mean, var = _numpy_population_stats(model, batches)
    np.testing.assert_allclose(model.bn1.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bn1.running_var.numpy(), var, rtol=1e-5, atol=1e-6)
    assert model.bn1.momentum == 0.1 and int(model.bn1.num_batches_tracked) == 4


def test_recalibrate_accepts_pairs_caps_batches_and_keeps_modes():
    torch.manual_seed(1)
    model = ConvBNNet().train()
    batches = [(torch.randn(4, 3, 5, 5), torch.zeros(4)) for _ in range(5)]
    recalibrate_batchnorm(model, batches, num_batches=2)
    assert model.training and model.drop.training and int(model.bn1.num_batches_tracked) == 2
    mean, _ = _numpy_population_stats(model, [b[0] for b in batches[:2]])
    np.testing.assert_allclose(model.bn1.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(model, [])


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50"])
def test_fold_matches_unfolded_model(name):
    torch.manual_seed(2)
    model = resnetlab.create_model(name)
    size = model.default_input_size[1] // 4 if name.startswith("resnet5") else model.default_input_size[1]
    for m in model.modules():  # non-trivial statistics and affine parameters
        if isinstance(m, BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, 0, 0.2)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_fold_leaves_bn_not_after_conv():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), BatchNorm2d(4))
    folded = fold_batchnorm(model)
    assert isinstance(folded[2], BatchNorm2d)
