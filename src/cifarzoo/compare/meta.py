"""The report's ``meta``: the setting every model of a comparison shares, and what each
measurement is, in words."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .. import __version__
from ..constants import CIFAR10_CLASSES
from ..data import CIFAR10Data
from ..runs import hardware_string

__all__ = ["measurement_notes", "recorded_setting", "report_meta"]


def report_meta(
    data: CIFAR10Data | None, dev: torch.device, recipe: dict[str, Any], *, epochs: int, seed: int
) -> dict[str, Any]:
    """The setting every model of the comparison shares: versions, device, data, recipe."""
    classes = data.classes if data is not None else CIFAR10_CLASSES
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cifarzoo_version": __version__,
        "torch_version": torch.__version__,
        "device": _device_name(dev),
        "data": None
        if data is None
        else {
            "name": data.name,
            "train": len(data.train),
            "val": None if data.val is None else len(data.val),
            "test": len(data.test),
            "eval_split": data.eval_split_name,
        },
        "classes": list(classes),
        "epochs": epochs,
        "seed": seed,
        "recipe": recipe,
    }


def recorded_setting(recorded: Sequence[Mapping[str, Any]], measured_on: str) -> dict[str, Any]:
    """Epochs, seed, recipe and hardware of models trained elsewhere, from what each training
    recorded (``metrics.json`` of a run, the ``metrics`` of shipped weights), for the report's
    meta: each where every model agrees, else ``None`` (the recipe: the fields they share, and
    the names of those that differ under ``"differs"``)."""
    from ..training import Recipe

    recipes = [m.get("recipe") or {} for m in recorded]

    def shared(values: Sequence[Any]) -> Any:
        return values[0] if values and all(v == values[0] for v in values) else None

    fields = [f.name for f in dataclasses.fields(Recipe)]
    recipe = {k: shared([r.get(k) for r in recipes]) for k in fields}
    differs = [
        k for k in fields if recipe[k] is None and any(r.get(k) is not None for r in recipes)
    ]
    return {
        "epochs": shared([m.get("epochs") for m in recorded]),
        "seed": recipe["seed"],
        "recipe": {**{k: v for k, v in recipe.items() if k not in differs}, "differs": differs},
        "device": shared([m.get("hardware") for m in recorded]) or "several machines",
        "measured_on": measured_on,
    }


def measurement_notes(dev: torch.device, train_eval_images: int) -> dict[str, str]:
    """What each measurement is, in words (``meta["notes"]``)."""
    return {
        "macs": "FlopCounterMode FLOPs / 2 for one 3x32x32 image: convolutions and matrix "
        "products only",
        "activations": "bytes of the tensors a training step keeps for its backward pass, "
        "per 3x32x32 image, in float32",
        "seconds_per_epoch": "wall-clock time of a training epoch plus its validation",
        "peak_memory": _memory_note(dev),
        "grad_flow": "L2 norm of each conv/linear weight gradient just before the "
        "optimizer step, every grad_flow.every steps",
        "se_gates": "SE gate values (sigmoid outputs) of each stage over test images, "
        "eval mode, after training",
        "train_eval": f"the first {train_eval_images:,} training images, unaugmented, "
        "eval mode, after the last epoch",
    }


def _device_name(dev: torch.device) -> str:
    """The machine, as ``cifarzoo train`` records it (``hardware`` in metrics.json), so that a
    report names trained and reused runs' machines and thread counts the same way."""
    return hardware_string(str(dev))


def _memory_note(dev: torch.device) -> str:
    if dev.type == "cuda":
        return (
            "torch.cuda.max_memory_allocated during SGD training steps at the training "
            "batch size, after a warm-up step (weights, gradients, optimizer state, "
            "activations; caching allocator excluded)"
        )
    return (
        "growth of the process's resident set size (RSS) during SGD training steps at the "
        "training batch size, after a warm-up step, sampled every 2 ms: an estimate"
    )
