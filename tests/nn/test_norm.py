"""BatchNorm against the paper's formulas (NumPy), autograd (gradcheck) and torch.nn.BatchNorm."""

import numpy as np
import pytest
import torch

from resnetlab.errors import UsageError
from resnetlab.nn import BatchNorm1d, BatchNorm2d, BatchNormFunction

SHAPES = [(4, 3, 5, 5), (8, 16, 4, 4), (2, 5, 7, 3), (16, 4, 1, 1)]


def paper_batchnorm_numpy(x, gamma, beta, dy, eps):
    """Algorithm 1 and the backward formulas of Sec. 3, written out per channel in NumPy, each
    term kept (including ∂ℓ/∂σ²_B · Σ −2(x_i − μ_B)/m, which is zero only analytically)."""
    n, c = x.shape[:2]
    xs = np.moveaxis(x, 1, 0).reshape(c, -1)  # channel-major: (C, m)
    dys = np.moveaxis(dy, 1, 0).reshape(c, -1)
    m = xs.shape[1]
    y, dx = np.empty_like(xs), np.empty_like(xs)
    dgamma, dbeta, mus, vars_ = (np.empty(c) for _ in range(4))
    for k in range(c):
        xi, dyi = xs[k], dys[k]
        mu = xi.sum() / m
        var = ((xi - mu) ** 2).sum() / m
        xhat = (xi - mu) / np.sqrt(var + eps)
        y[k] = gamma[k] * xhat + beta[k]
        dxhat = dyi * gamma[k]
        dvar = (dxhat * (xi - mu)).sum() * -0.5 * (var + eps) ** -1.5
        dmu = (dxhat * -1 / np.sqrt(var + eps)).sum() + dvar * (-2 * (xi - mu)).sum() / m
        dx[k] = dxhat / np.sqrt(var + eps) + dvar * 2 * (xi - mu) / m + dmu / m
        dgamma[k], dbeta[k] = (dyi * xhat).sum(), dyi.sum()
        mus[k], vars_[k] = mu, var
    back = lambda t: np.moveaxis(t.reshape((c, n) + x.shape[2:]), 0, 1)  # noqa: E731
    return back(y), back(dx), dgamma, dbeta, mus, vars_


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_paper_formulas(shape):
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 2, shape[1]), rng.standard_normal(shape[1])
    y_ref, dx_ref, dg_ref, db_ref, mu_ref, var_ref = paper_batchnorm_numpy(x, gamma, beta, dy, 1e-5)

    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    y, mu, var = BatchNormFunction.apply(xt, gt, bt, 1e-5)
    y.backward(torch.tensor(dy))
    for got, ref in [(y, y_ref), (xt.grad, dx_ref), (gt.grad, dg_ref), (bt.grad, db_ref), (mu, mu_ref), (var, var_ref)]:
        np.testing.assert_allclose(got.detach().numpy(), ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (5, 2, 2, 4), (6, 3)])
def test_gradcheck_float64(shape):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(shape[1], dtype=torch.float64, requires_grad=True)
    beta = torch.randn(shape[1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: BatchNormFunction.apply(*a, 1e-5)[0], (x, gamma, beta))


def _pair(cls, ref_cls, channels, **kwargs):
    ours, ref = cls(channels, **kwargs).double(), ref_cls(channels, **kwargs).double()
    if ours.affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch_batchnorm2d(shape, momentum, affine):
    torch.manual_seed(1)
    ours, ref = _pair(BatchNorm2d, torch.nn.BatchNorm2d, shape[1], momentum=momentum, affine=affine)
    close = dict(rtol=1e-5, atol=1e-6)
    for step in range(3):
        x = (torch.randn(shape, dtype=torch.float64) * (step + 1) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        dy = torch.randn(shape, dtype=torch.float64)
        y, y_ref = ours(x), ref(x_ref)
        y.backward(dy)
        y_ref.backward(dy)
        torch.testing.assert_close(y, y_ref, **close)
        torch.testing.assert_close(x.grad, x_ref.grad, **close)
        if affine:
            torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **close)
            torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **close)
        torch.testing.assert_close(ours.running_mean, ref.running_mean, **close)
        torch.testing.assert_close(ours.running_var, ref.running_var, **close)
        assert ours.num_batches_tracked == ref.num_batches_tracked
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), **close)


@pytest.mark.parametrize("shape", [(8, 5), (4, 6, 7)])
def test_batchnorm1d_matches_torch(shape):
    torch.manual_seed(2)
    ours, ref = _pair(BatchNorm1d, torch.nn.BatchNorm1d, shape[1])
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ours(x).sum().backward()
    (ref(x_ref)).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_without_running_stats_uses_batch_statistics_in_eval():
    torch.manual_seed(3)
    ours, ref = _pair(BatchNorm2d, torch.nn.BatchNorm2d, 4, track_running_stats=False)
    ours.eval(), ref.eval()
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    assert ours.running_mean is None and "running_mean" not in ours.state_dict()


