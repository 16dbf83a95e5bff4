"""The inference engines a deployed model runs on, behind one call: ``run(x) -> logits`` on float32
NCHW arrays that are already normalized. ONNX Runtime and OpenVINO are optional (``resnetlab[deploy]``)."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UsageError

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
_MODULE = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def installed(runtime: str) -> bool:
    return importlib.util.find_spec(_MODULE[runtime]) is not None


def require(runtime: str) -> None:
    """A one-line error for an unknown runtime or one that is not installed."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}, or auto")
    if not installed(runtime):
        raise UsageError(
            f"runtime {runtime}: the {_MODULE[runtime]} package is not installed; "
            f"pip install 'resnetlab[deploy]', or use --runtime torch"
        )


class TorchRuntime:
    """PyTorch eager (or a TorchScript module) on ``device``; bf16 through autocast."""

    name = "torch"
    takes_uint8 = False

    def __init__(self, model: nn.Module, precision: str = "fp32", device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.precision = precision

    @torch.no_grad()
    def run(self, x: np.ndarray) -> np.ndarray:
        bf16 = self.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            logits = self.model(torch.from_numpy(x).to(self.device))
        return logits.float().cpu().numpy()


class OnnxRuntime:
    """ONNX Runtime's CPU execution provider on an ``.onnx`` file or its bytes (fp32 or int8 QDQ)."""

    name = "onnxruntime"
    takes_uint8 = False

    def __init__(self, model: str | Path | bytes, precision: str = "fp32", threads: int | None = None):
        require("onnxruntime")
        import onnxruntime as ort

        if precision != "fp32":
            raise UsageError("runtime onnxruntime: no bf16 path on the CPU; use --runtime openvino or torch for bf16")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types (InvalidGraph, Fail, ...)
            raise UsageError(_unloadable(model, "ONNX Runtime", e)) from None
        self.input = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: x})[0])


class OpenVINORuntime:
    """OpenVINO on the CPU. The precision is asked for explicitly: OpenVINO silently computes in bf16 on
    CPUs with AVX512-BF16 or AMX unless told ``f32`` (measured: max logit error 4e-3 vs 1e-6)."""

    name = "openvino"

    def __init__(
        self,
        model: Any,
        precision: str = "fp32",
        threads: int | None = None,
        normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    ):
        """``normalize=(mean, std)`` (on the [0, 1] scale) makes the compiled model take uint8 pixels and
        normalize them itself, fused into its first layer: no float copy of the batch is made outside."""
        require("openvino")
        import openvino as ov

        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        source = model
        try:
            if isinstance(model, (str, Path)):
                model = core.read_model(str(model))
            if normalize is not None:
                from openvino.preprocess import PrePostProcessor

                ppp = PrePostProcessor(model)
                ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NCHW"))
                ppp.input().model().set_layout(ov.Layout("NCHW"))
                mean, std = normalize
                ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([255 * m for m in mean]).scale(
                    [255 * s for s in std]
                )
                model = ppp.build()
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as e:  # OpenVINO reports a model it cannot read or compile as a RuntimeError
            raise UsageError(_unloadable(source, "OpenVINO", e)) from None
        self.takes_uint8 = normalize is not None
        self.request = self.compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: x})[0])  # a copy: the request reuses its output buffer


def _unloadable(model: Any, runtime: str, error: Exception) -> str:
    """One line for a model file a runtime refuses (e.g. a graph that is not valid)."""
    name = "the model" if isinstance(model, bytes) or not isinstance(model, (str, Path)) else str(model)
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return f"{name}: {runtime} cannot load it ({type(error).__name__}: {first}); export it again with resnetlab export"
