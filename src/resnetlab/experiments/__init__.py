"""The papers' experiments as functions; ``resnetlab experiment NAME`` calls them."""

from .batchnorm import evaluation_modes, run_batchnorm
from .cifar_table import PAPER_ERROR, run_cifar_table
from .covariate_shift import ShiftSetup, run_covariate_shift
from .degradation import run_degradation
from .gradients import GradientSetup, run_gradients
from .responses import layer_responses, run_responses

__all__ = [
    "GradientSetup",
    "PAPER_ERROR",
    "ShiftSetup",
    "evaluation_modes",
    "run_batchnorm",
    "run_cifar_table",
    "run_covariate_shift",
    "run_degradation",
    "run_gradients",
    "layer_responses",
    "run_responses",
]
