"""What recorded metrics say (a run's ``metrics.json``, or the ``metrics`` of the shipped
weights' metadata), read in one place from every layout cifarzoo has written:

- since the single-pass headline: ``test_accuracy``/``val_accuracy`` are one forward pass, and
  ``tta`` (``"flip"``, ``"flip + translate"``, or ``None``) names the test-time augmentation of
  ``tta_test_accuracy``/``tta_val_accuracy``, recorded beside them;
- before it: ``test_accuracy``/``val_accuracy`` (and the per-class accuracy and confusion matrix)
  were measured with the run's test-time augmentation when one was on, and
  ``single_pass_test_accuracy``/``single_pass_val_accuracy`` held the single pass;
- ``benchmarks/gpu_recipe.py``'s earlier runs: a single-pass headline without TTA, and the TTA
  figures in a ``tta`` dict (``flip``, ``translate``, ``test_accuracy``, ``val_accuracy``);
- the model's constructor arguments in ``model_args``; ``benchmarks/lab_comparison.py``'s runs
  from before the models took ``conv_init`` recorded PyTorch's default start beside them, as
  ``conv_init: "pytorch-default"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..data import CIFAR10Data
from ..metrics import tta_views

__all__ = [
    "RecordedAccuracy",
    "recorded_accuracy",
    "recorded_bf16",
    "recorded_model_args",
    "recorded_seed_runs",
    "recorded_split",
    "recorded_tta",
]


@dataclass(frozen=True)
class RecordedAccuracy:
    """The recorded accuracies. ``test``/``val``: one forward pass, ``None`` when not recorded
    (runs from before it was, or no validation split); ``tta``: the test-time augmentation of
    ``tta_test``/``tta_val`` (``"flip"``, ``"flip + translate"``), ``None`` when none was
    measured; ``per_class_tta``: the test-time augmentation the recorded per-class accuracy and
    confusion matrix were measured with, ``None`` when they are one forward pass."""

    test: float | None
    val: float | None
    tta: str | None = None
    tta_test: float | None = None
    tta_val: float | None = None
    per_class_tta: str | None = None

    def fields(self) -> dict[str, Any]:
        """These accuracies under the names ``metrics.json`` gives them today."""
        return {
            "test_accuracy": self.test,
            "val_accuracy": self.val,
            "tta": self.tta,
            "tta_test_accuracy": self.tta_test,
            "tta_val_accuracy": self.tta_val,
        }


def _fraction(value: Any) -> float | None:
    return None if value is None else float(value)


def recorded_accuracy(metrics: Mapping[str, Any]) -> RecordedAccuracy:
    """The accuracies ``metrics`` records, whatever layout it was written in."""
    test, val = _fraction(metrics.get("test_accuracy")), _fraction(metrics.get("val_accuracy"))
    if "tta_test_accuracy" in metrics:  # written since the single-pass headline
        tta_test, tta_val = metrics["tta_test_accuracy"], metrics.get("tta_val_accuracy")
        tta = metrics.get("tta") if tta_test is not None or tta_val is not None else None
        return RecordedAccuracy(test, val, tta, _fraction(tta_test), _fraction(tta_val))
    extra = metrics.get("tta")
    if isinstance(extra, Mapping):  # gpu_recipe.py's single-pass headline, its TTA beside
        views = tta_views(bool(extra.get("flip")), bool(extra.get("translate"))) or None
        tta_test, tta_val = (
            _fraction(extra.get("test_accuracy")),
            _fraction(extra.get("val_accuracy")),
        )
        return RecordedAccuracy(test, val, views, tta_test, tta_val)
    measured_with = recorded_tta(metrics)
    single_test = _fraction(metrics.get("single_pass_test_accuracy"))
    single_val = _fraction(metrics.get("single_pass_val_accuracy"))
    if measured_with == (False, False):
        return RecordedAccuracy(
            single_test if test is None else test, single_val if val is None else val
        )
    if measured_with is None:  # how test_accuracy was measured is not recorded
        return RecordedAccuracy(single_test, single_val)
    tta = tta_views(*measured_with)
    return RecordedAccuracy(single_test, single_val, tta, test, val, per_class_tta=tta)


def recorded_seed_runs(metrics: Mapping[str, Any]) -> list[RecordedAccuracy]:
    """The accuracies of each run of ``metrics["seed_runs"]`` (the seeds the weights' recipe
    was trained with), read in the layout of ``metrics``."""
    if "tta_test_accuracy" in metrics:
        layout = {"tta": metrics.get("tta"), "tta_test_accuracy": None}
    else:
        layout = {k: metrics[k] for k in ("tta_flip", "tta_translate", "recipe") if k in metrics}
    return [recorded_accuracy({**layout, **run}) for run in metrics.get("seed_runs") or []]


def recorded_tta(metrics: Mapping[str, Any]) -> tuple[bool, bool] | None:
    """``(flip, translate)``: the test-time augmentation the recorded TTA accuracy was measured
    with (before the single-pass headline: the recorded accuracy itself): ``tta_flip`` and
    ``tta_translate`` (as :func:`~cifarzoo.runs.write_run` records them), else the recipe's;
    ``None`` if neither records one."""
    if metrics.get("tta_flip") is not None:
        return bool(metrics["tta_flip"]), bool(metrics.get("tta_translate") or False)
    recipe = metrics.get("recipe") or {}
    if "tta_flip" not in recipe:
        return None
    return bool(recipe["tta_flip"]), bool(recipe.get("tta_translate", False))


def recorded_bf16(metrics: Mapping[str, Any]) -> bool | None:
    """Whether the recorded accuracy was measured under bf16 autocast; ``None`` if that can't be
    told (``--amp auto`` recipes recorded without the device they ran on)."""
    bf16 = metrics.get("bf16")
    if isinstance(bf16, bool):
        return bf16
    amp = (metrics.get("recipe") or {}).get("amp")
    return amp if isinstance(amp, bool) else None


def recorded_split(data: CIFAR10Data, metrics: Mapping[str, Any]) -> CIFAR10Data:
    """``data`` (a whole training set, no validation split) with the validation split the
    training run that recorded ``metrics`` held out (the training images beyond the recorded
    ``train_images``, drawn with the recipe's seed), so that none of its validation images
    was trained on; unchanged when the run held none out of a training set of this size.

    Raises:
        ValueError: ``data`` already has a validation split.
    """
    if data.val is not None:
        raise ValueError(
            f"{data.name} already holds out {len(data.val):,} images for validation; the split a "
            "run held out is taken from the whole training set: pass the data without one "
            "(val_size=0)"
        )
    held_out = len(data.train) - int(metrics.get("train_images") or len(data.train))
    if held_out <= 0 or held_out >= len(data.train):
        return data
    return data.hold_out(held_out, seed=int((metrics.get("recipe") or {}).get("seed", 0)))


def recorded_model_args(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments the model was trained with (``{}`` when none were recorded),
    ``conv_init`` among them however it was recorded."""
    args = dict(metrics.get("model_args") or {})
    if metrics.get("conv_init") == "pytorch-default":
        args.setdefault("conv_init", "pytorch")
    return args
