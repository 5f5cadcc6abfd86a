"""What a Hub repository folder is built from (:class:`HubSource`): a ``cifarzoo train`` run
(:func:`run_source`) or weights shipped in the package (:func:`shipped_source`), each checked
against its sha256 before anything is built from it. :mod:`cifarzoo.hub` builds the folder, its
timm ``config.json`` and its model card from either in the same way.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from .checkpoint import json_text, verify_sha256
from .constants import CIFAR10_CLASSES, NUM_CLASSES
from .models import TIMM_PREFIX, create_model
from .pretrained import (
    PACKAGED_WEIGHTS_DIR,
    SHA256_NOTE,
    PretrainedWeightsError,
    list_weights,
    read_training_record,
    shipped_weights,
    weights_name,
)
from .runs import GRAD_FLOW_FILE, HISTORY_FILE, MARKER, read_run

__all__ = ["HubFile", "HubSource", "per_class_accuracy", "run_source", "shipped_source"]

#: What the model card's file list says of a training record's files.
_HISTORY_ABOUT = "the training run's per-epoch loss, accuracy and learning rate"
_GRAD_FLOW_ABOUT = "the training run's gradient norm of each layer, every `every` steps"


class HubFile(NamedTuple):
    """A file of a Hub folder besides the weights, ``config.json`` and model card: its name,
    the file to copy or the bytes to write, and what the card's file list says of it (``None``:
    not listed, as the curves, which the card shows)."""

    name: str
    content: Path | bytes
    about: str | None = None


@dataclass(frozen=True)
class HubSource:
    """What a Hub folder is built from: the weights file and the sha256 it was checked
    against, the metrics measured with it (in the layout of a run's ``metrics.json``, which
    :func:`~cifarzoo.runs.recorded_accuracy` reads), the dtype its floating-point tensors are
    stored in, a loader of the model with these weights (checked again as they load), and the
    folder's other files. ``tag`` is the tag of shipped weights (``None`` for a run)."""

    arch: str
    weights: Path
    sha256: str
    metrics: dict[str, Any]
    weights_dtype: str
    load_model: Callable[[], nn.Module]
    files: tuple[HubFile, ...] = ()
    tag: str | None = None
    num_classes: int = NUM_CLASSES
    recipe: Any = None

    @property
    def timm_name(self) -> str:
        return TIMM_PREFIX + self.arch

    @property
    def curves(self) -> list[str]:
        """The names of the PNG curves among :attr:`files`."""
        return [f.name for f in self.files if f.name.endswith(".png")]


