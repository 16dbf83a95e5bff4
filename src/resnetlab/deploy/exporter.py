"""Export a trained run for inference: batch norm folded into the layer before it (Algorithm 2,
line 11), a dynamic batch axis, the preprocessing and labels inside the file, and a self-check of
the written file in its own runtime against the PyTorch model."""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoints import open_model
from ..data import ImageData, load_data, normalizer
from ..data.folder import UNREADABLE, list_folder, load_image
from ..data.transforms import EvalTransform, centre_crop
from ..errors import UsageError
from ..hardware import has_vnni
from ..nn import fold_batchnorm
from .formats import FORMATS, set_onnx_info, to_onnx
from .info import KEY, DeployInfo
from .predictor import Predictor

CHECK_IMAGES = 64  # images the self-check runs through both models


@dataclass(frozen=True)
class ExportReport:
    files: list[Path]
    max_abs_diff: float  # largest |logit difference| against the PyTorch eval-mode model
    top1_agreement: float  # fraction of check images with the same top class
    check_data: str  # what the check ran on
    accuracy: dict[str, float] | None = None  # int8: held-out accuracy of fp32 and of the export, and the count


@functools.lru_cache(maxsize=1)  # one export reads its data for the check, calibration and held-out accuracy
def _data(spec: str, size: int) -> ImageData | None:
    try:
        return load_data(spec, size)
    except (ValueError, OSError):
        return None


def _folder_images(root: str, transform: EvalTransform, n: int, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to ``n`` files of an image folder's ``split``, spread evenly over its listing (every class, not the
    first one's files), decoded one by one: a check of 64 images does not decode a large folder whole."""
    try:
        train, test = list_folder(root)
    except (ValueError, OSError):
        return None
    files = train if split == "train" else test
    if files is None or not len(files):
        return None
    images, labels = [], []
    for i in np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(np.int64)):
        try:
            images.append(load_image(files.path(i), transform))
        except UNREADABLE:
            continue  # training and evaluation leave such files out too
        labels.append(int(files.labels[i]))
    if not images:
        return None
    return np.stack(images).transpose(0, 3, 1, 2), np.asarray(labels, np.int64)


