"""The papers' experiments as functions, and as a registry (``EXPERIMENTS``) that ``resnetlab experiment NAME``
parses and runs."""

from .batchnorm import evaluation_modes, run_batchnorm
from .cifar_table import PAPER_ERROR, run_cifar_table
from .covariate_shift import ShiftSetup, run_covariate_shift
from .degradation import run_degradation
from .gradients import GradientSetup, run_gradients
from .registry import EXPERIMENTS, Experiment, training_flags
from .responses import layer_responses, run_responses

__all__ = [
    "EXPERIMENTS",
    "Experiment",
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
    "training_flags",
]
