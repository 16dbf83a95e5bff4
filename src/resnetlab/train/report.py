"""What ``resnetlab eval`` and ``resnetlab predict`` print and draw for a trained model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..checkpoints import resolve
from ..data import load_data, normalizer
from ..hardware import resolve_device
from ..pretrained import open_model
from .evaluate import confusion_matrix, predict
from .metrics import pyplot, save_figure


def _load(path: str, device_name: str, weights: str | None = None):
    model, meta, _ = open_model(path, weights)
    device = resolve_device(device_name)
    model.to(device)
    norm = meta["normalization"]
    return model, meta, device, normalizer(norm["mean"], norm["std"], device)


def evaluate_checkpoint(
    path: str, data_spec: str | None, device_name: str = "auto", weights: str | None = None
) -> dict:
    """Test error, per-class accuracy and the confusion matrix; draws ``confusion.png`` beside the checkpoint's
    run (in the working folder for shipped weights: ``path`` is then a model name and ``weights`` its weights)."""
    model, meta, device, normalize = _load(path, device_name, weights)
    if weights is not None and data_spec is None:
        raise ValueError(
            f"{path} weights {weights}: give the test images with --data (e.g. cifar10:DIR with the CIFAR-10 "
            "python batches, or npz:FILE)"
        )
    spec = data_spec or meta["config"]["data"]
    data = load_data(spec, meta["image_size"])
    if data.x_test is None or data.y_test is None:
        raise ValueError(f"--data {spec}: has no test split to evaluate on")
    if (
        data.image_shape != (meta["in_channels"], meta["image_size"], meta["image_size"])
        or data.num_classes != meta["num_classes"]
    ):
        raise ValueError(
            f"--data {spec}: {data.num_classes} classes of {data.image_shape} images, but the model "
            f"was trained on {meta['num_classes']} classes of {meta['in_channels']}x{meta['image_size']}²"
        )
    # evaluated as the run evaluated itself, or as shipped weights' documented error was measured
    how = meta.get("evaluation") or {**meta["config"], **meta.get("resolved", {})}
    precision = how.get("precision", "fp32")
    flip = bool(how.get("tta_flip")) and data.flip
    pred = predict(model, data.x_test, normalize, device, precision, flip=flip).argmax(1)
    cm = confusion_matrix(pred, data.y_test, data.num_classes)
    names = meta["class_names"]
    error = 1 - cm.diag().sum().item() / cm.sum().item()
    per_class = (cm.diag().float() / cm.sum(1).clamp(min=1).float()).tolist()
    source = resolve(path) if weights is None else f"{path} weights {weights}"
    print(
        f"{source} (iteration {meta['iteration']}) on {spec}: {len(pred)} test images"
        + (", flip test-time augmentation" if flip else "")
    )
    print(f"test error: {100 * error:.2f}%")
    print("per-class accuracy:")
    for name, acc in zip(names, per_class):
        print(f"  {name:>12} {100 * acc:6.2f}%")
    width = max(5, max(len(str(v)) for v in cm.flatten().tolist()) + 1)
    print("confusion matrix (rows: true, columns: predicted):")
    print(" " * 13 + "".join(f"{n[: width - 1]:>{width}}" for n in names))
    for name, row in zip(names, cm.tolist()):
        print(f"  {name:>10} " + "".join(f"{v:>{width}}" for v in row))
    out = _run_folder(path) / "confusion.png" if weights is None else Path.cwd() / f"confusion-{path}-{weights}.png"
    _plot_confusion(out, cm.numpy(), names, error)
    print(f"confusion matrix drawn in {out}")
    return {"test_error": error, "per_class_accuracy": dict(zip(names, per_class)), "confusion": cm.tolist()}


def _run_folder(path: str) -> Path:
    folder = resolve(path)
    run = folder.parent.parent if folder.parent.name == "checkpoints" else folder
    return run if os.access(run, os.W_OK) else Path.cwd()


def _plot_confusion(path: Path, cm: np.ndarray, names: list[str], error: float) -> None:
    plt = pyplot()
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n), dpi=120)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test error {100 * error:.2f}%")
    fig.tight_layout()
    save_figure(fig, path)
