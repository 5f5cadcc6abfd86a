"""Installing a training run's weights as a model's pretrained weights: shipped in the package
(``src/cifarzoo/weights/<arch>.<tag>.safetensors``) or registered by their pinned Hub revision,
with ``<arch>.<tag>.json`` recording their sha256 and the run's metrics
(``scripts/install_weights.py``)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .checkpoint import StagedFiles, json_text, load_weights, safetensors_bytes
from .constants import NUM_CLASSES
from .cost import count_params
from .pretrained import DEFAULT_TAG, PACKAGED_WEIGHTS_DIR, WEIGHTS_FILE_SUFFIXES, weights_name
from .runs import (
    RecordedAccuracy,
    RunInfo,
    one_line,
    read_grad_flow,
    read_history,
    read_run,
    recorded_accuracy,
    recorded_model_args,
)

__all__ = ["DEFAULT_TAG", "MAX_PACKAGED_MB", "WeightsDtype", "install_weights"]

#: Largest weights file shipped inside the package (resnet18's 11.2M parameters in float16 are
#: 21.3 MB); bigger models are published on the Hub.
MAX_PACKAGED_MB = 24.0
#: How installed weights are stored: as the run saved them, or its floating-point tensors in
#: float16 (half the size; evaluate in float32 to reproduce the recorded figures).
WeightsDtype = Literal["as-trained", "float16"]
_PINNED_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")


def install_weights(
    run_dir: str | os.PathLike[str],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    tag: str = DEFAULT_TAG,
    hf_hub_id: str | None = None,
    package: bool | None = None,
    max_mb: float = MAX_PACKAGED_MB,
    unpublished: bool = False,
    dtype: WeightsDtype = "as-trained",
) -> Path:
    """Install a training run's weights as the architecture's pretrained weights.

    Writes ``<weights_dir>/<arch>.<tag>.json`` (sha256, parameters and the run's metrics) and, when
    ``package`` (the default without ``hf_hub_id``), copies the weights to
    ``<weights_dir>/<arch>.<tag>.safetensors`` so they load with no network. With ``hf_hub_id``
    (``org/name@<40-hex commit>``, as :func:`cifarzoo.hub.publish` prints) the weights are
    loaded from that pinned Hub revision instead. ``unpublished=True`` records the run's
    metrics alone, for weights trained but not uploaded yet: the model table leaves them out
    until they load, and ``pretrained=True`` still says that the model has no weights. Takes effect
    at the next ``import cifarzoo``.

    Nothing is replaced until everything is checked: the weights are copied to a temporary file
    next to the target and their sha256 verified before they and the JSON are moved into place,
    so a failure leaves the previously installed weights and JSON as they were.

    ``dtype="float16"`` ships the floating-point tensors in float16 (``weights_dtype`` in the
    JSON). The figures recorded are then still the run's, measured with its own weights: measure
    the installed file again (``scripts/measure_weights.py``) so that they are the shipped
    file's.

    Packaged weights must record a validation accuracy (train with a held-out split); others
    may come from a run on all 50,000 training images. Returns the metadata JSON's path.
    """
    run = read_run(run_dir)
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    if unpublished and (package or hf_hub_id is not None):
        raise ValueError("unpublished weights are neither packaged nor on the Hub")
    package = hf_hub_id is None and not unpublished if package is None else package
    if not package and hf_hub_id is None and not unpublished:
        raise ValueError(
            "weights must be packaged or published: pass package=True or hf_hub_id "
            "(or unpublished=True to record the metrics alone)"
        )
    if dtype not in ("as-trained", "float16"):
        raise ValueError(f"dtype must be 'as-trained' or 'float16', got {dtype!r}")
    weights = _weights_bytes(run) if dtype == "float16" else None
    size = run.weights.stat().st_size if weights is None else len(weights)
    _check_installable(run, package=package, hf_hub_id=hf_hub_id, tag=tag, max_mb=max_mb, size=size)
    model = run.load_model()  # refuses weights that don't fit the architecture
    name = weights_name(run.arch, tag)
    target, meta_path, record_path = (folder / f"{name}{ext}" for ext in WEIGHTS_FILE_SUFFIXES)
    meta = _weights_meta(
        run,
        model,
        tag=tag,
        file=target.name if package else None,
        hf_hub_id=hf_hub_id,
        sha256=run.sha256 if weights is None else hashlib.sha256(weights).hexdigest(),
    )
    if weights is not None:
        meta["weights_dtype"] = "float16"
    record = _training_record(run)
    if record is not None:
        meta["record"] = {"file": record_path.name, "sha256": hashlib.sha256(record).hexdigest()}
    with StagedFiles() as staged:
        if package and weights is None:
            staged.copy(run.weights, target, sha256=run.sha256)
        elif package and weights is not None:
            staged.write(target, weights)
        if record is not None:
            staged.write(record_path, record)
        staged.write(meta_path, json_text(meta))
        staged.commit()
    # only now that the JSON no longer names them
    if not package:
        target.unlink(missing_ok=True)
    if record is None:
        record_path.unlink(missing_ok=True)
    return meta_path


def _training_record(run: RunInfo) -> bytes | None:
    """The run's training record, shipped beside its weights: its per-epoch history and its
    gradient-norm records (``None`` for a run without a history)."""
    history = read_history(run.run_dir)
    if not history:
        return None
    return json_text({"history": history, "grad_flow": read_grad_flow(run.run_dir)}).encode()


def _weights_bytes(run: RunInfo) -> bytes:
    """The run's weights (checked against their sha256) with every floating-point tensor in
    float16, as a safetensors file."""
    state = load_weights(run.weights, expected_sha256=run.sha256)
    half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()}
    return safetensors_bytes(half)


def _check_installable(
    run: RunInfo, *, package: bool, hf_hub_id: str | None, tag: str, max_mb: float, size: int
) -> None:
    """Refuse what cannot be installed, before anything is written."""
    if hf_hub_id is not None and not _PINNED_HUB_ID.fullmatch(hf_hub_id):
        raise ValueError(
            f"hf_hub_id must pin a commit, as 'org/name@<40 hex digits>', got {hf_hub_id!r}: an "
            "unpinned repository can change under the recorded sha256 and accuracy."
        )
    if not re.fullmatch(r"[a-z0-9_]+", tag):
        raise ValueError(f"tag must be lowercase letters, digits and '_', got {tag!r}")
    if run.num_classes != NUM_CLASSES:
        raise ValueError(f"{run.run_dir}: only CIFAR-10 ({NUM_CLASSES}-class) weights are shipped")
    accuracy = recorded_accuracy(run.metrics)
    if accuracy.test is None:
        raise ValueError(
            f"{run.metrics_file} records no single-pass test accuracy (only one measured with "
            f"{accuracy.tta or 'a'} test-time augmentation, as runs of earlier cifarzoo "
            "versions did): the weights' headline accuracy is one forward pass; retrain, or "
            "install weights from a run that records it."
        )
    if package and accuracy.val is None:
        raise ValueError(
            f"{run.metrics_file} has no val_accuracy: shipped weights record a validation "
            "accuracy; train with a held-out split (`cifarzoo train --val-size 5000`)."
        )
    size_mb = size / 2**20
    if package and size_mb > max_mb:
        raise ValueError(
            f"{run.weights} is {size_mb:.1f} MB as installed, over the {max_mb:g} MB limit for "
            "weights shipped in the package. Install it in float16 (dtype='float16', half the "
            "size), or publish it (`cifarzoo publish`) and install it with "
            "hf_hub_id='org/name@<commit>'."
        )


def _weights_meta(
    run: RunInfo,
    model: nn.Module,
    *,
    tag: str,
    file: str | None,
    hf_hub_id: str | None,
    sha256: str,
) -> dict[str, Any]:
    """The weights' metadata JSON (``<arch>.<tag>.json``): where they load from, their sha256 and
    the run's metrics (with the constructor arguments the model was trained with), the
    single-pass accuracies as the headline (whatever layout the run's ``metrics.json`` has)."""
    accuracy = recorded_accuracy(run.metrics)
    return {
        "architecture": run.timm_name,
        "tag": tag,
        "file": file,
        "hf_hub_id": hf_hub_id,
        "sha256": sha256,
        "num_params": count_params(model),
        "metrics": {
            **accuracy.fields(),
            **_per_class_keys(run.metrics, accuracy),
            "epochs": run.metrics["epochs"],
            "seconds": float(run.metrics["seconds"]),
            "train_images": run.metrics.get("train_images"),
            "bf16": run.metrics.get("bf16"),
            "hardware": one_line(run.metrics.get("hardware")),
            "data": one_line(run.metrics["data"]),
            "recipe": run.recipe,
            "model_args": recorded_model_args(run.metrics),
            **_recorded_tta_keys(run.metrics),
            "teacher": run.metrics.get("teacher"),
            # this run alone; the runs of other seeds of the same recipe are added by hand
            "seed_runs": [
                {"seed": (run.recipe or {}).get("seed"), **accuracy.fields(), "kept": True}
            ],
        },
    }


def _per_class_keys(metrics: dict[str, Any], accuracy: RecordedAccuracy) -> dict[str, Any]:
    """The run's per-class test accuracy: as ``per_class_accuracy`` when it is one forward
    pass, else (runs of earlier versions) as ``tta_per_class_accuracy``."""
    key = "per_class_accuracy" if accuracy.per_class_tta is None else "tta_per_class_accuracy"
    return {key: metrics.get("per_class_accuracy")}


def _recorded_tta_keys(metrics: dict[str, Any]) -> dict[str, Any]:
    """``tta_flip``/``tta_translate`` as the run recorded them, when it did (runs from before
    they were recorded keep them in the recipe alone)."""
    return {k: metrics[k] for k in ("tta_flip", "tta_translate") if metrics.get(k) is not None}
