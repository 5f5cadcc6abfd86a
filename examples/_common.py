"""Shared by the examples: where the data comes from, and the fast mode the tests use.

``CIFARZOO_EXAMPLE_FAST=1`` makes every example tiny (synthetic data, one short epoch); without
it the examples read CIFAR-10 from ``$CIFARZOO_DATA`` (or ``~/.cache/cifarzoo``) and fall back
to synthetic data, with a message, when it is not there.
"""

from __future__ import annotations

import os

from cifarzoo.compare import subset_train, synthetic_data
from cifarzoo.data import CIFAR10Data, load_cifar10

FAST = os.environ.get("CIFARZOO_EXAMPLE_FAST", "") not in ("", "0")


def get_data(train_images: int | None = None) -> CIFAR10Data:
    """CIFAR-10 with 5,000 validation images (optionally a class-balanced training subset),
    or small synthetic data in fast mode or when CIFAR-10 is not found."""
    if not FAST:
        try:
            data = load_cifar10(val_size=5000, name=os.environ.get("CIFARZOO_DATA_NAME"))
        except FileNotFoundError:
            print(
                "CIFAR-10 not found (set CIFARZOO_DATA to its root, or fetch it once with "
                "`python -c 'import cifarzoo; cifarzoo.load_cifar10(download=True)'`); using "
                "synthetic data instead."
            )
        else:
            return data if train_images is None else subset_train(data, train_images)
    return synthetic_data(256, 128, val_size=64)
