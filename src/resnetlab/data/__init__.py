"""Datasets as whole uint8 tensors, and batched augmentation."""

from .augment import PadCropFlip, generator, pad_crop_flip
from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData, channel_stats
from .default import load_default
from .folder import load_image_folder
from .loader import EpochLoader
from .preprocess import normalizer
from .sources import load_data

__all__ = [
    "EpochLoader",
    "PadCropFlip",
    "ImageData",
    "channel_stats",
    "generator",
    "load_cifar10",
    "load_data",
    "load_default",
    "load_image_folder",
    "load_npz",
    "normalizer",
    "pad_crop_flip",
]
