"""Batched pad-crop-flip: shapes, determinism, correctness against a per-image reference."""

import torch
import torch.nn.functional as F

from resnetlab.data import generator, pad_crop_flip


def test_deterministic_given_key_and_shapes():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    a, b = pad_crop_flip(x, 4, True, generator(0, 1, 2)), pad_crop_flip(x, 4, True, generator(0, 1, 2))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, pad_crop_flip(x, 4, True, generator(0, 1, 3)))


def test_each_image_is_a_crop_of_its_padded_self_possibly_flipped():
    torch.manual_seed(0)
    x = torch.rand(32, 2, 6, 5)
    out = pad_crop_flip(x, 2, True, generator(7))
    padded = F.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(32):
        crops = [padded[i, :, r : r + 6, c : c + 5] for r in range(5) for c in range(5)]
        plain = any(torch.equal(out[i], crop) for crop in crops)
        mirrored = any(torch.equal(out[i], crop.flip(2)) for crop in crops)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 0 < flipped < 32


def test_no_flip_for_digits():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    for key in range(20):
        out = pad_crop_flip(x, 0, False, generator(key))
        assert torch.equal(out, x)
