""":func:`compare`: train (or read) each model and collect every number of the comparison, and
the data it can run on (:func:`synthetic_data`, :func:`subset_train`).

The steps, one module each: :mod:`~cifarzoo.compare.trained` (the models trained here),
:mod:`~cifarzoo.compare.reused` (the run folders read instead),
:mod:`~cifarzoo.compare.evaluation` (what is measured of each after training) and
:mod:`~cifarzoo.compare.meta` (the setting they share, and what each measurement is).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..constants import NUM_CLASSES
from ..data import CIFAR10Data, Split, load_cifar10, stratified_split
from ..devices import resolve_amp, resolve_device
from .evaluation import Evaluation
from .findings import MIN_EPOCHS
from .meta import measurement_notes, recorded_setting, report_meta
from .results import ComparisonReport, ModelReport
from .reused import read_run, runs_setting
from .shipped import choose_weights, read_shipped
from .trained import GRAD_RECORDS, train_models

__all__ = [
    "COMPARE_RECIPE",
    "DEFAULT_MODELS",
    "GATE_IMAGES",
    "GRAD_RECORDS",
    "LAB_MODELS",
    "VAL_SIZE",
    "ComparisonReport",
    "ModelReport",
    "compare",
    "subset_train",
    "synthetic_data",
]

#: Small enough to compare on a CPU in minutes per epoch.
DEFAULT_MODELS: tuple[str, ...] = ("lenet", "resnet20", "seresnet20", "densenet_bc_100_k12")
#: The lab's own four networks (``benchmarks/lab_four.py`` trains them on a CPU in hours).
LAB_MODELS: tuple[str, ...] = ("lenet", "resnet18", "densenet121", "seresnet18")

#: Training images :func:`compare` holds out for validation by default.
VAL_SIZE = 5_000
#: Test images on which :func:`compare` measures the SE gates by default.
GATE_IMAGES = 1_000

#: Training images on which :func:`compare` measures the final training error by default.
TRAIN_EVAL_IMAGES = 10_000
#: The same for shipped weights, whose report is meant to take minutes on a CPU: the training
#: error of a well-trained network is near 0, and 2,000 images measure it to a few tenths.
SHIPPED_TRAIN_EVAL_IMAGES = 2_000

#: :class:`~cifarzoo.training.Recipe` and :class:`~cifarzoo.training.RunOptions` fields that
#: :func:`compare` changes from their defaults: no EMA and no flip TTA, so the curves, the test
#: evaluation and the gate values all see the same weights the same way (and, on a CPU,
#: ``channels_last=False``, which is faster there). Any other field can be passed to
#: :func:`compare`.
COMPARE_RECIPE: dict[str, Any] = {"ema_decay": 0.0, "tta_flip": False}

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def synthetic_data(
    num_train: int = 256, num_test: int = 128, *, val_size: int = 0, seed: int = 0
) -> CIFAR10Data:
    """Random CIFAR-10-shaped data that a network can learn a little: each class has its own
    mean colour pattern, plus noise. For tests, examples and smoke runs (not a benchmark)."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(NUM_CLASSES, 3, 8, 8, generator=g) * 160 + 48

    def make(n: int) -> Split:
        labels = torch.arange(n) % NUM_CLASSES
        labels = labels[torch.randperm(n, generator=g)]
        base = patterns[labels].repeat_interleave(4, 2).repeat_interleave(4, 3)
        noise = torch.randn(n, 3, 32, 32, generator=g) * 40
        return Split((base + noise).clamp(0, 255).to(torch.uint8), labels)

    data = CIFAR10Data(train=make(num_train + val_size), test=make(num_test), name="synthetic")
    return data.hold_out(val_size, seed=seed) if val_size else data


def subset_train(data: CIFAR10Data, num_train: int, seed: int = 0) -> CIFAR10Data:
    """``data`` with a stratified (class-balanced, seeded) subset of ``num_train`` training
    images, for quick comparisons (all of them when ``num_train`` is their number).

    Raises:
        ValueError: ``num_train`` is more than the training images.
    """
    if num_train > len(data.train):
        raise ValueError(
            f"cannot take {num_train:,} training images of {data.name}: it has "
            f"{len(data.train):,} (CLI: --train-subset)"
        )
    if num_train == len(data.train):
        return data
    _, keep = stratified_split(data.train.labels, num_train, seed=seed)
    return dataclasses.replace(data, train=data.train.subset(keep))


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def _load_data(
    data: CIFAR10Data | str | os.PathLike[str] | None, val_size: int, seed: int
) -> CIFAR10Data:
    if isinstance(data, CIFAR10Data):
        return data
    return load_cifar10(data, val_size=val_size, seed=seed)


