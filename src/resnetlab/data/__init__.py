"""Datasets as whole uint8 tensors, and batched augmentation."""

from .augment import generator, pad_crop_flip
from .cifar10 import load_cifar10, load_npz
from .dataset import ImageData, channel_stats
from .default import load_default
from .folder import load_image_folder
from .sources import load_data

__all__ = [
    "ImageData",
    "channel_stats",
    "generator",
    "load_cifar10",
    "load_data",
    "load_default",
    "load_image_folder",
    "load_npz",
    "pad_crop_flip",
]