def _images(spec: str | None, info: DeployInfo, n: int, split: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Up to ``n`` uint8 images of ``split`` ("train" or "test") from the data ``spec`` with their labels,
    or None when it cannot be read here (a run trained elsewhere); decoded and cropped as the run evaluates."""
    transform = info.eval_transform
    if spec is not None and spec.startswith("folder:"):
        found = _folder_images(spec.partition(":")[2], transform, n, split)
        if found is None or tuple(found[0].shape[1:]) != info.input_size:
            return None
        return np.ascontiguousarray(found[0]), found[1], f"{len(found[1])} {split} images of {spec}"
    data = None if spec is None else _data(spec, transform.resize)
    if data is None:
        return None
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    if x is None or y is None:
        return None
    x = centre_crop(x[:n], transform.crop)
    if tuple(x.shape[1:]) != info.input_size:
        return None
    return x.contiguous().numpy(), y[:n].numpy(), f"{min(n, len(x))} {split} images of {spec}"


def _normalize(x: np.ndarray, info: DeployInfo) -> np.ndarray:
    return normalizer(info.mean, info.std, torch.device("cpu"))(torch.from_numpy(x)).numpy()


def _quantize(fp32: Path, out: Path, calibration: np.ndarray, info: DeployInfo) -> None:
    """Post-training static int8 quantization with ONNX Runtime's quantizer, QDQ format, per-channel
    weights, min-max calibration. Without VNNI, weights use 7 bits (``reduce_range``) so that the u8×s8
    products summed in 16 bits cannot saturate."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [{"input": _normalize(calibration[i : i + 32], info)} for i in range(0, len(calibration), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_name(f".{out.stem}.pre.onnx")  # shapes inferred and graph optimized, as ORT advises
    quant_pre_process(str(fp32), str(prepared))
    try:
        quantize_static(
            str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=not has_vnni(), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)


def export(
    source: str | Path,
    fmt: str,
    out: str | Path,
    precision: str = "fp32",
    calibration: str | None = None,
    calibration_images: int = 300,
    opset: int | None = None,
    log=print,
    weights: str | None = None,
    min_agreement: float = 0.98,
    heldout: str | None = None,
) -> ExportReport:
    """Write the model of ``source`` (a run folder or checkpoint; a model name with ``weights``, its
    shipped weights) as ``fmt`` to ``out``, check it, and return what the check measured. A failed
    check removes every file written."""

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != FORMATS[fmt]:
        raise UsageError(f"--out {out}: a {fmt} file must end in {FORMATS[fmt]}")
    if precision not in ("fp32", "int8"):
        raise UsageError(f"--precision {precision}: choose fp32 or int8")
    if precision == "int8" and fmt == "torchscript":
        raise UsageError("--precision int8 is made with ONNX Runtime's quantizer: export to onnx or openvino")
    if not 0 <= min_agreement <= 1:
        raise UsageError(f"--min-agreement {min_agreement}: give a fraction in [0, 1], e.g. 0.98")
    if calibration_images < 1:
        raise UsageError(f"--calibration-images {calibration_images}: give at least 1")
    model, meta, label = open_model(source, weights)
    info = replace(DeployInfo.from_checkpoint(meta, label), precision=precision)
    folded = fold_batchnorm(model)
    own_data = meta.get("config", {}).get("data")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed over --out once checked: a failed export leaves whatever was
    # at --out before it as it was, and nothing of its own.
    final = [out] + ([out.with_suffix(".bin")] if fmt == "openvino" else [])
    out = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    written = [out] + ([out.with_suffix(".bin")] if fmt == "openvino" else [])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if fmt == "torchscript":
                torch.jit.save(torch.jit.script(folded), str(out), _extra_files={f"{KEY}.json": info.to_json()})
            else:
                onnx_path = out if fmt == "onnx" and precision == "fp32" else Path(tmp) / "model.onnx"
                to_onnx(folded, info.input_size, onnx_path, opset)
                if precision == "int8":
                    found = _images(calibration or own_data, info, calibration_images, "train")
                    if found is None:
                        raise UsageError(
                            f"--precision int8 needs calibration images: --calibration {calibration or own_data} "
                            "cannot be read here; give --calibration DATA"
                        )
                    log(f"calibrating int8 on {found[2]}")
                    quantized = out if fmt == "onnx" else Path(tmp) / "int8.onnx"
                    _quantize(onnx_path, quantized, found[0], info)
                    onnx_path = quantized
                set_onnx_info(onnx_path, info)
                if fmt == "openvino":
                    import openvino as ov

                    ov_model = ov.convert_model(str(onnx_path))
                    ov_model.set_rt_info(info.to_json(), [KEY])
                    ov.save_model(ov_model, str(out), compress_to_fp16=False)  # it would halve fp32 weights
        report = _check(out, model, info, own_data)  # fp32 beyond rtol 1e-4, atol 1e-5 raises
        log(f"wrote {', '.join(map(str, final))}; check on {report.check_data}: max |logit difference| "
            f"{report.max_abs_diff:.3g}, top-1 agreement {100 * report.top1_agreement:.2f}%")  # fmt: skip
        if precision == "int8":
            test = _images(heldout or own_data, info, 10**9, "test")
            agreement, where = report.top1_agreement, report.check_data
            if test is not None:
                report = replace(report, accuracy=_accuracy(out, model, info, test[0], test[1]))
                acc = report.accuracy or {}
                agreement, where = acc["agreement"], test[2]
                log(f"held-out on {test[2]} (not the calibration images): top-1 agreement with fp32 "
                    f"{100 * agreement:.2f}%, accuracy fp32 {100 * acc['fp32']:.2f}%, int8 {100 * acc['int8']:.2f}% "
                    f"(cost {100 * (acc['fp32'] - acc['int8']):.2f} points)")  # fmt: skip
            else:
                log("no held-out test split readable here: the int8 accuracy cost is not measured")
            if agreement < min_agreement:
                cost = "" if test is None else (f", accuracy fp32 {100 * acc['fp32']:.2f}% vs int8 "
                                                   f"{100 * acc['int8']:.2f}%")  # fmt: skip
                raise UsageError(
                    f"int8 top-1 agreement with fp32 is {100 * agreement:.2f}% on {where}{cost}, below "
                    f"{100 * min_agreement:g}%: nothing was kept; calibrate on other or more images (--calibration, "
                    "--calibration-images) or accept less with --min-agreement"
                )
        for staged, path in zip(written, final):
            os.replace(staged, path)
        return replace(report, files=final)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        _data.cache_clear()  # the data was read once for this export; do not keep it


def _reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def _check(out: Path, model: nn.Module, info: DeployInfo, data_spec: str | None) -> ExportReport:
    """Run the written file in its runtime (fp32 asked explicitly) beside the PyTorch eval-mode model."""
    found = _images(data_spec, info, CHECK_IMAGES, "test") or _images(data_spec, info, CHECK_IMAGES, "train")
    if found is None:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (CHECK_IMAGES, *info.input_size), dtype=np.uint8)
        found = x, np.zeros(len(x), np.int64), "random images"
    # the file as a user runs it: its runtime, fp32, its preprocessing of uint8 pixels
    got, expected = Predictor.load(out).logits(found[0]), _reference(model, _normalize(found[0], info))
    report = ExportReport([out], float(np.abs(got - expected).max()),
                          float((got.argmax(1) == expected.argmax(1)).mean()), found[2])  # fmt: skip
    if info.precision == "fp32":
        try:
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        except AssertionError:
            raise UsageError(
                f"{out}: the exported model's logits differ from PyTorch's beyond rtol 1e-4, atol 1e-5 (max "
                f"{report.max_abs_diff:.3g}); nothing was kept"
            ) from None
    return report


def _accuracy(out: Path, model: nn.Module, info: DeployInfo, x: np.ndarray, y: np.ndarray) -> dict:
    predictor = Predictor.load(out, batch_size=250)
    int8 = predictor.logits(x).argmax(1)
    fp32 = np.concatenate(
        [_reference(model, _normalize(x[i : i + 250], info)).argmax(1) for i in range(0, len(x), 250)]
    )
    return {"fp32": float((fp32 == y).mean()), "int8": float((int8 == y).mean()),
            "agreement": float((int8 == fp32).mean()), "images": len(y)}  # fmt: skip
