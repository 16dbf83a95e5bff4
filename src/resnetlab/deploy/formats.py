"""The exported formats: ONNX written by the dynamo exporter, and the resnetlab metadata each carries."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from .info import KEY, DeployInfo

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}


def to_onnx(model: nn.Module, input_size: tuple[int, ...], path: Path, opset: int | None = None) -> None:
    """``torch.onnx.export`` (the dynamo exporter) with a dynamic batch axis (without ``dynamic_shapes``
    ONNX Runtime refuses other batch sizes) and the weights inside the file (``external_data=False``)."""
    example = (torch.zeros(2, *input_size),)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": not a model of ours needs it
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # the exporter narrates its steps
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                model, example, str(path), dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False,
                input_names=["input"], output_names=["logits"], opset_version=opset,
            )  # fmt: skip
    finally:
        registration.setLevel(level)


def set_onnx_info(path: Path, info: DeployInfo) -> None:
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = KEY, info.to_json()
    onnx.save(graph, str(path))


def read_info(path: Path) -> DeployInfo:
    """The ``DeployInfo`` an exported file carries; a one-line error for a file that is not one."""
    try:
        text = _metadata(path)
    except Exception as e:  # each reader has its own errors for a damaged file
        raise UsageError(f"{path}: not a readable {path.suffix} model ({type(e).__name__}); export it again") from None
    if text is None:
        raise UsageError(f"{path}: no resnetlab metadata inside; export it with 'resnetlab export'")
    return DeployInfo.from_json(text, str(path))


def _metadata(path: Path) -> str | None:
    """The metadata's JSON text in an ONNX file's metadata_props, OpenVINO's rt_info or TorchScript's extra files."""
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return props.get(KEY)
    if path.suffix == ".xml":
        import openvino as ov

        model = ov.Core().read_model(str(path))
        return model.get_rt_info([KEY]).astype(str) if model.has_rt_info([KEY]) else None
    files = {f"{KEY}.json": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return files[f"{KEY}.json"] or None
