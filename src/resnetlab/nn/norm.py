"""Batch normalization from Ioffe & Szegedy (2015), "Batch Normalization: Accelerating Deep
Network Training by Reducing Internal Covariate Shift".

Training mode is Algorithm 1 per channel with the paper's explicit backward formulas (Sec. 3);
eval mode is Algorithm 2's inference transform y = γ/√(Var[x]+ε)·x + (β − γE[x]/√(Var[x]+ε)),
written with plain tensor ops so eval-mode models trace, script and export to ONNX.

Constructor, buffers and state_dict match ``torch.nn.BatchNorm1d/2d`` so weights interchange.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import UnknownArgument, UsageError


def _channel_view(t: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel vector (C,) to broadcast against an input of ``ndim`` dims (N, C, ...)."""
    return t.view((1, -1) + (1,) * (ndim - 2))


def _reduce_dims(ndim: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


def _group_view(t: Tensor, ndim: int) -> Tensor:
    """Reshape per-(group, channel) statistics (k, C) to broadcast against a grouped input (k, G, C, ...)."""
    return t.view((t.size(0), 1, t.size(1)) + (1,) * (ndim - 3))


def _stat_view(t: Tensor, x: Tensor, grouped: bool) -> Tensor:
    """Statistics (k, C) broadcast against x: grouped (k, G, C, ...), or (N, C, ...) with k = 1."""
    return _group_view(t, x.dim()) if grouped else _channel_view(t, x.dim())


def _group_dims(ndim: int) -> tuple[int, ...]:
    """The dims of a grouped input (k, G, C, ...) that statistics reduce: every one but the group and channel."""
    return (1,) + tuple(range(3, ndim))


def batchnorm_forward(x: Tensor, weight: Tensor, bias: Tensor, eps: float, grouped: bool = False):
    """Algorithm 1 over every dim but the channel of x (N, C, ...); or, ``grouped``, in each group of x (k, G, C, ...)
    on its own (ghost batch norm: k groups of G images, e.g. the view ``x.unflatten(0, (k, G))``, so nothing is
    copied). Returns (y, μ_B, σ²_B, 1/√(σ²_B + ε)), y in x's shape, the statistics (k, C) (k = 1 ungrouped)."""
    xg = x if grouped else x.unsqueeze(0)
    # μ_B = 1/m Σ x_i ;  σ²_B = 1/m Σ (x_i − μ_B)²   (biased: Algorithm 1)
    var, mean = torch.var_mean(xg, dim=_group_dims(xg.dim()), correction=0)
    invstd = torch.rsqrt(var + eps)
    # y_i = γ x̂_i + β with x̂_i = (x_i − μ_B)/√(σ²_B + ε), folded into one pass: y = a·x + b
    scale = weight * invstd
    shift = bias - mean * scale
    y = torch.addcmul(_stat_view(shift, x, grouped), x, _stat_view(scale, x, grouped))
    return y, mean, var, invstd


def batchnorm_backward(grad_y: Tensor, x: Tensor, weight: Tensor, mean: Tensor, invstd: Tensor, grouped: bool = False):
    """The paper's gradients (Sec. 3), vectorized per channel (per group and channel, ``grouped``, as in
    ``batchnorm_forward``); returns (∂ℓ/∂x, ∂ℓ/∂γ, ∂ℓ/∂β), γ's and β's summed over the groups that share them."""
    xg, dyg = (x, grad_y) if grouped else (x.unsqueeze(0), grad_y.unsqueeze(0))
    m = x.numel() // mean.numel()
    # The two per-channel sums every formula needs: Σ ∂ℓ/∂y_i and Σ ∂ℓ/∂y_i · (x_i − μ_B).
    sum_dy = dyg.sum(_group_dims(xg.dim()))
    sum_dy_xc = _centered_channel_dot(dyg, xg, mean, sum_dy)
    # ∂ℓ/∂x̂_i = ∂ℓ/∂y_i · γ
    # ∂ℓ/∂σ²_B = Σ ∂ℓ/∂x̂_i · (x_i − μ_B) · (−1/2)(σ²_B + ε)^(−3/2)
    grad_var = weight * sum_dy_xc * (-0.5) * invstd.pow(3)
    # ∂ℓ/∂μ_B = Σ ∂ℓ/∂x̂_i · (−1/√(σ²_B + ε)) + ∂ℓ/∂σ²_B · Σ −2(x_i − μ_B)/m.
    # The second sum is zero by the definition of μ_B, so only the first term remains.
    grad_mean = -weight * invstd * sum_dy
    # ∂ℓ/∂x_i = ∂ℓ/∂x̂_i/√(σ²_B + ε) + ∂ℓ/∂σ²_B · 2(x_i − μ_B)/m + ∂ℓ/∂μ_B/m,
    # per channel an affine map of (∂ℓ/∂y_i, x_i): a·∂ℓ/∂y_i + b·x_i + c.
    a = weight * invstd
    b = grad_var * (2.0 / m)
    c = grad_mean / m - b * mean
    grad_x = torch.addcmul(_stat_view(c, x, grouped), x, _stat_view(b, x, grouped))
    grad_x = grad_x.addcmul_(grad_y, _stat_view(a, x, grouped))
    # ∂ℓ/∂γ = Σ ∂ℓ/∂y_i · x̂_i ;  ∂ℓ/∂β = Σ ∂ℓ/∂y_i
    return grad_x, (sum_dy_xc * invstd).sum(0), sum_dy.sum(0)


def _centered_channel_dot(dy: Tensor, x: Tensor, mean: Tensor, sum_dy: Tensor) -> Tensor:
    """Σ over every dim of a grouped (k, G, C, ...) pair but the group and channel of dy·(x − μ_B).

    Eager NCHW: each (image, channel) row is a contiguous run, so a batched dot (bmm over N·C rows) reads
    both tensors once without materializing a product, and Σ dy·x − μ_B Σ dy recentres it (it loses
    precision only when |μ_B| ≫ σ_B). Compiled or channels-last: the centred product, fused.
    """
    if dy.is_contiguous() and x.is_contiguous() and not torch.compiler.is_compiling():
        rows = x.shape[0] * x.shape[1] * x.shape[2]
        dot = torch.bmm(dy.reshape(rows, 1, -1), x.reshape(rows, -1, 1)).view(x.shape[:3]).sum(1)
        return dot - mean * sum_dy
    return (dy * (x - _group_view(mean, x.dim()))).sum(_group_dims(x.dim()))


_KERNELS = {"eager": (batchnorm_forward, batchnorm_backward)}
_kernel = "eager"


def set_batchnorm_kernel(kind: str) -> None:
    """Choose how training-mode BN runs the formulas above: ``"eager"`` (default, no compiler
    needed) or ``"compiled"`` (the same functions fused by ``torch.compile`` into one pass per
    reduction; the first call of each shape compiles for a few seconds)."""
    global _kernel
    if kind not in ("eager", "compiled"):
        raise UsageError(f"unknown batch norm kernel {kind!r}; choose 'eager' or 'compiled'")
    if kind == "compiled" and kind not in _KERNELS:
        _KERNELS[kind] = (torch.compile(batchnorm_forward), torch.compile(batchnorm_backward))
    _kernel = kind


class BatchNormFunction(torch.autograd.Function):
    """Algorithm 1 forward and the paper's explicit backward, not autograd over the forward.

    ``apply(x, weight, bias, eps, grouped=False)`` returns (y, μ_B, σ²_B); the batch statistics are
    non-differentiable outputs used by the module to update the running estimates: (C,) for x (N, C, ...), or
    (k, C) for a grouped x (k, G, C, ...) (ghost batch norm, ``batchnorm_forward``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float, grouped: bool = False):
        # Reduced-precision inputs (bf16 autocast) are normalized with float32 statistics.
        y, mean, var, invstd = _KERNELS[_kernel][0](_upcast(x), weight, bias, eps, grouped)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.grouped = grouped
        if not grouped:
            mean, var = mean[0], var[0]
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor, _grad_mean, _grad_var):
        x, weight, mean, invstd = ctx.saved_tensors
        grad_y = _in_layout_of(_upcast(grad_y), x)
        grad_x, grad_weight, grad_bias = _KERNELS[_kernel][1](grad_y, _upcast(x), weight, mean, invstd, ctx.grouped)
        return grad_x.to(x.dtype), grad_weight, grad_bias, None, None


def _upcast(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _in_layout_of(t: Tensor, x: Tensor) -> Tensor:
    """t with x's strides (channels-last, or a grouped view of it), copied only when they differ: the sums and the
    update then read both alike."""
    return t if t.stride() == x.stride() else torch.empty_like(x, dtype=t.dtype).copy_(t)


class _BatchNorm(nn.Module):
    """Shared body of BatchNorm1d/2d; the same arguments, buffers and semantics as ``torch.nn``.

    ``momentum`` follows PyTorch's convention: running = (1 − momentum)·running + momentum·batch,
    so it equals 1 − Keras' momentum (PyTorch 0.1 ≙ Keras 0.9). ``momentum=None`` gives the exact
    cumulative average of Algorithm 2, line 10.

    Two options of the CIFAR-10 speed records (Page, "How to train your ResNet"), off by default:
    ``ghost_batch_size=G`` normalizes each group of G consecutive images with its own statistics (ghost batch
    norm, Hoffer et al. 2017) and updates the running estimates once per forward with the mean of the groups'
    means and the mean of their unbiased variances m_g/(m_g − 1)·σ²_g (Algorithm 2's estimate, over groups);
    ``freeze_weight=True`` keeps γ a parameter fixed at 1 (``requires_grad=False``), so state_dict keys, folding
    and exports are unchanged.
    """

    _expected_dims: tuple[int, ...] = ()
    weight: nn.Parameter | None
    bias: nn.Parameter | None
    running_mean: Tensor | None  # None when track_running_stats=False, as in torch
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
        ghost_batch_size: int = 0,
        freeze_weight: bool = False,
    ):
        super().__init__()
        if not isinstance(ghost_batch_size, int) or ghost_batch_size < 0 or ghost_batch_size == 1:
            raise UsageError(f"ghost_batch_size must be 0 (off) or at least 2 images, got {ghost_batch_size!r}")
        self.ghost_batch_size, self.freeze_weight = ghost_batch_size, freeze_weight
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            self.bias = nn.Parameter(torch.empty(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()
        if freeze_weight and self.weight is not None:
            self.weight.requires_grad_(False)

    def reset_running_stats(self) -> None:
        if self.running_mean is not None and self.running_var is not None and self.num_batches_tracked is not None:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None and self.bias is not None:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        extra = (f", ghost_batch_size={self.ghost_batch_size}" if self.ghost_batch_size else "") + (
            ", freeze_weight=True" if self.freeze_weight else ""
        )
        return (
            "{num_features}, eps={eps}, momentum={momentum}, affine={affine}, "
            "track_running_stats={track_running_stats}".format(**self.__dict__)
        ) + extra

    def _check_input(self, x: Tensor) -> None:
        if x.dim() not in self._expected_dims:
            raise UsageError(
                f"{type(self).__name__} expects a {' or '.join(map(str, self._expected_dims))}D "
                f"input (N, C, ...), got shape {tuple(x.shape)}"
            )
        if x.size(1) != self.num_features:
            raise UsageError(
                f"{type(self).__name__}({self.num_features}) got {x.size(1)} channels "
                f"in input of shape {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check_input(x)
        if self.training or not self.track_running_stats:
            return self._forward_batch_stats(x)
        return self._inference(x)

    @torch.jit.unused
    def _forward_batch_stats(self, x: Tensor) -> Tensor:
        """Algorithm 1 with this batch's statistics, updating the running estimates in training."""
        m = x.numel() // x.size(1)
        if m <= 1:
            raise UsageError(
                f"Expected more than 1 value per channel when training, got input of shape "
                f"{tuple(x.shape)}: use a batch of at least 2 or call model.eval()"
            )
        weight, bias = self._affine(x)
        if self.ghost_batch_size and x.size(0) != self.ghost_batch_size:
            return self._ghost(x, weight, bias)
        y, mean, var = BatchNormFunction.apply(x, weight, bias, self.eps)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean, var, m)
        return y

    def _ghost(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """Ghost batch norm: Algorithm 1 and its backward once, per (group of G consecutive images, channel)."""
        n, g = x.size(0), self.ghost_batch_size
        if n % g:
            raise UsageError(f"ghost batch norm: a batch of {n} images (per process) does not divide into groups of "
                             f"{g}; choose a batch size that does, or another ghost size")  # fmt: skip
        y, mean, var = BatchNormFunction.apply(x.unflatten(0, (n // g, g)), weight, bias, self.eps, True)
        if self.training and self.track_running_stats:
            m = x.numel() // mean.numel()  # values per group and channel
            self._update_running_stats(mean.mean(0), var.mean(0), m)
        return y.flatten(0, 1)

    def _affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.weight is not None and self.bias is not None:
            return self.weight, self.bias
        ones = torch.ones(self.num_features, dtype=x.dtype, device=x.device)
        return ones, torch.zeros_like(ones)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, m: int | Tensor) -> None:
        running_mean, running_var, tracked = self.running_mean, self.running_var, self.num_batches_tracked
        assert running_mean is not None and running_var is not None and tracked is not None
        tracked.add_(1)
        # momentum=None: cumulative average over all batches seen (Algorithm 2, line 10).
        factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
        # Population variance is estimated without bias: Var[x] = m/(m−1) · E_B[σ²_B] (Algorithm 2).
        running_mean.lerp_(mean.to(running_mean.dtype), factor)
        running_var.lerp_((var * (m / (m - 1))).to(running_var.dtype), factor)

    def _inference(self, x: Tensor) -> Tensor:
        """Algorithm 2, line 11: y = γ/√(Var[x]+ε)·x + (β − γE[x]/√(Var[x]+ε)), plain tensor ops."""
        # locals: TorchScript refines Optional types of local names only
        running_mean, running_var, weight, bias = self.running_mean, self.running_var, self.weight, self.bias
        assert running_mean is not None and running_var is not None  # without them, forward normalizes by the batch
        scale = torch.rsqrt(running_var + self.eps)
        if weight is not None:
            scale = weight * scale
        shift = -running_mean * scale
        if bias is not None:
            shift = shift + bias
        return x * _channel_view(scale, x.dim()).to(x.dtype) + _channel_view(shift, x.dim()).to(x.dtype)


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, statistics per channel C."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs, statistics per channel over N×H×W (Sec. 3.2)."""

    _expected_dims = (4,)


BATCHNORM_TYPES = (_BatchNorm, nn.modules.batchnorm._BatchNorm)
"""Both this project's and PyTorch's batch norm; used by recalibration, folding and summaries."""
BatchNorm = _BatchNorm | nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class BatchNormOptions:
    """A ``norm_layer``: this project's BN with the speed records' options (``_BatchNorm``'s arguments), as
    BatchNorm2d after convolutions and BatchNorm1d after linear layers."""

    ghost_batch_size: int = 0
    freeze_weight: bool = False

    def layer(self, dim: int) -> Callable[[int], nn.Module]:
        return functools.partial(BatchNorm2d if dim == 2 else BatchNorm1d, ghost_batch_size=self.ghost_batch_size,
                                 freeze_weight=self.freeze_weight)  # fmt: skip


NormLayer = str | BatchNormOptions | Callable[[int], nn.Module] | None
"""What every ``norm_layer`` argument takes: a name from ``NORM_LAYERS``, ``BatchNormOptions``, ``None`` or a
callable."""

# name -> (the layer after a convolution, the layer after a linear layer)
NORM_LAYERS: dict[str, tuple[Callable[[int], nn.Module], Callable[[int], nn.Module]] | None] = {
    "bn": (BatchNorm2d, BatchNorm1d),
    "torch": (nn.BatchNorm2d, nn.BatchNorm1d),
    "none": None,
}


def get_norm(norm: NormLayer, dim: int = 2) -> Callable[[int], nn.Module] | None:
    """The one seam for normalization: a name from ``NORM_LAYERS``, ``None`` (this project's BN,
    as ``None`` means BatchNorm2d in torchvision) or a callable ``norm(num_channels) -> Module``.
    ``dim`` picks the form of a name: 2 after convolutions (BatchNorm2d), 1 after linear layers
    (BatchNorm1d). Returns ``None`` when normalization is off."""
    if dim not in (1, 2):
        raise UsageError(f"get_norm: dim must be 1 (after linear layers) or 2 (after convolutions), got {dim!r}")
    if norm is None:
        norm = "bn"
    if isinstance(norm, BatchNormOptions):
        return norm.layer(dim)
    if isinstance(norm, str):
        if norm not in NORM_LAYERS:
            raise UsageError(
                f"unknown norm_layer {norm!r}; choose one of {sorted(NORM_LAYERS)}, None, "
                f"or a callable taking the number of channels"
            )
        forms = NORM_LAYERS[norm]
        return None if forms is None else forms[2 - dim]
    if callable(norm):
        return norm
    raise UnknownArgument(f"norm_layer must be a name, None or a callable, got {type(norm).__name__}")
