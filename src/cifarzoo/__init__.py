"""cifarzoo: a typed PyTorch model zoo for CIFAR-10, registered with timm.

``import cifarzoo`` registers every model with timm under a ``cifar_`` prefix, so both
``cifarzoo.resnet18()`` and ``timm.create_model('cifar_resnet18')`` work.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import layers, models
from .constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from .models import *  # noqa: F403  (every model factory, re-exported)
from .models import __all__ as _model_names

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "__version__",
    "layers",
    "models",
    *_model_names,
]
