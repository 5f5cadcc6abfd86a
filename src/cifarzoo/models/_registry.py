"""Registration of cifarzoo models with timm, and cifarzoo's own model lookup.

Every factory is exposed twice: under its plain name in cifarzoo (``cifarzoo.resnet18``) and in
timm's registry under ``cifar_<name>`` (``timm.create_model('cifar_resnet18')``). The prefix is
required: timm already owns ``resnet18``, ``densenet121`` and ``seresnet18`` (ImageNet models).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import timm
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ..constants import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE, NUM_CLASSES

__all__ = ["TIMM_PREFIX", "build", "cifar_cfg", "create_model", "list_models", "register"]

TIMM_PREFIX = "cifar_"

ModelT = TypeVar("ModelT", bound=nn.Module)
Factory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=Factory)

_FACTORIES: dict[str, Factory] = {}


def cifar_cfg(**overrides: Any) -> dict[str, Any]:
    """A timm pretrained_cfg for a CIFAR-10 model: 32x32 input, no resize or crop, CIFAR-10
    statistics. timm's defaults are ImageNet's, so every field a transform reads is set here."""
    cfg: dict[str, Any] = {
        "num_classes": NUM_CLASSES,
        "input_size": (3, IMAGE_SIZE, IMAGE_SIZE),
        "pool_size": None,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bilinear",
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "license": "apache-2.0",
    }
    cfg.update(overrides)
    return cfg


def register(fn: FactoryT) -> FactoryT:
    """Register a factory with timm as ``cifar_<name>`` and with cifarzoo under ``<name>``.

    The factory's module must define ``default_cfgs`` (from ``generate_default_cfgs``) with a
    ``cifar_<name>`` entry above the decorated function: timm reads it at registration.
    """
    timm_name = TIMM_PREFIX + fn.__name__

    @functools.wraps(fn)
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return fn(pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name
    # timm lists the entrypoint in the module's __all__, so the module must really have it.
    setattr(sys.modules[fn.__module__], timm_name, entrypoint)
    register_model(entrypoint)
    _FACTORIES[fn.__name__] = fn
    return fn


def build(
    model_cls: Callable[..., ModelT], variant: str, pretrained: bool = False, **kwargs: Any
) -> ModelT:
    """Build ``model_cls`` through timm, which resolves the pretrained_cfg of ``variant``
    (``cifar_<name>[.tag]``), passes ``num_classes``/``in_chans`` and loads the weights."""
    return build_model_with_cfg(model_cls, variant, pretrained, **kwargs)


def _strip_prefix(name: str) -> str:
    return name[len(TIMM_PREFIX) :] if name.startswith(TIMM_PREFIX) else name


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Names of cifarzoo models (without the ``cifar_`` prefix) matching a glob ``pattern``.

    With ``pretrained=True`` only models with published weights are listed.
    """
    pattern = _strip_prefix(pattern)
    if pretrained:
        with_weights = {
            _strip_prefix(n).split(".")[0]
            for n in timm.list_models(TIMM_PREFIX + "*", pretrained=True)
        }
        names = [n for n in _FACTORIES if n in with_weights]
    else:
        names = list(_FACTORIES)
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Create a cifarzoo model by name, with or without the ``cifar_`` prefix and with an
    optional weights tag (``resnet20.tag``). Keyword arguments go to the model (``num_classes``,
    ``in_chans``, ``drop_rate``...) and to timm (``pretrained_cfg_overlay``, ``cache_dir``...).
    """
    arch, _, tag = _strip_prefix(name).partition(".")
    if arch not in _FACTORIES:
        close = difflib.get_close_matches(arch, list(_FACTORIES), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown cifarzoo model {name!r}.{hint} "
            "See cifarzoo.list_models() (or `cifarzoo list`) for all names."
        )
    timm_name = TIMM_PREFIX + arch + (f".{tag}" if tag else "")
    return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
