"""Residual blocks: shortcut options A/B/C, plain twins, bottleneck stride placement, norm seam."""

import pytest
import torch
from torch import nn

from resnetlab.nn import BasicBlock, BatchNorm2d, Bottleneck, ShortcutA


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_option_a_is_parameter_free_subsample_and_zero_pad():
    block = BasicBlock(16, 32, stride=2, shortcut="A")
    assert isinstance(block.downsample, ShortcutA) and _n_params(block.downsample) == 0
    x = torch.randn(2, 16, 8, 8)
    s = block.downsample(x)
    assert s.shape == (2, 32, 4, 4)
    assert torch.equal(s[:, :16], x[:, :, ::2, ::2]) and not s[:, 16:].any()
    assert BasicBlock(16, 16, shortcut="A").downsample is None


def test_option_b_projects_only_when_shape_changes_and_c_always():
    assert BasicBlock(16, 16, shortcut="B").downsample is None
    proj = BasicBlock(16, 32, stride=2, shortcut="B").downsample
    assert isinstance(proj[0], nn.Conv2d) and proj[0].stride == (2, 2) and isinstance(proj[1], BatchNorm2d)
    assert isinstance(BasicBlock(16, 16, shortcut="C").downsample, nn.Sequential)


def test_plain_twin_has_no_shortcut():
    x = torch.randn(2, 16, 8, 8)
    plain = BasicBlock(16, 16, residual=False).eval()
    assert plain.downsample is None
    torch.testing.assert_close(plain(x), plain.act(plain.bn2(plain.conv2(plain.act(plain.bn1(plain.conv1(x)))))))
    res = BasicBlock(16, 16).eval()
    res.load_state_dict(plain.state_dict())
    torch.testing.assert_close(res(x), torch.relu(res.bn2(res.conv2(res.act(res.bn1(res.conv1(x))))) + x))


@pytest.mark.parametrize("stride_in_1x1,strides", [(False, ((1, 1), (2, 2))), (True, ((2, 2), (1, 1)))])
def test_bottleneck_stride_placement(stride_in_1x1, strides):
    b = Bottleneck(64, 32, stride=2, stride_in_1x1=stride_in_1x1)
    assert (b.conv1.stride, b.conv2.stride) == strides
    assert b(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)


def test_norm_seam():
    assert isinstance(BasicBlock(8, 8).bn1, BatchNorm2d)
    assert type(BasicBlock(8, 8, norm_layer="torch").bn1) is nn.BatchNorm2d
    off = BasicBlock(8, 8, norm_layer="none")
    assert isinstance(off.bn1, nn.Identity) and off.conv1.bias is not None
    assert BasicBlock(8, 8).conv1.bias is None  # β replaces the bias
    gn = BasicBlock(8, 8, norm_layer=lambda c: nn.GroupNorm(2, c))
    assert isinstance(gn.bn2, nn.GroupNorm)


@pytest.mark.parametrize(
    "activation,cls",
    [("relu", nn.ReLU), ("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh), ("gelu", nn.GELU), ("celu", nn.CELU)],
)
def test_activation(activation, cls):
    assert isinstance(BasicBlock(8, 8, activation=activation).act, cls)


def test_celu_takes_its_alpha():
    assert BasicBlock(8, 8, activation="celu:0.075").act.alpha == 0.075
    with pytest.raises(ValueError, match="celu:ALPHA"):
        BasicBlock(8, 8, activation="celu:x")


@pytest.mark.parametrize(
    "kwargs,match",
    [({"shortcut": "D"}, "shortcut"), ({"activation": "swish"}, "activation"), ({"norm_layer": "layer"}, "norm_layer")],
)
def test_bad_choices_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BasicBlock(8, 8, **kwargs)