def test_channels_last_matches_contiguous():
    torch.manual_seed(4)
    bn = BatchNorm2d(8)
    x = torch.randn(4, 8, 6, 6)
    dy = torch.randn_like(x)
    x1, x2 = x.clone().requires_grad_(), x.to(memory_format=torch.channels_last).requires_grad_()
    bn(x1).backward(dy)
    y2 = bn(x2)
    y2.backward(dy.to(memory_format=torch.channels_last))
    assert y2.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_running_variance_is_unbiased():
    """Var[x] uses m/(m−1)·σ²_B (Algorithm 2): with momentum 1 it is exactly the unbiased batch variance."""
    x = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    bn = BatchNorm2d(2, momentum=1.0).double()
    bn(x)
    torch.testing.assert_close(bn.running_var, x.transpose(0, 1).reshape(2, -1).var(dim=1, unbiased=True))
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2, 3)))


def test_momentum_none_is_cumulative_average():
    torch.manual_seed(5)
    bn = BatchNorm2d(3, momentum=None).double()
    batches = [torch.randn(4, 3, 2, 2, dtype=torch.float64) * (i + 1) for i in range(5)]
    for b in batches:
        bn(b)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    torch.testing.assert_close(bn.running_mean, means.mean(0))


def test_state_dict_interchanges_with_torch():
    ours, theirs = BatchNorm2d(7), torch.nn.BatchNorm2d(7)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs(torch.randn(4, 7, 3, 3))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(ours.running_var, theirs.running_var)


def test_one_value_per_channel_in_training_is_a_clear_error():
    bn = BatchNorm2d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(1, 3, 1, 1))
    bn.eval()
    assert bn(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)


def test_wrong_input_is_a_clear_error():
    with pytest.raises(ValueError, match="got 4 channels"):
        BatchNorm2d(3)(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match="expects a 4D input"):
        BatchNorm2d(3)(torch.randn(2, 3))


def test_eval_mode_scripts_and_traces():
    bn = BatchNorm2d(3)
    bn(torch.randn(4, 3, 5, 5) + 2)
    bn.eval()
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(torch.jit.script(bn)(x), bn(x))
    torch.testing.assert_close(torch.jit.trace(bn, x)(x), bn(x))


@pytest.mark.slow
def test_compiled_kernel_matches_eager_formulas():
    """The compiled kernel is the same functions fused: it must agree with the eager reference."""
    from resnetlab.nn import set_batchnorm_kernel

    torch.manual_seed(6)
    x = torch.randn(8, 6, 5, 5) * 2 + 3
    dy = torch.randn_like(x)
    grads = []
    for kind in ("eager", "compiled"):
        set_batchnorm_kernel(kind)
        try:
            bn = BatchNorm2d(6)
            xi = x.clone().requires_grad_()
            y = bn(xi)
            y.backward(dy)
            grads.append((y.detach(), xi.grad, bn.weight.grad, bn.running_var.clone()))
        finally:
            set_batchnorm_kernel("eager")
    for eager, compiled in zip(*grads):
        torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="eager"):
        set_batchnorm_kernel("fast")


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_activations_match_a_float64_reference(channels_last):
    """bf16 inputs are normalized with float32 statistics: forward and backward equal a float64
    computation of the same bf16 values within bf16's tolerance, NCHW and channels-last."""
    from resnetlab.nn import BatchNorm2d

    torch.manual_seed(0)
    x = (3 + 2 * torch.randn(8, 4, 6, 6)).bfloat16()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(8, 4, 6, 6).bfloat16()
    bn = BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
        bn.bias.copy_(torch.tensor([-1.0, 0.0, 0.5, 1.0]))
    xb = x.clone().requires_grad_(True)
    y = bn(xb)
    (y.float() * upstream.float()).sum().backward()
    assert y.dtype == torch.bfloat16 and xb.grad.dtype == torch.bfloat16
    ref_bn = BatchNorm2d(4).double()
    ref_bn.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in bn.state_dict().items()})
    ref_bn.running_mean.zero_()
    ref_bn.running_var.fill_(1)
    x64 = x.double().requires_grad_(True)
    y64 = ref_bn(x64)
    (y64 * upstream.double()).sum().backward()
    torch.testing.assert_close(y.double(), y64.detach(), **_BF16)
    torch.testing.assert_close(xb.grad.double(), x64.grad, **_BF16)
    torch.testing.assert_close(bn.weight.grad.double(), ref_bn.weight.grad, rtol=1e-2, atol=1e-2)


_BF16 = {"rtol": 1.6e-2, "atol": 1e-5}  # torch.testing.assert_close's defaults for bfloat16