def per_class_accuracy(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(class, accuracy)`` of the recorded ``per_class_accuracy`` (a dict, or a list in the
    order of ``classes``, else CIFAR-10's); empty when none is recorded."""
    per_class = metrics.get("per_class_accuracy")
    if isinstance(per_class, dict):
        return [(str(k), float(v)) for k, v in per_class.items()]
    if isinstance(per_class, list):
        names = metrics.get("classes") or CIFAR10_CLASSES
        return [(str(n), float(v)) for n, v in zip(names, per_class, strict=False)]
    return []


def run_source(run_dir: str | os.PathLike[str]) -> HubSource:
    """A ``cifarzoo train`` output folder, read and checked by :func:`~cifarzoo.runs.read_run`:
    its weights, ``metrics.json``, ``history.json`` and ``grad_flow.json`` (when it has them)
    and PNG curves."""
    run = read_run(run_dir)
    files = [HubFile(MARKER, run.metrics_file, "everything the training run measured")]
    for name, about in ((HISTORY_FILE, _HISTORY_ABOUT), (GRAD_FLOW_FILE, _GRAD_FLOW_ABOUT)):
        if (run.run_dir / name).is_file():
            files.append(HubFile(name, run.run_dir / name, about))
    files += [HubFile(curve.name, curve) for curve in run.curves]
    return HubSource(
        run.arch,
        run.weights,
        run.sha256,
        run.metrics,
        _stored_dtype(run.weights),
        run.load_model,
        tuple(files),
        num_classes=run.num_classes,
        recipe=run.recipe,
    )


def shipped_source(name: str, *, weights_dir: str | os.PathLike[str] | None = None) -> HubSource:
    """Weights shipped in the package (or in the weights folder ``weights_dir``), named
    ``ARCH.TAG`` or ``ARCH`` for the architecture's default weights (``cifar_`` prefix
    optional): the weights checked against the sha256 of their metadata, the metadata's
    ``metrics`` as ``metrics.json`` and, when they carry a training record (checked against its
    own sha256), its ``history.json``, ``grad_flow.json`` and the curves a run folder holds,
    drawn from it.

    Raises:
        ValueError: ``name`` names no shipped weights (the message lists them).
        PretrainedWeightsError: the weights or their record are missing or do not match their
            sha256.
    """
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    arch, _, tag = name.removeprefix(TIMM_PREFIX).partition(".")
    named = (e for e in list_weights(folder, arch=arch) if (e.tag == tag if tag else e.default))
    entry = next(named, None)
    if entry is None or not entry.shipped:  # unknown, or published on the Hub only
        shipped = shipped_weights(folder)
        where = "the package" if folder.resolve() == PACKAGED_WEIGHTS_DIR else str(folder)
        raise ValueError(
            f"{name!r} names no weights shipped in {where}; name them as ARCH.TAG (or ARCH for "
            f"its default weights), one of: {', '.join(shipped) or 'none'}"
        )
    meta, tag = entry.meta, entry.tag
    weights = folder / str(meta["file"])
    if not (weights.is_file() and meta.get("sha256")):
        raise PretrainedWeightsError(
            f"{weights} is missing, or its metadata records no sha256: the shipped weights "
            f"{weights_name(arch, tag)} are incomplete. Reinstall cifarzoo."
        )
    sha256 = verify_sha256(weights, str(meta["sha256"]))
    record = read_training_record(arch, tag=tag, weights_dir=folder)
    metrics = dict(meta.get("metrics") or {})
    about = "what was measured with these weights (the `metrics` of their metadata)"
    files = [HubFile(MARKER, json_text(metrics).encode(), about)]
    if record is not None:
        files += _record_files(record, metrics)
    overlay = {"file": str(weights), "notes": (SHA256_NOTE + sha256,)}
    load = partial(_load_checked, arch, overlay)
    return HubSource(
        arch,
        weights,
        sha256,
        metrics,
        _stored_dtype(weights),
        load,
        tuple(files),
        tag=tag,
        recipe=metrics.get("recipe"),
    )


def _load_checked(arch: str, overlay: dict[str, Any]) -> nn.Module:
    """``arch`` with the weights file of ``overlay``, checked against the sha256 in its
    ``notes`` before timm reads it, in eval mode."""
    return create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay).eval()


#: safetensors' names of the floating-point dtypes a weights file may store, as torch's.
_FLOAT_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _stored_dtype(weights: Path) -> str:
    """The dtype(s) the floating-point tensors of a safetensors file are stored in
    (``"float32"``, ``"float16"``)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        stored = {f.get_slice(key).get_dtype() for key in f.keys()}  # noqa: SIM118 (not iterable)
    return ", ".join(sorted(_FLOAT_DTYPES[d] for d in stored if d in _FLOAT_DTYPES))


def _record_files(record: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[HubFile]:
    """A training record's files, as a run folder holds them: ``history.json``,
    ``grad_flow.json`` (when it recorded gradients) and the curves drawn from the history."""
    files = [HubFile(HISTORY_FILE, json_text(record["history"]).encode(), _HISTORY_ABOUT)]
    if record.get("grad_flow"):
        grad_flow = json_text(record["grad_flow"]).encode()
        files.append(HubFile(GRAD_FLOW_FILE, grad_flow, _GRAD_FLOW_ABOUT))
    return files + _curves(record["history"], per_class_accuracy(metrics))


def _curves(history: Mapping[str, Any], per_class: list[tuple[str, float]]) -> list[HubFile]:
    """The PNG curves ``cifarzoo train`` writes into a run folder
    (:func:`~cifarzoo.plots.save_training_plots`), drawn from a recorded history; none, with a
    warning, without matplotlib (as a run has none then)."""
    from .plots import save_training_plots
    from .training import History

    classes = [c for c, _ in per_class] or list(CIFAR10_CLASSES)
    values = [a for _, a in per_class] or None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = save_training_plots(History.from_dict(dict(history)), tmp, values, classes)
            return [HubFile(path.name, path.read_bytes()) for path in paths]
    except ImportError as e:
        print(f"warning: no curves ({e})", file=sys.stderr)
        return []
