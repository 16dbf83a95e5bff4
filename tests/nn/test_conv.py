"""The matmul weight gradient against torch's own convolution backward (an independent reference)."""

import copy

import pytest
import torch
from torch import nn

from resnetlab.nn.conv import MatmulGradConv2d, convert_matmul_weight_grad, im2col_weight_grad


@pytest.mark.parametrize("channels_last", [False, True])
def test_im2col_weight_grad_matches_convolution_backward(channels_last):
    g = torch.Generator().manual_seed(0)
    x, grad, w = torch.randn(4, 5, 3, 4, generator=g), torch.randn(4, 7, 3, 4, generator=g), torch.randn(7, 5, 3, 3)
    if channels_last:
        x, grad = x.to(memory_format=torch.channels_last), grad.to(memory_format=torch.channels_last)
    ref = torch.ops.aten.convolution_backward(grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                              [False, True, False])[1]  # fmt: skip
    torch.testing.assert_close(im2col_weight_grad(grad, x), ref, rtol=1e-5, atol=1e-5)


def _pair(channels=128):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU(),
                        nn.Conv2d(channels, channels, 3, padding=1, bias=False))  # fmt: skip
    fast = copy.deepcopy(ref)
    assert convert_matmul_weight_grad(fast) == 2
    assert all(type(m) is MatmulGradConv2d for m in (fast[0], fast[2]))
    assert fast.state_dict().keys() == ref.state_dict().keys()
    return ref, fast


@pytest.mark.parametrize("size, autocast", [(3, False), (3, True), (7, True), (8, False)])
def test_matmul_grad_conv_trains_as_conv2d(size, autocast):
    """Same output and gradients as nn.Conv2d, fp32 and under bf16 autocast (the trainer's AMX path), on feature
    maps small enough for the matmul (3×3, 7×7) and one above the limit (8×8: nn.Conv2d's own path)."""
    ref, fast = _pair()
    x = torch.randn(6, 128, size, size).to(memory_format=torch.channels_last)
    outs, grads = [], []
    for model in (ref, fast):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(xi)
        out.float().square().mean().backward()
        outs.append(out.float())
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
    tol = {"rtol": 2e-2, "atol": 2e-2} if autocast else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(outs[1], outs[0], **tol)
    for a, b in zip(grads[1], grads[0]):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, **tol)


def test_matmul_grad_conv_compiles():
    """torch.compile traces the autograd.Function (forward and backward) as the compiled training step does
    (aot_eager: dynamo and AOTAutograd without inductor's C++ compile, seconds rather than a minute)."""
    ref, fast = _pair()
    x = torch.randn(4, 128, 3, 3).to(memory_format=torch.channels_last)
    torch.compile(fast, dynamic=False, fullgraph=True, backend="aot_eager")(x).square().mean().backward()
    ref(x).square().mean().backward()
    for a, b in zip(fast.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_convert_keeps_other_layers():
    """Strided, biased, 1×1 and narrow convolutions stay nn.Conv2d."""
    model = nn.Sequential(nn.Conv2d(128, 128, 3, stride=2, padding=1, bias=False), nn.Conv2d(128, 128, 3, padding=1),
                          nn.Conv2d(128, 128, 1, bias=False), nn.Conv2d(64, 64, 3, padding=1, bias=False),
                          nn.Conv2d(128, 256, 3, padding=1, bias=False))  # fmt: skip
    assert convert_matmul_weight_grad(model) == 1
    assert [type(m).__name__ for m in model] == ["Conv2d"] * 4 + ["MatmulGradConv2d"]


def test_trainer_uses_it_on_amx_bf16_only(monkeypatch):
    from resnetlab import hardware

    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "has_amx", lambda: True)
    assert hardware.matmul_weight_grad("bf16", cpu) and not hardware.matmul_weight_grad("fp32", cpu)
    monkeypatch.setattr(hardware, "has_amx", lambda: False)
    assert not hardware.matmul_weight_grad("bf16", cpu)
