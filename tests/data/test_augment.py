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


def _flipped(loader, epoch):
    """Each image's mirroring in ``epoch`` (images are their own index in a left-right asymmetric ramp)."""
    state = {}
    for _, x, y in loader.batches(epoch):
        for image, label in zip(x, y):
            state[int(label)] = bool(image[0, 0, 0] > image[0, 0, -1])  # the ramp rises left to right
    return state


def test_alternating_flips_show_each_image_both_ways_every_two_epochs():
    from resnetlab.data import EpochLoader, PadCropFlip

    n = 64
    x = (torch.arange(5).view(1, 1, 1, 5) + 10 * torch.arange(n).view(n, 1, 1, 1)).expand(n, 3, 4, 5).contiguous()
    y = torch.arange(n)
    alternate = EpochLoader(x, y, 16, seed=3, augment=PadCropFlip(pad=0, alternate=True))
    first, second, third = (_flipped(alternate, e) for e in range(3))
    assert 16 < sum(first.values()) < 48  # a random half, about
    assert all(second[i] != first[i] and third[i] == first[i] for i in range(n))
    drawn = EpochLoader(x, y, 16, seed=3, augment=PadCropFlip(pad=0))  # random: views repeat across epochs
    assert sum(_flipped(drawn, 0)[i] == _flipped(drawn, 1)[i] for i in range(n)) > 16
    halves = [EpochLoader(x, y, 16, 3, PadCropFlip(pad=0, alternate=True), rank, 2) for rank in (0, 1)]
    for (_, a, _), (_, b, _), (_, whole, _) in zip(*(h.batches(1) for h in halves), alternate.batches(1)):
        assert torch.equal(torch.cat([a, b]), whole)  # each process gets its rows' flips
