"""Reading run folders: the checked :class:`RunInfo` that installing and publishing need, the
lenient reads that ``cifarzoo compare`` and ``cifarzoo eval`` make, and what recorded metrics say
about how they were measured (:mod:`~cifarzoo.runs.recorded`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
from torch import nn

from ..checkpoint import CHECKPOINT_NAME, read_sha256_sidecar, sha256_sidecar, verify_sha256
from ..constants import NUM_CLASSES
from ..models import TIMM_PREFIX, create_model
from ..pretrained import HF_CONFIG_FILE, read_weights_meta
from .folder import GRAD_FLOW_FILE, HISTORY_FILE, MARKER, WEIGHTS_FILE, check_finished

__all__ = [
    "RunInfo",
    "check_weights_source",
    "one_line",
    "read_grad_flow",
    "read_history",
    "read_metrics",
    "read_run",
    "recorded_metrics",
]

_REQUIRED_METRICS = ("model", "test_accuracy", "epochs", "seconds", "data")
#: The fractions ``metrics.json`` may record, in any of its layouts (:mod:`.recorded`).
_ACCURACIES = (
    "test_accuracy",
    "val_accuracy",
    "tta_test_accuracy",
    "tta_val_accuracy",
    "single_pass_test_accuracy",
    "single_pass_val_accuracy",
)


@dataclass(frozen=True)
class RunInfo:
    """A ``cifarzoo train`` output folder, checked: the weights match their sidecar and the
    metrics name a cifarzoo architecture."""

    run_dir: Path
    arch: str
    weights: Path
    sha256: str
    metrics: dict[str, Any]
    curves: tuple[Path, ...] = ()

    @property
    def timm_name(self) -> str:
        return TIMM_PREFIX + self.arch

    @property
    def num_classes(self) -> int:
        return int(self.metrics.get("num_classes", NUM_CLASSES))

    @property
    def recipe(self) -> Any:
        return self.metrics.get("recipe", self.metrics.get("config"))

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / MARKER

    def history(self) -> dict[str, Any]:
        """The run's per-epoch curves (:func:`read_history`)."""
        return read_history(self.run_dir)

    def load_model(self) -> nn.Module:
        """The run's model with its weights, loaded strictly through cifarzoo's checked path,
        in eval mode."""
        n = self.num_classes
        overlay = {"file": str(self.weights), "num_classes": n}
        model = create_model(
            self.arch, pretrained=True, num_classes=n, pretrained_cfg_overlay=overlay
        )
        return model.eval()


def one_line(value: Any) -> str:
    """A one-line description of a recorded string or dict (``{"device": "NVIDIA H200"}``)."""
    if value is None:
        return "unknown"
    if isinstance(value, dict):
        for key in ("name", "device", "gpu", "accelerator", "description"):
            if value.get(key):
                return str(value[key])
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the run folder is damaged") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds {type(value).__name__}, not a JSON object")
    return value


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metrics.json`` of a finished run.

    Raises:
        UnfinishedRunError: the folder holds no finished run.
        ValueError: ``metrics.json`` is not a JSON object.
    """
    run_dir = Path(run_dir)
    check_finished(run_dir)
    return _read_json(run_dir / MARKER)


def read_history(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``history.json`` (:meth:`cifarzoo.training.History.to_dict`); empty if none."""
    path = Path(run_dir) / HISTORY_FILE
    return _read_json(path) if path.is_file() else {}


def read_grad_flow(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's gradient records (``grad_flow.json``: ``every``, ``layers``, ``steps``,
    ``norms``), or ``None`` when the run kept none."""
    path = Path(run_dir) / GRAD_FLOW_FILE
    return (_read_json(path) or None) if path.is_file() else None


def read_run(run_dir: str | os.PathLike[str]) -> RunInfo:
    """Read and check a ``cifarzoo train`` output folder.

    Raises:
        FileNotFoundError: a required file is missing.
        UnfinishedRunError: the run has weights or a checkpoint but no ``metrics.json`` yet.
        PretrainedWeightsError: the weights do not match their sha256 sidecar.
        ValueError: ``metrics.json`` lacks a field, names an unknown model or holds accuracies
            outside [0, 1].
    """
    run_dir = Path(run_dir)
    weights = run_dir / WEIGHTS_FILE
    metrics_path = run_dir / MARKER
    if weights.is_file() or (run_dir / CHECKPOINT_NAME).is_file():
        check_finished(run_dir)  # a run still training, or interrupted
    for needed in (weights, metrics_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed.name} not found in {run_dir}: expected the output folder of "
                f"`cifarzoo train` ({WEIGHTS_FILE}, {sha256_sidecar(WEIGHTS_FILE).name}, {MARKER})."
            )
    if read_sha256_sidecar(weights) is None:
        raise FileNotFoundError(
            f"{weights}.sha256 not found: cifarzoo installs and publishes only weights with "
            "their sha256 sidecar, as `cifarzoo train` writes them. If you trust the file, "
            f"create it with `sha256sum {WEIGHTS_FILE} > {WEIGHTS_FILE}.sha256` in {run_dir}."
        )
    digest = verify_sha256(weights)
    metrics = _read_json(metrics_path)
    missing = [k for k in _REQUIRED_METRICS if metrics.get(k) is None]
    if missing:
        raise ValueError(f"{metrics_path} lacks {', '.join(missing)}")
    for key in _ACCURACIES:
        if metrics.get(key) is None:
            continue
        value = float(metrics[key])
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{metrics_path}: {key} must be a fraction in [0, 1], got {value}")
    arch = str(metrics["model"]).removeprefix(TIMM_PREFIX).split(".")[0]
    if not timm.is_model(TIMM_PREFIX + arch):
        raise ValueError(f"{metrics_path}: unknown model {metrics['model']!r}")
    curves = tuple(sorted(run_dir.glob("*.png")))
    return RunInfo(run_dir, arch, weights, digest, metrics, curves)


def check_weights_source(weights: str | os.PathLike[str]) -> None:
    """Refuse an unfinished ``cifarzoo train`` folder given as weights (a weights file, or a
    Hub-format folder, which is no run folder, passes)."""
    weights = Path(weights)
    if weights.is_dir() and not (weights / HF_CONFIG_FILE).is_file():
        check_finished(weights)


def recorded_metrics(model: str, weights: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The metrics the accuracy of ``model``'s weights was recorded with: the shipped weights'
    metadata (``weights=None``; those of the tag ``model`` names, ``lenet.lab``, else the
    default ones), or the ``metrics.json`` of the run folder that holds the weights file (or is
    the folder ``weights``); empty if there are none for this model.

    Raises:
        ValueError: the run folder's ``metrics.json`` is damaged (as :func:`read_run` says).
    """
    model, _, tag = model.removeprefix(TIMM_PREFIX).partition(".")
    if weights is None:
        metrics = (read_weights_meta(model, tag=tag or None) or {}).get("metrics")
        return metrics if isinstance(metrics, dict) else {}
    path = Path(weights)
    marker = (path if path.is_dir() else path.parent) / MARKER
    if not marker.is_file():
        return {}
    metrics = _read_json(marker)
    # another model's metrics.json says nothing about these weights
    return metrics if metrics.get("model") == model else {}
