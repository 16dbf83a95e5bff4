"""``resnetlab eval``: a SOURCE (a run, a checkpoint, MODEL.WEIGHTS, or an exported file in its runtime) over
a test split through the one evaluation path, printed and drawn as a confusion matrix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .. import hardware
from ..checkpoints import open_model, parse_source, resolve
from ..data import ImageData, load_data, normalizer
from ..data.folder import list_folder
from ..data.shard_stream import ShardedData
from ..data.shards import read_info
from ..data.stream import StreamedFolder
from ..data.transforms import EvalTransform
from ..errors import UsageError
from ..evaluation import Evaluation, Predict, evaluate_batches, shard, torch_predictor
from ..models import input_shape
from ..plots import plot_confusion
from .formats import FORMATS
from .predictor import Predictor


def evaluate_source(
    source: str, data_spec: str | None = None, device: str = "auto", precision: str | None = None,
    tta: str | None = None, log=print,
) -> Evaluation:  # fmt: skip
    """Test error (single view, and with test-time augmentation), per-class accuracy and the confusion
    matrix; ``confusion.png`` is drawn beside the run (in the working folder otherwise). ``precision`` and
    ``tta`` default to how the run evaluated itself (shipped weights: how their error was measured)."""
    path, weights = parse_source(source)
    exported = weights is None and Path(path).suffix in FORMATS.values() and Path(path).is_file()
    meta: dict[str, Any]
    predict: Predict
    if exported:  # in its own runtime: weights, preprocessing and labels come from the file
        predictor = Predictor.load(path, precision=precision or "fp32")
        info = predictor.info
        meta = {"class_names": list(info.class_names), "input_size": list(info.input_size), "iteration": "exported",
                "num_classes": len(info.class_names), "config": {"data": info.provenance.get("data")},
                "eval_transform": {"resize": info.eval_transform.resize, "crop": info.eval_transform.crop}}  # fmt: skip
        label = str(path)
        predict = _runtime_predictor(predictor)
    else:
        model, meta, label = open_model(path, weights)
        run = meta.get("evaluation") or {**meta.get("config", {}), **meta.get("resolved", {})}
        precision = _precision(precision or run.get("precision", "fp32"))
        tta = tta or (run.get("tta") or ("flip" if run.get("tta_flip") else "none"))
        on = hardware.resolve_device(device)
        norm = meta["normalization"]
        predict = torch_predictor(model.to(on), normalizer(norm["mean"], norm["std"], on), on, precision)
    spec = data_spec or meta["config"].get("data")
    if spec is None or weights is not None and data_spec is None:
        raise UsageError(f"{label}: give the test images with --data (e.g. cifar10:DIR with the CIFAR-10 python "
                         "batches, or npz:FILE)")  # fmt: skip
    c, h, w = input_shape(meta)
    data = _test_data(spec, EvalTransform.of(meta, h), (h, w), meta["num_classes"])
    if not data.split_size("test"):
        raise UsageError(f"--data {spec}: has no test split to evaluate on")
    shape = (c, h, w)
    if data.image_shape[0] != c or data.num_classes != meta["num_classes"]:
        raise UsageError(f"--data {spec}: {data.num_classes} classes of {data.image_shape} images, but the model was "
                         f"trained on {meta['num_classes']} classes of {shape} images")  # fmt: skip
    tta = tta or "none"
    if tta != "none" and not data.flip:
        tta = "none"  # a mirrored digit is another class: no test-time augmentation there
    batches = data.eval_batches("test", *shard(data.split_size("test")), EVAL_BATCH)
    result = evaluate_batches(predict, batches, meta["class_names"], tta, data.eval_crop)
    name = label if weights is not None or exported else resolve(path)
    log(f"{name} (iteration {meta['iteration']}) on {spec}: {result.images} test images"
        + (f", {tta} test-time augmentation" if tta != "none" else ""))  # fmt: skip
    log(str(result))
    if weights is not None:
        out = Path.cwd() / f"confusion-{path}-{weights}.png"
    else:
        out = Path.cwd() / f"confusion-{Path(path).stem}.png" if exported else _run_folder(path) / "confusion.png"
    plot_confusion(out, result.confusion.numpy(), list(meta["class_names"]), result.error)
    log(f"confusion matrix drawn in {out}")
    return result


EVAL_BATCH = 500


def _test_data(
    spec: str, transform: EvalTransform, size: tuple[int, int], num_classes: int
) -> ImageData | StreamedFolder | ShardedData:
    """The test split of ``spec`` as ``transform`` decodes it: an image folder's files are read batch by batch
    (one worker process), only its test split; other sources are loaded whole and must be of ``size``."""
    kind, _, path = spec.partition(":")
    if kind == "wds":
        info = read_info(path, num_classes)
        shards = info.split("train")
        assert shards is not None
        return ShardedData(info.name, info.class_names, shards, transform.crop, test=info.split("test", "val"),
                           workers=1, evaluation=transform)  # fmt: skip
    if kind != "folder":
        data = load_data(spec, transform.crop)
        if data.image_shape[1:] != size:
            raise UsageError(f"--data {spec}: {data.image_shape[1:]} images, but the model takes {size}")
        return data
    train, test = list_folder(path)
    return StreamedFolder(Path(path).name, train.listing.classes, train, transform.crop, test=test, workers=1,
                          evaluation=transform)  # fmt: skip


def _runtime_predictor(predictor: Predictor) -> Predict:
    """An exported file in its runtime, as ``evaluate`` takes a model: uint8 batch → logits."""
    return lambda batch: torch.from_numpy(predictor.logits(batch.numpy()))


def _precision(precision: str) -> str:
    if precision == "auto":  # bf16 where the CPU has it natively, as training's --precision auto
        return "bf16" if hardware.native_bf16() else "fp32"
    return precision


def _run_folder(path) -> Path:
    folder = resolve(path)
    run = folder.parent.parent if folder.parent.name == "checkpoints" else folder
    return run if os.access(run, os.W_OK) else Path.cwd()