def _ghost_reference(x, weight, bias, g, eps=1e-5):
    """Ghost BN in float64 with autograd over plain ops: each group of ``g`` images normalized on its own."""
    out = []
    for part in x.split(g):
        mean = part.mean(dim=(0, 2, 3), keepdim=True)
        var = part.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        out.append((part - mean) / torch.sqrt(var + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1))
    return torch.cat(out)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_ghost_batch_norm_against_a_float64_reference_forward_backward_and_running_stats(layout):
    """Either memory format (the eager NCHW path's batched dot, channels-last's fused sums), kept by the output."""
    torch.manual_seed(0)
    x = (torch.randn(12, 3, 5, 4, dtype=torch.float64) * 2 + 0.5).contiguous(memory_format=layout)
    bn = BatchNorm2d(3, ghost_batch_size=4, momentum=None).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w, b = bn.weight.detach().clone().requires_grad_(), bn.bias.detach().clone().requires_grad_()
    grad = torch.randn_like(x)
    y = bn(xa)
    ref = _ghost_reference(xb, w, b, 4)
    assert torch.allclose(y, ref, atol=1e-10) and y.is_contiguous(memory_format=layout)
    (y * grad).sum().backward()
    (ref * grad).sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-10)
    assert torch.allclose(bn.weight.grad, w.grad, atol=1e-10) and torch.allclose(bn.bias.grad, b.grad, atol=1e-10)
    # running statistics against NumPy: the groups' means averaged, and their unbiased variances averaged
    groups = x.numpy().reshape(3, 4, 3, 5, 4)
    mean = groups.mean(axis=(1, 3, 4)).mean(0)
    var = groups.var(axis=(1, 3, 4), ddof=1).mean(0)
    assert np.allclose(bn.running_mean.numpy(), mean) and np.allclose(bn.running_var.numpy(), var)
    bn.eval()  # inference uses the running estimates (Algorithm 2), not groups
    expected = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + 1e-5)
    assert torch.allclose(bn(x), expected * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1), atol=1e-10)
    with pytest.raises(UsageError, match="does not divide into groups of 4"):
        BatchNorm2d(3, ghost_batch_size=4).train()(torch.randn(10, 3, 2, 2))


def test_ghost_batch_norm_1d_against_a_float64_reference():
    torch.manual_seed(2)
    x = torch.randn(12, 5, dtype=torch.float64) * 3 - 1
    bn = BatchNorm1d(5, ghost_batch_size=6).double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn_like(x)
    (bn(xa) * grad).sum().backward()
    parts = [(p - p.mean(0)) / torch.sqrt(p.var(0, unbiased=False) + 1e-5) for p in xb.split(6)]
    ref = torch.cat(parts) * bn.weight.detach() + bn.bias.detach()
    (ref * grad).sum().backward()
    assert torch.allclose(bn(x.clone()), ref, atol=1e-10) and torch.allclose(xa.grad, xb.grad, atol=1e-10)
    _, mean, var = BatchNormFunction.apply(x.view(2, 6, 5), bn.weight, bn.bias, 1e-5, True)  # per group
    assert mean.shape == var.shape == (2, 5) and torch.allclose(mean, x.view(2, 6, 5).mean(1))


def test_frozen_weight_against_a_float64_reference_forward_and_backward():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    bn = BatchNorm2d(3, freeze_weight=True, ghost_batch_size=4).double()
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([0.3, -0.1, 0.2]))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    b = bn.bias.detach().clone().requires_grad_()
    grad = torch.randn_like(x)
    (bn(xa) * grad).sum().backward()
    ref = _ghost_reference(xb, torch.ones(3, dtype=torch.float64), b, 4)  # γ = 1, not a parameter
    (ref * grad).sum().backward()
    assert torch.allclose(bn(x.clone()), ref, atol=1e-10) and torch.allclose(xa.grad, xb.grad, atol=1e-10)
    assert torch.allclose(bn.bias.grad, b.grad, atol=1e-10) and bn.weight.grad is None


def test_frozen_weight_stays_one_with_the_same_state_dict():
    bn = BatchNorm2d(4, freeze_weight=True)
    assert not bn.weight.requires_grad and bn.bias.requires_grad
    assert list(bn.state_dict()) == list(BatchNorm2d(4).state_dict())
    opt = torch.optim.SGD([p for p in bn.parameters() if p.requires_grad], lr=1.0, weight_decay=0.1)
    bn(torch.randn(8, 4, 3, 3)).square().sum().backward()
    opt.step()
    assert torch.equal(bn.weight, torch.ones(4)) and bn.weight.grad is None
    from resnetlab.nn import fold_batchnorm

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), bn).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(fold_batchnorm(model)(x), model(x), atol=1e-5)


@pytest.mark.parametrize("mode", ["bf16", "compile"])
def test_ghost_and_frozen_batch_norm_under_bf16_and_compile(mode):
    torch.manual_seed(0)
    bn = BatchNorm2d(8, ghost_batch_size=4, freeze_weight=True)
    x = torch.randn(16, 8, 6, 6)
    reference = _ghost_reference(x.double(), bn.weight.double(), bn.bias.double(), 4).float()
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = bn(x.bfloat16())
        assert y.dtype == torch.bfloat16 and torch.allclose(y.float(), reference, atol=0.05)
    else:
        y = torch.compile(bn)(x.requires_grad_())
        assert torch.allclose(y, reference, atol=1e-4)
        y.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def test_ghost_batch_norm_is_refused_where_statistics_are_synchronized():
    from resnetlab.nn import convert_sync_batchnorm

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), BatchNorm2d(4, ghost_batch_size=8))
    with pytest.raises(UsageError, match="--no-sync-bn"):
        convert_sync_batchnorm(model)