def compare(
    models: Sequence[str] | None = None,
    data: CIFAR10Data | str | os.PathLike[str] | None = None,
    *,
    epochs: int = MIN_EPOCHS,
    seed: int = 0,
    device: torch.device | str | None = None,
    out: str | os.PathLike[str] | None = None,
    runs: Sequence[str | os.PathLike[str]] = (),
    pretrained: Sequence[str] = (),
    val_size: int = VAL_SIZE,
    grad_every: int | None = None,
    gate_images: int = GATE_IMAGES,
    train_eval_images: int | None = None,
    model_args: Mapping[str, Any] | None = None,
    quiet: bool = False,
    **fit_kwargs: Any,
) -> ComparisonReport:
    """Train ``models`` with one recipe and measure them side by side.

    Args:
        models: model names to train (``cifarzoo.list_models()``); default
            :data:`DEFAULT_MODELS`, none when given ``runs`` or ``pretrained``.
        data: a :class:`~cifarzoo.data.CIFAR10Data`, or a data root to read with
            ``val_size`` validation images held out of the training set.
        epochs: per model; default :data:`MIN_EPOCHS`, the fewest the report concludes from.
        seed: seed of the initialization, the data order and the augmentation (the same for
            every model).
        device: ``"cuda"``/``"cpu"``; default CUDA when available.
        out: when given, :func:`~cifarzoo.compare.write_report` writes the report there.
        runs: output folders of earlier ``cifarzoo train`` runs (``history.json``,
            ``metrics.json``, ``model.safetensors``, and ``grad_flow.json`` when the run
            recorded one) to include instead of training; their peak memory is not measured.
        pretrained: shipped weights to evaluate instead of training (``resnet18``,
            ``lenet.lab``: :func:`~cifarzoo.compare.shipped.choose_weights`), with the curves of
            their shipped training records, each on the validation split its training held
            out, in bf16 autocast where fast (``amp=False``: float32); not with ``models``.
        grad_every: record gradient norms every this many steps (default: about 40 records).
        gate_images: test images over which SE gate values are recorded.
        train_eval_images: training images (unaugmented, eval mode) on which the final training
            error is measured; 0 skips it. Default :data:`TRAIN_EVAL_IMAGES`, and
            :data:`SHIPPED_TRAIN_EVAL_IMAGES` for shipped weights (a report in minutes).
        model_args: constructor arguments for every trained model that takes them, e.g.
            ``{"zero_init_residual": False}`` to initialise residual and plain networks alike.
        quiet: no progress output.
        fit_kwargs: fields of :class:`~cifarzoo.training.Recipe` and
            :class:`~cifarzoo.training.RunOptions` (``lr``, ``batch_size``, ``amp``...),
            on top of :data:`COMPARE_RECIPE`.
    """
    models = _check_request(models, runs, pretrained, epochs)
    if train_eval_images is None:
        train_eval_images = SHIPPED_TRAIN_EVAL_IMAGES if pretrained else TRAIN_EVAL_IMAGES
    shipped = choose_weights(pretrained)  # bad names fail before the data is read
    dev = resolve_device(device)
    needs_data = models or shipped or data is not None
    loaded = _load_data(data, 0 if shipped else val_size, seed) if needs_data else None
    recipe = _compare_recipe(fit_kwargs, dev)
    measure = None
    if loaded is not None:
        tta_flip = bool(recipe.get("tta_flip", False))
        measure = Evaluation(loaded, dev, tta_flip, gate_images, train_eval_images, quiet)
    reports = []
    if models and measure is not None:  # there is data when there are models
        train = {"epochs": epochs, "seed": seed, "grad_every": grad_every, "quiet": quiet}
        reports = train_models(models, measure, recipe, model_args or {}, **train)
    reports += [read_run(Path(folder), measure) for folder in runs]
    meta = report_meta(loaded, dev, recipe, epochs=epochs, seed=seed)
    if runs and not models:  # nothing trained here: the setting is the runs'
        meta.update(runs_setting([Path(folder) for folder in runs], meta["device"]))
    if shipped and measure is not None:
        fast = dataclasses.replace(measure, amp=resolve_amp(recipe.get("amp"), dev))
        reports += [read_shipped(weights, fast) for weights in shipped]
        meta.update(_shipped_setting(meta, reports, fast.amp))
    meta["notes"] = measurement_notes(dev, train_eval_images)
    report = ComparisonReport(reports, meta)
    if out is not None:
        from .report import write_report

        write_report(report, out)
    return report


def _compare_recipe(fit_kwargs: Mapping[str, Any], dev: torch.device) -> dict[str, Any]:
    recipe = {**COMPARE_RECIPE, **fit_kwargs}
    if dev.type == "cpu":
        # Same numbers, but channels_last convolutions are up to 2x slower on CPUs.
        recipe.setdefault("channels_last", False)
    return recipe


def _shipped_setting(
    meta: Mapping[str, Any], reports: Sequence[ModelReport], amp: bool
) -> dict[str, Any]:
    """The setting of a comparison of shipped weights: their training's, as their metadata
    records it (the reports' ``weights``), how they were evaluated here, and the data with the
    split they held out."""
    trained = [m.weights for m in reports if m.weights is not None]
    setting = recorded_setting(trained, meta["device"])
    setting["evaluation"] = "bf16 autocast" if amp else "float32"
    setting["data"] = _shipped_data(meta["data"], reports)
    return setting


def _shipped_data(data: dict[str, Any], reports: Sequence[ModelReport]) -> dict[str, Any]:
    """The report's ``data`` when shipped weights were evaluated: with the split they all held
    out, when it is one size (else each has its own, and ``val`` stays ``None``)."""
    trained_on = {int((m.weights or {}).get("train_images") or 0) for m in reports}
    train = trained_on.pop() if len(trained_on) == 1 else 0
    if not 0 < train < data["train"]:
        return data
    return {**data, "train": train, "val": data["train"] - train, "eval_split": "val"}


def _check_request(
    models: Sequence[str] | None,
    runs: Sequence[str | os.PathLike[str]],
    pretrained: Sequence[str],
    epochs: int,
) -> Sequence[str]:
    """The models to train (the default ones unless runs or shipped weights are given), once
    the request is checked."""
    if models is None:
        models = () if runs or pretrained else DEFAULT_MODELS
    if not models and not runs and not pretrained:
        raise ValueError("nothing to compare: give model names, run folders or shipped weights")
    if pretrained and (models or runs):
        raise ValueError(
            "shipped weights are compared on their own (each is evaluated with the validation "
            "split its training held out): drop the model names and run folders, or compare "
            "them in a report of their own"
        )
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return models
