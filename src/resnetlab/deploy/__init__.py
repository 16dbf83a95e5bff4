"""Deployment: export with folded batch norm (ONNX, OpenVINO, TorchScript; fp32 or int8) and a
``Predictor`` on the fastest runtime installed. Needs no part of the trainer."""

from .exporter import ExportReport, export
from .formats import FORMATS, read_info
from .info import DeployInfo
from .predictor import Predictor, choose_runtime
from .runtimes import PRECISIONS, RUNTIMES

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "RUNTIMES",
    "DeployInfo",
    "ExportReport",
    "Predictor",
    "choose_runtime",
    "export",
    "read_info",
]
