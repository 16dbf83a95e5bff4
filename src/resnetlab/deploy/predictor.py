"""``Predictor``: top-k classes for images, from a run folder, a checkpoint or an exported file, on
the fastest runtime installed, with exactly the preprocessing the model was trained with."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..checkpoints import open_model, parse_source
from ..data import normalizer
from ..data.folder import EXTENSIONS
from ..errors import UsageError
from ..hardware import native_bf16, resolve_device
from ..nn import fold_batchnorm
from .formats import read_info, to_onnx
from .info import DeployInfo
from .runtimes import PRECISIONS, RUNTIMES, OnnxRuntime, OpenVINORuntime, TorchRuntime, installed, require

_BY_SUFFIX = {".xml": "openvino", ".onnx": "onnxruntime", ".pt": "torch"}


class Runtime(Protocol):
    name: str
    takes_uint8: bool  # normalizes uint8 pixels itself (OpenVINO's preprocessing); else give it floats

    def run(self, x: np.ndarray) -> np.ndarray: ...


def choose_runtime(path: str | Path, runtime: str = "auto") -> tuple[str, str]:
    """(runtime, why) by one rule: ``.xml`` → OpenVINO, ``.onnx`` → ONNX Runtime, ``.pt`` → torch; a run
    folder or checkpoint → OpenVINO if installed, else ONNX Runtime, else torch."""
    suffix = Path(path).suffix
    if runtime != "auto":
        require(runtime)
        if suffix in _BY_SUFFIX and _BY_SUFFIX[suffix] != runtime:
            raise UsageError(f"{path}: a {suffix} file runs on {_BY_SUFFIX[suffix]}, not --runtime {runtime}")
        return runtime, "asked for"
    if suffix in _BY_SUFFIX:
        require(_BY_SUFFIX[suffix])
        return _BY_SUFFIX[suffix], f"a {suffix} file"
    for name in ("openvino", "onnxruntime"):
        if installed(name):
            return name, "the fastest runtime installed"
    return "torch", "neither openvino nor onnxruntime is installed (pip install 'resnetlab[deploy]')"


def _load(
    path: Path, runtime: str, precision: str, threads: int | None, device: str, weights: str | None
) -> tuple[Runtime, DeployInfo, str]:
    if precision not in (*PRECISIONS, "auto"):
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}, auto")
    if weights is None:
        source, weights = parse_source(path)
        path = Path(source)
    if weights is None and not path.exists():
        raise UsageError(f"{path}: no such file or run folder (nor MODEL.WEIGHTS, e.g. resnet56.cifar10)")
    name, why = choose_runtime(path, runtime)
    if precision == "auto":  # bf16 where the CPU has it natively and the runtime has a bf16 path
        precision = "bf16" if name != "onnxruntime" and native_bf16() else "fp32"
    if threads:
        torch.set_num_threads(threads)
    if path.suffix in _BY_SUFFIX and weights is None:  # an exported file: weights, preprocessing and labels inside
        info = read_info(path)
        if name == "torch":
            return (
                TorchRuntime(torch.jit.load(str(path), map_location="cpu"), precision, resolve_device(device)),
                info,
                why,
            )
        if name == "onnxruntime":
            return OnnxRuntime(path, precision, threads), info, why
        return OpenVINORuntime(path, precision, threads, normalize=(info.mean, info.std)), info, why
    # a run folder, a checkpoint or shipped weights: folded here, in memory
    model, meta, label = open_model(path, weights)
    info = DeployInfo.from_checkpoint(meta, label)
    folded = fold_batchnorm(model)
    if name == "torch":
        return TorchRuntime(folded, precision, resolve_device(device)), info, why
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        to_onnx(folded, info.input_size, onnx_path)
        if name == "onnxruntime":
            return OnnxRuntime(onnx_path.read_bytes(), precision, threads), info, why
        import openvino as ov

        model = ov.Core().read_model(str(onnx_path))
        return OpenVINORuntime(model, precision, threads, normalize=(info.mean, info.std)), info, why


@dataclass
class Predictor:
    """``Predictor.load(path).predict(images, top_k=5)`` → per image, [(class name, probability), ...]."""

    runtime: Runtime
    info: DeployInfo
    batch_size: int = 64
    why: str = ""  # why this runtime was chosen
    _normalizer: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(
        cls,
        path: str | Path,
        runtime: str = "auto",
        precision: str = "fp32",
        threads: int | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        weights: str | None = None,
    ) -> Predictor:
        """From a run folder, a checkpoint, a file written by ``resnetlab export`` (``.onnx``, ``.xml``,
        ``.pt``), or a model name with ``weights`` naming its shipped weights (``Predictor.load("resnet56",
        weights="cifar10")``). ``runtime``: auto | torch | onnxruntime | openvino; ``precision``: fp32 (asked
        of every runtime explicitly) | bf16; ``device`` applies to the torch runtime."""
        if runtime != "auto" and runtime not in RUNTIMES:
            raise UsageError(f"unknown runtime {runtime!r}; choose auto or one of {', '.join(RUNTIMES)}")
        if batch_size < 1:
            raise UsageError(f"--batch-size {batch_size}: give at least 1")
        rt, info, why = _load(Path(path), runtime, precision, threads, device, weights)
        return cls(rt, info, batch_size, why)

    def prepare(self, item: Any) -> np.ndarray:
        """One input as the model's uint8 (C, H, W): image files and PIL images are resized and
        centre-cropped as the run evaluated them (``info.eval_transform``); arrays (H, W, C) and tensors
        (C, H, W) must already fit."""
        c, h, w = self.info.input_size
        if isinstance(item, (str, Path)):
            path = Path(item)
            if not path.is_file():
                raise UsageError(f"{path}: no such image file")
            try:
                with Image.open(path) as image:
                    return self.prepare(image.copy())
            except (UnidentifiedImageError, OSError) as e:
                raise UsageError(f"{path}: not a readable image ({type(e).__name__})") from None
        if isinstance(item, Image.Image):
            pixels = self.info.eval_transform(item)  # RGB; a grayscale model takes the mean of the channels
            if c == 1:
                pixels = pixels.mean(axis=2, keepdims=True).round().astype(np.uint8)
            return np.ascontiguousarray(pixels.transpose(2, 0, 1))
        if isinstance(item, torch.Tensor):
            array = item.detach().cpu().numpy()
            layout, expected = "tensor (C, H, W)", (c, h, w)
        elif isinstance(item, np.ndarray):
            array = item.transpose(2, 0, 1) if item.ndim == 3 else item
            layout, expected = "array (H, W, C)", (h, w, c)
        else:
            raise UsageError(f"cannot predict a {type(item).__name__}: give image paths, PIL images, uint8 arrays "
                             "(H, W, C) or uint8 tensors (C, H, W)")  # fmt: skip
        shape = tuple(item.shape)
        if item.dtype not in (np.uint8, torch.uint8) or array.shape != (c, h, w):
            raise UsageError(f"a {item.dtype} {layout} of shape {shape}: the model takes uint8 of shape {expected}; "
                             "resize it first, or pass the image file or a PIL image")  # fmt: skip
        return np.ascontiguousarray(array)

    def predict_files(self, paths: Iterable[str | Path], top_k: int = 5, log=print) -> tuple[list, int]:
        """``[(file, top_k pairs)]`` for image files and the image files of folders (walked, sorted), and how
        many were skipped as unreadable (each named once through ``log``)."""
        files: list[Path] = []
        for name in paths:
            path = Path(name)
            walked = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS) if path.is_dir() else [path]
            files += walked
        ready, pixels, skipped = [], [], 0
        for path in files:
            try:
                pixels.append(self.prepare(path))
                ready.append(path)
            except UsageError as e:
                log(f"skipped {e}")
                skipped += 1
        results = self.top(self.logits(np.stack(pixels)), top_k) if pixels else []
        return list(zip(ready, results)), skipped

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits of uint8 (N, C, H, W) images, in batches of ``batch_size``."""
        out = []
        for i in range(0, len(pixels), self.batch_size):
            batch = np.ascontiguousarray(pixels[i : i + self.batch_size])
            out.append(self.runtime.run(batch if self.runtime.takes_uint8 else self._normalize(batch)))
        return np.concatenate(out) if out else np.zeros((0, len(self.info.class_names)), np.float32)

    def _normalize(self, pixels: np.ndarray) -> np.ndarray:
        """The training input transform (``data.preprocess.normalizer``), on torch's threads."""
        if self._normalizer is None:
            self._normalizer = normalizer(self.info.mean, self.info.std, torch.device("cpu"))
        return self._normalizer(torch.from_numpy(pixels)).numpy()

    def predict(self, inputs: Iterable[Any] | Any, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Per input, the ``top_k`` (class name, probability) pairs, most probable first."""
        items: Sequence[Any] = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if not items:
            return []
        return self.top(self.logits(np.stack([self.prepare(item) for item in items])), top_k)

    def top(self, logits: np.ndarray, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``top_k`` (class name, softmax probability) pairs of each row of ``logits``."""
        if top_k < 1:
            raise UsageError(f"--top {top_k}: give at least 1")
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        k = min(top_k, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.info.class_names[j], float(p[j])) for j in row] for p, row in zip(probs, top)]
