"""One evaluation path: any ``Callable[[uint8 batch], logits]`` over a split, with test-time augmentation,
each process of a torchrun run evaluating its own slice with the counts summed (as detectron2's evaluators
and timm's ``validate``). Training and the experiments pass a torch model (``torch_predictor``); deploy
wraps an exported file the same way, so nothing here knows a runtime."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .data.transforms import centre_crop
from .errors import UsageError

Predict = Callable[[Tensor], Tensor]  # uint8 (N, C, H, W) -> logits (N, classes)
TTA = ("none", "flip", "flip-translate", "ten-crop")


def views(x: Tensor, tta: str, crop: int | None = None) -> list[Tensor]:
    """The views of a uint8 batch whose logits test-time augmentation averages; the first is the single view.
    ``crop``: the model's input side, when ``x`` was decoded larger (``EvalTransform.square``: shorter side to
    256, say, for a 224 crop): the single view is then the centre crop. flip: and its mirror; flip-translate:
    each of the two also shifted by 2 pixels up-left and down-right, reflect-padded (airbench's level 2);
    ten-crop: the four corners and the centre, and their mirrors (the paper's 10-crop testing, Sec. 3.4, after
    Krizhevsky et al.), cropped from ``x``, or when it is not larger than ``crop``, from ``x`` resized by
    256/224."""
    h, w = x.shape[-2:]
    crop = crop or h
    if tta == "ten-crop":
        big = x
        if (h, w) == (crop, crop):
            big = F.interpolate(x.float(), scale_factor=256 / 224, mode="bilinear", antialias=True, align_corners=False)
            big = big.round().clamp(0, 255).to(x.dtype)
        bh, bw = big.shape[-2:]
        corners = [(0, 0), (0, bw - crop), (bh - crop, 0), (bh - crop, bw - crop), ((bh - crop) // 2, (bw - crop) // 2)]
        crops = [big[..., i : i + crop, j : j + crop] for i, j in corners]
        return [crops[-1], *crops[:-1], *(c.flip(3) for c in [crops[-1], *crops[:-1]])]
    x = centre_crop(x, crop) if (h, w) != (crop, crop) else x
    if tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(3)]
    if tta == "flip-translate":
        padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(x.dtype)
        shifted = [padded[..., :crop, :crop], padded[..., 4 : 4 + crop, 4 : 4 + crop]]
        return [x, x.flip(3), *shifted, *(s.flip(3) for s in shifted)]
    raise UsageError(f"--tta {tta}: choose one of {', '.join(TTA)}")


@dataclass(frozen=True)
class Evaluation:
    """The confusion matrices (rows: true class, columns: predicted) of one split: single-view, and averaged
    over the test-time augmentation's views when there is one."""

    confusion: Tensor
    class_names: Sequence[str]
    tta: str = "none"
    confusion_tta: Tensor | None = None

    @property
    def images(self) -> int:
        return int(self.confusion.sum())

    @property
    def error(self) -> float:
        """The single-view error (a fraction)."""
        return 1 - float(self.confusion.diag().sum()) / max(1, self.images)

    @property
    def error_tta(self) -> float | None:
        if self.confusion_tta is None:
            return None
        return 1 - float(self.confusion_tta.diag().sum()) / max(1, self.images)

    @property
    def final(self) -> Tensor:
        """The confusion matrix of the predictions reported: with test-time augmentation when there is one."""
        return self.confusion_tta if self.confusion_tta is not None else self.confusion

    def per_class(self) -> list[float]:
        cm = self.final
        return (cm.diag().double() / cm.sum(1).clamp(min=1).double()).tolist()

    def __str__(self) -> str:
        lines = [f"test error: {100 * self.error:.2f}%"]
        if self.error_tta is not None:
            lines.append(f"test error with {self.tta} test-time augmentation: {100 * self.error_tta:.2f}%")
        lines.append("per-class accuracy:")
        lines += [f"  {name:>12} {100 * acc:6.2f}%" for name, acc in zip(self.class_names, self.per_class())]
        cm = self.final
        width = max(5, max(len(str(v)) for v in cm.flatten().tolist()) + 1)
        lines.append("confusion matrix (rows: true, columns: predicted):")
        lines.append(" " * 13 + "".join(f"{n[: width - 1]:>{width}}" for n in self.class_names))
        lines += [
            f"  {n:>10} " + "".join(f"{v:>{width}}" for v in row) for n, row in zip(self.class_names, cm.tolist())
        ]
        return "\n".join(lines)


def _sharded() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(n: int) -> tuple[int, int]:
    """This process's contiguous slice [lo, hi) of ``n`` images (all of them outside torchrun)."""
    rank, size = _sharded()
    return rank * n // size, (rank + 1) * n // size


def evaluate(
    predict: Predict, x: Tensor, y: Tensor, class_names: Sequence[str], tta: str = "none", batch_size: int = 500,
    crop: int | None = None,
) -> Evaluation:  # fmt: skip
    """Run ``predict`` over uint8 images ``x`` with labels ``y`` (``crop``: as in ``views``). Under torchrun every
    process must call it: each takes a contiguous slice and the confusion matrices are summed, so all return the
    same."""
    lo, hi = shard(len(y))
    batches = ((x[i : min(i + batch_size, hi)], y[i : min(i + batch_size, hi)]) for i in range(lo, hi, batch_size))
    return evaluate_batches(predict, batches, class_names, tta, crop)


@torch.no_grad()
def evaluate_batches(
    predict: Predict, batches: Iterable[tuple[Tensor, Tensor]], class_names: Sequence[str], tta: str = "none",
    crop: int | None = None,
) -> Evaluation:  # fmt: skip
    """``evaluate`` over this process's ``batches`` (uint8 images, labels), e.g. decoded from files as they
    come; under torchrun the confusion matrices of every process are summed."""
    _, size = _sharded()
    k = len(class_names)
    single = torch.zeros(k, k, dtype=torch.long)
    averaged = torch.zeros(k, k, dtype=torch.long) if tta != "none" else None
    for batch, labels in batches:
        labels = labels.cpu()
        one, many = views(batch, "none", crop)[0], views(batch, tta, crop)
        logits = [predict(v).float().cpu() for v in many]
        first = many[0]  # the single view itself, unless ten-crop had to resize the batch
        same = first.data_ptr() == one.data_ptr() and first.shape == one.shape and first.stride() == one.stride()
        single += _confusion((logits[0] if same else predict(one).float().cpu()).argmax(1), labels, k)
        if averaged is not None:
            averaged += _confusion(torch.stack(logits).mean(0).argmax(1), labels, k)
    if size > 1:
        both = torch.stack([single, averaged if averaged is not None else torch.zeros_like(single)])
        dist.all_reduce(both, op=dist.ReduceOp.SUM)
        single, averaged = both[0], (both[1] if averaged is not None else None)
    return Evaluation(single, list(class_names), tta, averaged)


def _confusion(pred: Tensor, y: Tensor, k: int) -> Tensor:
    return torch.bincount(y * k + pred, minlength=k * k).view(k, k)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for ``precision="bf16"``; nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def torch_predictor(model: nn.Module, normalize: Callable[[Tensor], Tensor], device: torch.device,
                    precision: str = "fp32") -> Predict:  # fmt: skip
    """A model as ``evaluate`` takes it: uint8 batch → logits, in eval mode (the mode is restored)."""

    def predict(batch: Tensor) -> Tensor:
        was_training = model.training
        model.eval()
        try:
            with autocast(device, precision):
                return model(normalize(batch.to(device)))
        finally:
            model.train(was_training)

    return predict
