"""The ImageNet transforms against their definitions: scale augmentation's shorter side and crop, random-resized
crop's area and aspect ranges (fallbacks counted), the evaluation crop, PCA lighting's covariance."""

import math
import os

import numpy as np
import torch
from PIL import Image

from resnetlab.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, generator, pca_lighting
from resnetlab.data.transforms import EvalTransform, RandomResizedCrop, ScaleAugment, sample_rng

SHAPES = [(500, 375), (375, 500), (224, 224), (1000, 200), (160, 120)]


def test_scale_augmentation_resizes_the_shorter_side_into_its_range_and_crops_inside():
    for size in (224, 128):
        aug, (lo, hi) = ScaleAugment(size), ScaleAugment(size).sides
        assert (lo, hi) == (round(256 * size / 224), round(480 * size / 224))
        sides = []
        for k in range(2000):
            width, height = SHAPES[k % len(SHAPES)]
            side, (left, top, right, bottom) = aug.box(width, height, np.random.default_rng(k))
            scale = side / min(width, height)
            w, h = max(side, round(width * scale)), max(side, round(height * scale))
            assert lo <= side <= hi and min(w, h) == side
            assert 0 <= left and right <= w and 0 <= top and bottom <= h and (right - left, bottom - top) == (size,) * 2
            sides.append(side)
        assert min(sides) == lo and max(sides) == hi  # both ends are drawn
    image = Image.fromarray(np.zeros((375, 500, 3), np.uint8))
    assert ScaleAugment(224)(image, np.random.default_rng(0)).shape == (224, 224, 3)


def test_random_resized_crop_keeps_its_ranges_except_counted_fallbacks():
    crop, fallbacks = RandomResizedCrop(224), 0
    for k in range(3000):
        width, height = SHAPES[k % len(SHAPES)]
        (left, top, right, bottom), fallback = crop.box(width, height, np.random.default_rng(k))
        w, h = right - left, bottom - top
        assert 0 <= left and right <= width and 0 <= top and bottom <= height and w > 0 and h > 0
        if fallback:  # torchvision's centre crop of the nearest allowed aspect ratio
            fallbacks += 1
            assert (left, top) == ((width - w) // 2, (height - h) // 2)
            continue
        # rounding w and h to pixels moves area and aspect slightly past the drawn values
        assert 0.08 * width * height * 0.97 - 2 * (w + h) <= w * h <= width * height
        assert 3 / 4 - 2 / min(w, h) <= w / h <= 4 / 3 + 2 / min(w, h)
    assert fallbacks < 0.05 * 3000  # rare for these shapes; the extreme 1000×200 is where they come from
    ten_to_one = [crop.box(1000, 100, np.random.default_rng(k)) for k in range(200)]
    fell_back = [box for box, f in ten_to_one if f]  # a 10:1 image often has no fitting draw in 10
    assert 20 < len(fell_back) < 180 and set(fell_back) == {(433, 0, 566, 100)}  # 4:3, centred


def test_the_evaluation_transform_resizes_then_crops_the_centre():
    assert EvalTransform.imagenet(224) == EvalTransform(256, 224) and EvalTransform.imagenet(128).resize == 146
    x = np.zeros((300, 400, 3), np.uint8)
    x[150, 200] = 255  # the centre pixel stays at the centre
    out = EvalTransform(256, 224)(Image.fromarray(x))
    assert out.shape == (224, 224, 3)
    y, xx = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert abs(y - 112) <= 1 and abs(xx - 112) <= 1


def test_training_draws_are_keyed_on_seed_epoch_and_file():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    aug = RandomResizedCrop(64)
    assert np.array_equal(aug(image, sample_rng(0, 1, 7)), aug(image, sample_rng(0, 1, 7)))
    assert not np.array_equal(aug(image, sample_rng(0, 1, 7)), aug(image, sample_rng(0, 2, 7)))


def test_pca_lighting_offsets_have_the_published_covariance():
    """Over 20,000 images: the per-image RGB offsets (on [0, 1] pixels) have covariance σ²·V·diag(λ²)·Vᵀ."""
    n, sigma = 20_000, 0.1
    std = torch.tensor([0.229, 0.224, 0.225])
    x = torch.zeros(n, 3, 2, 2)
    out = pca_lighting(x, std, generator(0, 3, 0, 0), sigma)
    offsets = (out[:, :, 0, 0] * std).double()  # undo the normalization's division
    assert torch.equal(out[:, :, 0, 0], out[:, :, 1, 1])  # one offset per image and channel
    v, lam = torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64), torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64)
    expected = sigma**2 * v @ torch.diag(lam**2) @ v.T
    got = torch.cov(offsets.T)
    assert torch.allclose(got, expected, atol=0.03 * expected.abs().max())
    assert offsets.mean(0).abs().max() < 4 * math.sqrt(expected.diagonal().max() / n)
    rows = pca_lighting(x[:4], std, generator(0, 3, 0, 0), sigma, batch=n, rows=slice(0, 4))
    assert torch.equal(rows, out[:4])  # a process's rows get the draws those rows get in one process


def test_both_decoders_give_the_same_crops_decoded_no_larger_than_needed(tmp_path):
    """A 480×360 JPEG with a bright square: every transform places it identically whether Pillow (draft) or
    simplejpeg decodes, whatever DCT scale serves the request; their pixels differ by rounding only."""
    from resnetlab.data.decode import Source, simplejpeg

    x = np.full((360, 480, 3), 60, np.uint8)
    x[120:240, 200:320] = 230
    path = tmp_path / "square.jpg"
    Image.fromarray(x).save(path, quality=95)
    assert Source(path, "pillow").decode(120, 90).size == (120, 90)  # 1/4 scale: a draft, not a full decode
    decoders = ["pillow"] + (["simplejpeg"] if simplejpeg is not None else [])
    if os.environ.get("CI") == "true":
        assert simplejpeg is not None, "CI installs the fast-jpeg extra"
    for transform in (EvalTransform(64, 56), ScaleAugment(56), RandomResizedCrop(56)):
        outs = [transform(Source(path, d), np.random.default_rng(3)).astype(int) for d in decoders]
        full = transform(Image.open(path).convert("RGB"), np.random.default_rng(3)).astype(int)  # no draft
        for out in outs:
            assert out.shape == full.shape and np.abs(out - full).mean() < 6
            assert np.array_equal(out > 145, full > 145) or np.mean((out > 145) != (full > 145)) < 0.03


def test_without_simplejpeg_pillow_decodes(tmp_path, monkeypatch):
    """The fast-jpeg extra is optional: without it (or with RESNETLAB_DECODER=pillow) Pillow serves."""
    from resnetlab.data import decode

    path = tmp_path / "x.jpg"
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(path)
    monkeypatch.setattr(decode, "simplejpeg", None)
    monkeypatch.delenv("RESNETLAB_DECODER", raising=False)
    assert decode.default_decoder() == "pillow"
    monkeypatch.setenv("RESNETLAB_DECODER", "simplejpeg")  # asked for, but absent: Pillow
    assert decode.Source(path).decoder == "pillow"
    assert EvalTransform(32, 32)(decode.Source(path)).shape == (32, 32, 3)
