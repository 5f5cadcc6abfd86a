"""cifarzoo: a typed PyTorch model zoo for CIFAR-10, registered with timm.

``import cifarzoo`` registers every model with timm under a ``cifar_`` prefix, so both
``cifarzoo.resnet18()`` and ``timm.create_model('cifar_resnet18')`` work.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import checkpoint, data, hub, layers, metrics, models, training
from .constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from .data import CIFAR10Data, DataFormatError, DeviceLoader, Split, load_cifar10
from .metrics import EvalResult, evaluate
from .models import *  # noqa: F403  (every model factory, re-exported)
from .models import __all__ as _model_names
from .pretrained import PretrainedWeightsError
from .training import History, NonFiniteLossError, Recipe, RunOptions, fit

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10Data",
    "DataFormatError",
    "DeviceLoader",
    "EvalResult",
    "History",
    "NonFiniteLossError",
    "PretrainedWeightsError",
    "Split",
    "Recipe",
    "RunOptions",
    "__version__",
    "checkpoint",
    "data",
    "evaluate",
    "fit",
    "hub",
    "layers",
    "load_cifar10",
    "metrics",
    "models",
    "training",
    *_model_names,
]
