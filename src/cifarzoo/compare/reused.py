"""The run folders of earlier ``cifarzoo train`` runs that a comparison reads instead of
training: each one's report, and the setting they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..cost import count_activation_bytes, count_macs, count_params
from ..models import create_model
from ..runs import (
    MARKER,
    WEIGHTS_FILE,
    read_grad_flow,
    read_history,
    read_metrics,
    recorded_accuracy,
    recorded_model_args,
)
from .evaluation import Evaluation
from .meta import recorded_setting
from .results import ModelReport

__all__ = ["read_run", "runs_setting", "trained_elsewhere"]


def read_run(folder: Path, measure: Evaluation | None) -> ModelReport:
    """A :class:`ModelReport` from a ``cifarzoo train`` output folder. Its
    ``model.safetensors`` is loaded as ``cifarzoo eval --weights`` loads it: checked against
    the ``.sha256`` sidecar first."""
    metrics, history = read_metrics(folder), read_history(folder)
    name = str(metrics.get("model") or folder.name)
    weights = folder / WEIGHTS_FILE
    model = create_model(name, weights=str(weights)) if weights.is_file() else create_model(name)
    if measure is not None:
        model.to(measure.device)
        measured = measure.splits(model, name)
    else:
        measured = {"test": _recorded_test(folder, metrics), **_NOT_MEASURED}
    return trained_elsewhere(
        name,
        model,
        history,
        read_grad_flow(folder),
        source=str(folder),
        model_args=recorded_model_args(metrics),
        **measured,
    )


def trained_elsewhere(
    name: str,
    model: nn.Module,
    history: dict[str, Any],
    grad_flow: dict[str, Any] | None,
    **fields: Any,
) -> ModelReport:
    """The :class:`ModelReport` of a model trained elsewhere (a run folder, shipped weights):
    its cost, the curves and gradient norms its training recorded, its seconds per epoch as
    recorded there, and ``fields`` (what was measured here, where it came from); its peak
    memory is not measured."""
    seconds = history.get("seconds") or []
    return ModelReport(
        name=name,
        params=count_params(model),
        macs=count_macs(model),
        activation_bytes=count_activation_bytes(model),
        seconds_per_epoch=float(sum(seconds) / len(seconds)) if seconds else None,
        peak_memory_bytes=None,
        memory_kind="not measured",
        history=history,
        grad_flow=grad_flow,
        **fields,
    )


_NOT_MEASURED: dict[str, Any] = {"val": None, "train_eval": None, "se_gates": None}


def _recorded_test(folder: Path, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The test figures a run folder recorded, one forward pass (its TTA accuracy beside);
    refused when it recorded none in one forward pass (runs of earlier versions with TTA)."""
    acc = recorded_accuracy(metrics)
    per_class = metrics.get("per_class_accuracy")
    recorded = per_class is not None and "confusion_matrix" in metrics
    if per_class is None or not recorded or acc.test is None or acc.per_class_tta is not None:
        what = "single-pass test metrics" if recorded else "per-class test metrics"
        raise ValueError(
            f"{folder} has no {what} ({MARKER}); pass data to evaluate {WEIGHTS_FILE} on the test "
            "set in one forward pass"
        )
    if isinstance(per_class, Mapping):
        per_class = list(per_class.values())
    return {
        "accuracy": acc.test,
        "loss": metrics.get("test_loss"),
        "tta": acc.tta,
        "tta_accuracy": acc.tta_test,
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion_matrix": metrics["confusion_matrix"],
    }


def runs_setting(folders: Sequence[Path], measured_on: str) -> dict[str, Any]:
    """Epochs, seed, recipe and hardware of run folders trained elsewhere, for the report's
    meta (:func:`~cifarzoo.compare.meta.recorded_setting` of their ``metrics.json``)."""
    return recorded_setting([read_metrics(folder) for folder in folders], measured_on)
