"""Layers: batch normalization from its paper and the residual blocks built on it."""

from .blocks import (
    ACTIVATIONS,
    SHORTCUTS,
    BasicBlock,
    Bottleneck,
    LinearBlock,
    LinearShortcutA,
    ShortcutA,
    make_shortcut,
)
from .conv import MatmulGradConv2d, convert_matmul_weight_grad
from .norm import (
    BATCHNORM_TYPES,
    NORM_LAYERS,
    BatchNorm1d,
    BatchNorm2d,
    BatchNormFunction,
    get_norm,
    set_batchnorm_kernel,
)
from .norm_inference import fold_batchnorm, recalibrate_batchnorm
from .sync_norm import SyncBatchNorm1d, SyncBatchNorm2d, convert_sync_batchnorm

__all__ = [
    "ACTIVATIONS",
    "BATCHNORM_TYPES",
    "NORM_LAYERS",
    "SHORTCUTS",
    "BasicBlock",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormFunction",
    "Bottleneck",
    "LinearBlock",
    "LinearShortcutA",
    "MatmulGradConv2d",
    "ShortcutA",
    "SyncBatchNorm1d",
    "SyncBatchNorm2d",
    "convert_matmul_weight_grad",
    "convert_sync_batchnorm",
    "fold_batchnorm",
    "get_norm",
    "make_shortcut",
    "recalibrate_batchnorm",
    "set_batchnorm_kernel",
]
