"""CIFAR-10 facts shared by the models, the data pipeline and the weights' metadata, and the
license the weights are published under."""

from __future__ import annotations

#: Per-channel mean of the CIFAR-10 training images (RGB, pixel values scaled to [0, 1]).
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
#: Per-channel standard deviation of the CIFAR-10 training images. Not the widespread
#: (0.2023, 0.1994, 0.2010), which is the mean of per-image stds and under-scales inputs.
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = 10
IMAGE_SIZE = 32
#: The license of cifarzoo and of its weights (pyproject.toml's), as timm's pretrained_cfg and
#: the Hub's model cards spell it.
WEIGHTS_LICENSE = "apache-2.0"
