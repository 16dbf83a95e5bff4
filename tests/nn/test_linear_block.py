"""The fully connected residual block against the course notes' formulas, computed by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnetlab
from resnetlab.nn import BatchNorm1d, LinearBlock, get_norm


def _bn_by_hand(z, bn):
    """Algorithm 1 in training mode: biased batch statistics, then γ·x̂ + β."""
    mean, var = z.mean(0), z.var(0, unbiased=False)
    return bn.weight * (z - mean) / torch.sqrt(var + bn.eps) + bn.bias


def _by_hand(block, a, norm):
    """z[l+1] = W[l+1]·a[l] + b[l+1], a[l+1] = g(z[l+1]), z[l+2] = W[l+2]·a[l+1] + b[l+2],
    a[l+2] = g(z[l+2] + W_s·a[l]), with BN after each z when ``norm``."""
    W1, W2 = block.fc1.weight, block.fc2.weight
    z1 = a @ W1.T + (0 if norm else block.fc1.bias)
    a1 = F.relu(_bn_by_hand(z1, block.bn1) if norm else z1)
    z2 = a1 @ W2.T + (0 if norm else block.fc2.bias)
    z2 = _bn_by_hand(z2, block.bn2) if norm else z2
    if block.downsample is None:
        short = a
    elif isinstance(block.downsample, resnetlab.nn.LinearShortcutA):
        short = torch.cat([a, torch.zeros(len(a), W1.shape[0] - a.shape[1])], 1)  # zero-padding
    else:
        proj, proj_bn = block.downsample[0], block.downsample[1]
        zs = a @ proj.weight.T + (0 if norm else proj.bias)
        short = _bn_by_hand(zs, proj_bn) if norm else zs
    return F.relu(z2 + short)


@pytest.mark.parametrize("norm", [None, "none"])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
@pytest.mark.parametrize("sizes", [(6, 6), (5, 9)])
def test_block_is_the_notes_formula(norm, shortcut, sizes):
    torch.manual_seed(0)
    block = LinearBlock(*sizes, shortcut=shortcut, norm_layer=norm).train()
    for m in block.modules():  # non-trivial γ and β, so a wrong formula cannot hide behind γ=1, β=0
        if isinstance(m, BatchNorm1d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    a = torch.randn(16, sizes[0])
    expected_projection = shortcut == "C" or (shortcut == "B" and sizes[0] != sizes[1])
    assert (block.downsample is not None and not isinstance(block.downsample, resnetlab.nn.LinearShortcutA)) == (
        expected_projection
    )
    assert (block.fc1.bias is None) == (norm is None)  # β replaces b when BN follows
    torch.testing.assert_close(block(a), _by_hand(block, a, norm is None))


def test_plain_twin_has_no_shortcut():
    block = LinearBlock(4, 4, residual=False, norm_layer="none")
    with torch.no_grad():
        block.fc2.weight.zero_()
        block.fc2.bias.zero_()
    assert block.downsample is None and torch.equal(block(torch.rand(3, 4)), torch.zeros(3, 4))


@pytest.mark.parametrize("norm", ["none", None])
def test_zero_second_layer_gives_the_identity(norm):
    """The notes' argument: with W[l+2] = 0 and b[l+2] = 0 (or γ = β = 0 on bn2), a[l+2] = g(a[l]) = a[l]
    for a non-negative a[l] and ReLU, so an added block can leave the network unchanged."""
    torch.manual_seed(1)
    block = LinearBlock(8, 8, norm_layer=norm).train()
    with torch.no_grad():
        block.fc2.weight.zero_()
        if norm == "none":
            block.fc2.bias.zero_()
        else:
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
    a = torch.rand(10, 8)  # a[l] >= 0, the output of a ReLU
    assert torch.equal(block(a), a)


def test_norm_seam_has_a_1d_form():
    assert get_norm(None, 1) is BatchNorm1d and get_norm("bn", 1) is BatchNorm1d
    assert get_norm("torch", 1) is nn.BatchNorm1d and get_norm("none", 1) is None
    assert isinstance(LinearBlock(3, 3, norm_layer="torch").bn1, nn.BatchNorm1d)
    assert isinstance(LinearBlock(3, 3, norm_layer=lambda n: nn.LayerNorm(n)).bn2, nn.LayerNorm)
    with pytest.raises(ValueError, match="cannot reduce"):
        LinearBlock(6, 4, shortcut="A")
    with pytest.raises(ValueError, match="unknown shortcut"):
        LinearBlock(6, 4, shortcut="D")


def test_folded_mlp_equals_unfolded():
    torch.manual_seed(0)
    model = resnetlab.create_model("mlp_resnet8", width=16, input_size=(1, 6, 6), shortcut="C")
    model.train()
    for _ in range(3):  # population statistics that are not the initial 0 and 1
        model(torch.randn(32, 1, 6, 6))
    model.eval()
    folded = resnetlab.fold_batchnorm(model)
    assert not any(isinstance(m, (BatchNorm1d, nn.BatchNorm1d)) for m in folded.modules())
    x = torch.randn(5, 1, 6, 6)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
