"""Per-image transforms of the ImageNet recipes, applied to each decoded file in the worker processes: the
paper's scale augmentation (Sec. 3.4), torchvision's random-resized crop, and the evaluation transform
(resize, centre crop). Each training draw comes from a generator keyed on (seed, epoch, file), so that what
a file becomes does not depend on which worker decodes it, nor when."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch import Tensor

from .decode import Source

BILINEAR = Image.Resampling.BILINEAR  # PIL's resize filters the whole footprint: antialiased downscaling

# torchvision's per-channel normalization of ImageNet (its ``Normalize`` in every reference recipe), on the
# [0, 1] scale. The paper subtracts the per-pixel mean instead (Sec. 3.4, after Krizhevsky et al.); a
# per-channel mean and std is what every reproduction and every pretrained torchvision ResNet uses.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sample_rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    """The draws of file ``row`` of the listing in ``epoch``."""
    return np.random.default_rng([seed, 2, epoch, row])


def _resized_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of an image of the given size with its shorter side resized to ``side``."""
    scale = side / min(width, height)
    return max(side, round(width * scale)), max(side, round(height * scale))


def _shorter_side_to(image: Image.Image | Source, side: int) -> Image.Image:
    """Decoded no larger than needed (``decode.Source``), then resized: the output's size is computed on the
    file's own size, so it does not depend on the scale the decoder chose."""
    source = image if isinstance(image, Source) else Source(image)
    size = _resized_size(*source.size, side)
    return source.decode(*size).resize(size, BILINEAR)


@dataclass(frozen=True)
class EvalTransform:
    """Shorter side to ``resize`` (bilinear, antialiased), centre crop ``crop`` (torchvision's ImageNet
    evaluation: 256 then 224, ``resize`` = round(crop / 0.875)). The crop is taken from the centre
    resize×resize square, which is what evaluation decodes (ten-crop testing crops its corners): the same
    pixels as torchvision's Resize + CenterCrop up to a one-pixel offset along the longer side.
    ``resize == crop`` is the folder source's transform before the ImageNet recipes."""

    resize: int
    crop: int
    interpolation: str = "bilinear"

    @classmethod
    def imagenet(cls, crop: int) -> EvalTransform:
        return cls(round(crop / 0.875), crop)

    @classmethod
    def of(cls, meta: dict, crop: int) -> EvalTransform:
        """A checkpoint's or exported file's transform (``meta["eval_transform"]``); before it was recorded,
        the shorter side straight to the model's input size ``crop``."""
        recorded = meta.get("eval_transform")
        return cls(int(recorded["resize"]), int(recorded["crop"])) if recorded else cls(crop, crop)

    @property
    def square(self) -> EvalTransform:
        """The centre resize×resize square, uncropped: what evaluation decodes."""
        return EvalTransform(self.resize, self.resize)

    def to_json(self, mean: Sequence[float], std: Sequence[float]) -> dict:
        """As checkpoints and exported files record it, with the normalization that follows it."""
        return {"resize": self.resize, "crop": self.crop, "interpolation": self.interpolation,
                "mean": list(mean), "std": list(std)}  # fmt: skip

    def __call__(self, image: Image.Image | Source, rng: np.random.Generator | None = None) -> np.ndarray:
        im = _shorter_side_to(image, self.resize)
        w, h = im.size
        inset = (self.resize - self.crop) // 2  # of the crop in the centre square
        left, top = (w - self.resize) // 2 + inset, (h - self.resize) // 2 + inset
        return np.array(im.crop((left, top, left + self.crop, top + self.crop)), dtype=np.uint8)


def centre_crop(x: Tensor, size: int) -> Tensor:
    """The centre size×size of a batch (N, C, H, W) decoded at ``EvalTransform.square``: the crop
    ``EvalTransform.__call__`` takes."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class ScaleAugment:
    """Sec. 3.4: "The image is resized with its shorter side randomly sampled in [256, 480] for scale
    augmentation. A 224×224 crop is randomly sampled from an image or its horizontal flip". For a crop size S
    the range scales with it: [256·S/224, 480·S/224]."""

    size: int
    flip: bool = True

    @property
    def sides(self) -> tuple[int, int]:
        return round(256 * self.size / 224), round(480 * self.size / 224)

    def box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, tuple[int, int, int, int]]:
        """(shorter side, (left, top, right, bottom) of the crop in the resized image)."""
        lo, hi = self.sides
        side = int(rng.integers(lo, hi + 1))
        scale = side / min(width, height)
        w, h = max(side, round(width * scale)), max(side, round(height * scale))
        left, top = int(rng.integers(0, w - self.size + 1)), int(rng.integers(0, h - self.size + 1))
        return side, (left, top, left + self.size, top + self.size)

    def __call__(self, image: Image.Image | Source, rng: np.random.Generator) -> np.ndarray:
        source = image if isinstance(image, Source) else Source(image)
        side, box = self.box(*source.size, rng)
        out = _shorter_side_to(source, side).crop(box)
        if self.flip and rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.array(out, dtype=np.uint8)


@dataclass(frozen=True)
class RandomResizedCrop:
    """torchvision's RandomResizedCrop (timm's default too): a crop of a random area in ``scale`` of the image's
    and a log-uniform aspect ratio in ``ratio``, resized to size×size, then a horizontal flip; after 10 draws
    that do not fit, the centre crop of the nearest allowed aspect ratio (torchvision's fallback)."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def box(self, width: int, height: int, rng: np.random.Generator) -> tuple[tuple[int, int, int, int], bool]:
        """((left, top, right, bottom), whether it is the fallback centre crop)."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                return (left, top, left + w, top + h), False
        ratio = width / height
        if ratio < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif ratio > max(self.ratio):
            w, h = round(height * max(self.ratio)), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return (left, top, left + w, top + h), True

    def __call__(self, image: Image.Image | Source, rng: np.random.Generator) -> np.ndarray:
        source = image if isinstance(image, Source) else Source(image)
        (width, height), ((left, top, right, bottom), _) = source.size, self.box(*source.size, rng)
        # decoded at no less than the resolution the crop is resized to, the box scaled to the decoded size
        need = (math.ceil(width * self.size / (right - left)), math.ceil(height * self.size / (bottom - top)))
        decoded = source.decode(*need)
        fx, fy = decoded.size[0] / width, decoded.size[1] / height
        out = decoded.resize((self.size, self.size), BILINEAR, box=(left * fx, top * fy, right * fx, bottom * fy))
        if self.flip and rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.array(out, dtype=np.uint8)


TRAIN_TRANSFORMS = {"scale": ScaleAugment, "random-resized-crop": RandomResizedCrop}  # --augment, per file
