"""torchvision's weights convention: ``weights="DEFAULT"`` and a small weights object with
``transforms()`` and ``meta["categories"]``, both backed by the registry's pretrained_cfg."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import timm

from ..pretrained import PretrainedWeightsError, read_weights_meta
from ._cfgs import TIMM_PREFIX, strip_prefix

__all__ = ["DEFAULT_WEIGHTS", "Weights", "get_weights"]

#: ``weights=`` value for a model's default pretrained weights (torchvision's spelling).
DEFAULT_WEIGHTS = "DEFAULT"


@dataclass(frozen=True)
class Weights:
    """A model's published weights, described as torchvision's weights enums describe theirs:
    ``cifarzoo.resnet20(weights=w)`` loads them, ``w.transforms()`` prepares a PIL image for
    them and ``w.meta["categories"]`` names their classes. ``name`` is timm's
    (``cifar_resnet20.c10``); :func:`get_weights` gives a model's default ones."""

    name: str

    @property
    def arch(self) -> str:
        """The architecture the weights are for (``resnet20``)."""
        return strip_prefix(self.name.partition(".")[0])

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        cfg = timm.models.get_pretrained_cfg(self.name)
        if cfg is None:
            raise PretrainedWeightsError(f"timm has no pretrained_cfg {self.name!r}")
        resolved: dict[str, Any] = cfg.to_dict()  # type: ignore[no-untyped-call,unused-ignore]
        return resolved

    def transforms(self) -> Callable[[Any], Any]:
        """timm's evaluation transform for these weights: PIL image -> normalized 3x32x32
        tensor (resized and centre-cropped to 32x32, CIFAR-10 mean and std)."""
        from timm.data.config import resolve_data_config
        from timm.data.transforms_factory import create_transform

        cfg = self.pretrained_cfg
        config = resolve_data_config(pretrained_cfg=cfg)  # type: ignore[no-untyped-call,unused-ignore]
        transform: Callable[[Any], Any] = create_transform(**config)
        return transform

    @property
    def meta(self) -> dict[str, Any]:
        """``categories`` (the class names, in output order), ``description``, ``num_params``
        and ``metrics`` (the recorded accuracies and how they were measured)."""
        tag = self.name.partition(".")[2] or None
        cfg, recorded = self.pretrained_cfg, read_weights_meta(self.arch, tag=tag) or {}
        return {
            "categories": list(cfg.get("label_names") or ()),
            "description": cfg.get("description"),
            "num_params": recorded.get("num_params"),
            "metrics": recorded.get("metrics") or {},
        }


def get_weights(model: str) -> Weights:
    """The default pretrained weights of ``model`` (``resnet20`` or ``cifar_resnet20``), which
    ``weights="DEFAULT"`` loads.

    Raises:
        PretrainedWeightsError: the model has no published weights (``cifarzoo list`` marks
            the models that do).
    """
    arch = strip_prefix(model.partition(".")[0])
    if not timm.is_model(TIMM_PREFIX + arch):
        raise ValueError(f"Unknown cifarzoo model {model!r}; see `cifarzoo list` for all names.")
    cfg = timm.models.get_pretrained_cfg(TIMM_PREFIX + arch)
    if cfg is None or not cfg.has_weights:
        raise PretrainedWeightsError(
            f"{arch} has no published pretrained weights yet (`cifarzoo list` marks the models "
            "that have them)."
        )
    return Weights(f"{TIMM_PREFIX}{arch}.{cfg.tag}" if cfg.tag else TIMM_PREFIX + arch)
