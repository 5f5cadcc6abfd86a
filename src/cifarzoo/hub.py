"""Pretrained weights: installing trained weights into the package, the accuracy table, and
publishing a training run to the Hugging Face Hub.

Loading itself goes through timm (``cifarzoo.resnet20(pretrained=True)``,
``cifarzoo.resnet20(weights=PATH)``, ``timm.create_model('hf-hub:ORG/NAME', pretrained=True)``,
``timm.create_model('local-dir:FOLDER')``); cifarzoo's checks around it live in
:mod:`cifarzoo.models._registry` and are re-exported here.

A *run folder* is what ``cifarzoo train`` writes: ``model.safetensors``, its
``model.safetensors.sha256`` sidecar, ``metrics.json`` (at least ``model``, ``test_accuracy``,
``val_accuracy``, ``epochs``, ``seconds``, ``data``; also ``hardware``, ``per_class_accuracy``
and the recipe, read from ``recipe`` or ``config``) and optionally curve images (``*.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    CHECKPOINT_NAME,
    PretrainedWeightsError,
    StagedFiles,
    atomic_dir,
    atomic_write,
    json_text,
    read_sha256_sidecar,
    sha256_file,
    verify_sha256,
)
from .constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE, NUM_CLASSES
from .metrics import tta_views
from .models._registry import (
    _FACTORIES,
    DEFAULT_TAG,
    HF_WEIGHTS_FILE,
    PACKAGED_WEIGHTS_DIR,
    SHA256_NOTE,
    TIMM_PREFIX,
    create_model,
    list_models,
    read_weights_meta,
)
from .runs import check_finished

__all__ = [
    "DEFAULT_TAG",
    "MAX_PACKAGED_MB",
    "PACKAGED_WEIGHTS_DIR",
    "TABLE_END",
    "TABLE_START",
    "ModelRow",
    "PretrainedWeightsError",
    "PublishResult",
    "RunInfo",
    "add_publish_parser",
    "build_hub_folder",
    "build_model_card",
    "count_macs",
    "install_weights",
    "model_table",
    "publish",
    "read_run",
    "recorded_bf16",
    "recorded_tta",
    "render_markdown",
    "render_rst",
    "replace_between_markers",
    "run_publish_command",
    "sha256_file",
    "update_table_in_file",
    "verify_sha256",
]

#: Largest weights file shipped inside the package; bigger models are published on the Hub.
MAX_PACKAGED_MB = 8.0
TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"
RST_TABLE_START = ".. model-table:start"
RST_TABLE_END = ".. model-table:end"
_REQUIRED_METRICS = ("model", "test_accuracy", "epochs", "seconds", "data")
_PINNED_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")
#: The data name (``--data-name``) of the official CIFAR-10 release, and its Hub dataset id.
OFFICIAL_DATA_NAME = "CIFAR-10"
OFFICIAL_DATASET_ID = "cifar10"
_DASH = "\u2014"


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


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


def _text(value: Any) -> str:
    """A one-line description of a string or a dict such as ``{"device": "NVIDIA H200"}``."""
    if value is None:
        return "unknown"
    if isinstance(value, dict):
        for key in ("name", "device", "gpu", "accelerator", "description"):
            if value.get(key):
                return str(value[key])
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


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
    weights = run_dir / HF_WEIGHTS_FILE
    metrics_path = run_dir / "metrics.json"
    if weights.is_file() or (run_dir / CHECKPOINT_NAME).is_file():
        check_finished(run_dir)  # a run still training, or interrupted
    for needed in (weights, metrics_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed.name} not found in {run_dir}: expected the output folder of "
                "`cifarzoo train` (model.safetensors, model.safetensors.sha256, metrics.json)."
            )
    if read_sha256_sidecar(weights) is None:
        raise FileNotFoundError(
            f"{weights}.sha256 not found: cifarzoo installs and publishes only weights with "
            "their sha256 sidecar, as `cifarzoo train` writes them. If you trust the file, "
            f"create it with `sha256sum {HF_WEIGHTS_FILE} > {HF_WEIGHTS_FILE}.sha256` in {run_dir}."
        )
    digest = verify_sha256(weights)
    metrics: dict[str, Any] = json.loads(metrics_path.read_text())
    missing = [k for k in _REQUIRED_METRICS if metrics.get(k) is None]
    if missing:
        raise ValueError(f"{metrics_path} lacks {', '.join(missing)}")
    for key in ("test_accuracy", "val_accuracy"):
        if metrics.get(key) is None:
            continue
        value = float(metrics[key])
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{metrics_path}: {key} must be a fraction in [0, 1], got {value}")
    arch = str(metrics["model"]).removeprefix(TIMM_PREFIX).split(".")[0]
    if arch not in _FACTORIES:
        raise ValueError(f"{metrics_path}: unknown model {metrics['model']!r}")
    curves = tuple(sorted(run_dir.glob("*.png")))
    return RunInfo(run_dir, arch, weights, digest, metrics, curves)


def _load_run_model(run: RunInfo) -> nn.Module:
    """The run's model with its weights, loaded strictly through cifarzoo's checked path."""
    n = run.num_classes
    overlay = {"file": str(run.weights), "num_classes": n}
    model = create_model(run.arch, pretrained=True, num_classes=n, pretrained_cfg_overlay=overlay)
    return model.eval()


# --------------------------------------------------------------------------------------------
# Shipped weights
# --------------------------------------------------------------------------------------------


def install_weights(
    run_dir: str | os.PathLike[str],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    tag: str = DEFAULT_TAG,
    hf_hub_id: str | None = None,
    package: bool | None = None,
    max_mb: float = MAX_PACKAGED_MB,
    unpublished: bool = False,
) -> Path:
    """Install a training run's weights as the architecture's pretrained weights.

    Writes ``<weights_dir>/<arch>.json`` (sha256, parameters and the run's metrics) and, when
    ``package`` (the default without ``hf_hub_id``), copies the weights to
    ``<weights_dir>/<arch>.safetensors`` so they load with no network. With ``hf_hub_id``
    (``org/name@<40-hex commit>``, as :func:`publish` prints) the weights are loaded from that
    pinned Hub revision instead. ``unpublished=True`` records the run's metrics alone, for
    weights trained but not uploaded yet: the model table lists them as "not published" and
    ``pretrained=True`` still says that the model has no weights. Takes effect at the next
    ``import cifarzoo``.

    Nothing is replaced until everything is checked: the weights are copied to a temporary file
    next to the target and their sha256 verified before they and the JSON are moved into place,
    so a failure leaves the previously installed weights and JSON as they were.

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
    if hf_hub_id is not None and not _PINNED_HUB_ID.fullmatch(hf_hub_id):
        raise ValueError(
            f"hf_hub_id must pin a commit, as 'org/name@<40 hex digits>', got {hf_hub_id!r}: an "
            "unpinned repository can change under the recorded sha256 and accuracy."
        )
    if not re.fullmatch(r"[a-z0-9_]+", tag):
        raise ValueError(f"tag must be lowercase letters, digits and '_', got {tag!r}")
    if run.num_classes != NUM_CLASSES:
        raise ValueError(f"{run.run_dir}: only CIFAR-10 ({NUM_CLASSES}-class) weights are shipped")
    val_accuracy = run.metrics.get("val_accuracy")
    if package and val_accuracy is None:
        raise ValueError(
            f"{run.run_dir}/metrics.json has no val_accuracy: shipped weights record a validation "
            "accuracy; train with a held-out split (`cifarzoo train --val-size 5000`)."
        )
    size_mb = run.weights.stat().st_size / 2**20
    if package and size_mb > max_mb:
        raise ValueError(
            f"{run.weights} is {size_mb:.1f} MB, over the {max_mb:g} MB limit for weights shipped "
            "in the package. Publish it (`cifarzoo publish`) and install it with "
            "hf_hub_id='org/name@<commit>' instead."
        )
    model = _load_run_model(run)  # refuses weights that don't fit the architecture
    meta: dict[str, Any] = {
        "architecture": run.timm_name,
        "tag": tag,
        "file": f"{run.arch}.safetensors" if package else None,
        "hf_hub_id": hf_hub_id,
        "sha256": run.sha256,
        "num_params": sum(p.numel() for p in model.parameters()),
        "metrics": {
            "test_accuracy": float(run.metrics["test_accuracy"]),
            "val_accuracy": None if val_accuracy is None else float(val_accuracy),
            "single_pass_test_accuracy": run.metrics.get("single_pass_test_accuracy"),
            "single_pass_val_accuracy": run.metrics.get("single_pass_val_accuracy"),
            "per_class_accuracy": run.metrics.get("per_class_accuracy"),
            "epochs": run.metrics["epochs"],
            "seconds": float(run.metrics["seconds"]),
            "train_images": run.metrics.get("train_images"),
            "bf16": run.metrics.get("bf16"),
            "hardware": _text(run.metrics.get("hardware")),
            "data": _text(run.metrics["data"]),
            "recipe": run.recipe,
            "teacher": run.metrics.get("teacher"),
            # this run alone; the runs of other seeds of the same recipe are added by hand
            "seed_runs": [
                {
                    "seed": (run.recipe or {}).get("seed"),
                    "test_accuracy": float(run.metrics["test_accuracy"]),
                    "val_accuracy": None if val_accuracy is None else float(val_accuracy),
                    "kept": True,
                }
            ],
        },
    }
    target = folder / f"{run.arch}.safetensors"
    meta_path = folder / f"{run.arch}.json"
    with StagedFiles() as staged:
        if package:
            staged.copy(run.weights, target, sha256=run.sha256)
        staged.write(meta_path, json_text(meta))
        staged.commit()
    if not package:
        target.unlink(missing_ok=True)  # only now that the JSON no longer names it
    return meta_path


# --------------------------------------------------------------------------------------------
# Accuracy table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    """One row of the model table; accuracy fields are ``None`` for models without weights that
    load (their measurements stay out of the table)."""

    model: str
    params: int
    macs: int
    test_accuracy: float | None = None  # one forward pass, what model(x) gives
    val_accuracy: float | None = None
    tta_test_accuracy: float | None = None  # with the test-time augmentation ``tta``
    tta_val_accuracy: float | None = None
    tta: str | None = None  # the test-time augmentation of the TTA accuracies
    seeds: str | None = None  # how many seeds the recipe was trained with, and their spread
    epochs: int | float | None = None
    train_images: int | None = None  # the rest of the 50,000 held out for validation
    seconds: float | None = None
    hardware: str | None = None
    data: str | None = None
    weights: str | None = None  # "package", "hub", "unpublished" or None
    distilled: bool = False  # trained on a teacher's predictions too


def count_macs(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> int:
    """Multiply-accumulates of one forward pass on one image of the model's input size
    (:func:`cifarzoo.cost.count_macs`, the one MAC counter)."""
    from .cost import count_macs as count

    return count(model, (1, *(input_size or _input_size(model))))


def model_table(
    names: Iterable[str] | None = None, *, weights_dir: str | os.PathLike[str] | None = None
) -> list[ModelRow]:
    """Rows for ``names`` (default: every cifarzoo model): parameters, MACs at 32x32 and the
    weights' recorded metrics (from ``<weights_dir>/<arch>.json``, default the package's).

    Models are built on the ``meta`` device: shapes only, no memory and no initialization."""
    rows = []
    for name in list_models() if names is None else names:
        arch = name.removeprefix(TIMM_PREFIX)
        with torch.device("meta"):
            model = create_model(arch)
        row = ModelRow(arch, sum(p.numel() for p in model.parameters()), count_macs(model))
        meta = read_weights_meta(arch, weights_dir)
        if meta is not None:
            m = meta.get("metrics") or {}
            loads = bool(meta.get("file") or meta.get("hf_hub_id"))
            tta = _tta_cell(m)
            with_tta = loads and tta not in (None, "none")
            row = ModelRow(
                row.model,
                row.params,
                row.macs,
                test_accuracy=_single_pass(m, "test") if loads else None,
                val_accuracy=_single_pass(m, "val") if loads else None,
                tta_test_accuracy=m.get("test_accuracy") if with_tta else None,
                tta_val_accuracy=m.get("val_accuracy") if with_tta else None,
                tta=tta if loads else None,
                seeds=_seeds_cell(m) if loads else None,
                epochs=m.get("epochs"),
                train_images=m.get("train_images"),
                seconds=m.get("seconds"),
                hardware=m.get("hardware"),
                data=m.get("data"),
                weights=(
                    "package"
                    if meta.get("file")
                    else "hub"
                    if meta.get("hf_hub_id")
                    else "unpublished"
                ),
                distilled=bool(m.get("teacher")),
            )
        rows.append(row)
    return rows


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(int(n))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return _DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def recorded_tta(metrics: dict[str, Any]) -> tuple[bool, bool] | None:
    """``(flip, translate)``: the test-time augmentation the recorded accuracy (``metrics.json``,
    or the weights metadata's ``metrics``) was measured with; ``None`` if its recipe records
    none."""
    recipe = metrics.get("recipe") or {}
    if "tta_flip" not in recipe:
        return None
    return bool(recipe["tta_flip"]), bool(recipe.get("tta_translate", False))


def recorded_bf16(metrics: dict[str, Any]) -> bool | None:
    """Whether the recorded accuracy (``metrics.json``, or the weights metadata's ``metrics``)
    was measured under bf16 autocast; ``None`` if that can't be told (``--amp auto`` recipes
    recorded without the device they ran on)."""
    bf16 = metrics.get("bf16")
    if isinstance(bf16, bool):
        return bf16
    amp = (metrics.get("recipe") or {}).get("amp")
    return amp if isinstance(amp, bool) else None


def _single_pass(metrics: dict[str, Any], split: str) -> float | None:
    """The recorded one-forward-pass accuracy on ``split``: ``single_pass_<split>_accuracy``,
    or ``<split>_accuracy`` when that was measured without TTA."""
    single: float | None = metrics.get(f"single_pass_{split}_accuracy")
    if single is None and recorded_tta(metrics) == (False, False):
        single = metrics.get(f"{split}_accuracy")
    return single


def _seeds_cell(metrics: dict[str, Any]) -> str | None:
    """How many seeds the weights' recipe was trained with (``metrics['seed_runs']``) and, for
    two or more, the range of their test accuracies (measured as ``test_accuracy``, with the
    recipe's TTA)."""
    runs = metrics.get("seed_runs")
    if not runs:
        return None
    if len(runs) == 1:
        return "1"
    accuracies = sorted(float(r["test_accuracy"]) for r in runs)
    with_tta = ", TTA" if _tta_cell(metrics) not in (None, "none") else ""
    return f"{len(runs)} (test {_pct(accuracies[0])}-{_pct(accuracies[-1])}{with_tta})"


def _tta_cell(metrics: dict[str, Any]) -> str | None:
    tta = recorded_tta(metrics)
    return None if tta is None else tta_views(*tta) or "none"


def _pct(x: float | None) -> str:
    return _DASH if x is None else f"{100 * x:.2f}%"


_COLUMNS = (
    "Model", "Params", "MACs (32x32)", "Test acc.", "Val acc.", "TTA", "TTA test acc.",
    "TTA val acc.", "Seeds", "Epochs", "Train images", "Train time", "Hardware", "Data", "Weights",
)  # fmt: skip
_NUMERIC_COLUMNS = {
    "Params", "MACs (32x32)", "Test acc.", "Val acc.", "TTA test acc.", "TTA val acc.", "Epochs",
    "Train images", "Train time",
}  # fmt: skip
_WEIGHTS_CELL = {"package": "in the package", "hub": "Hub", "unpublished": "not published yet"}


def _cells(row: ModelRow) -> list[str]:
    return [
        row.model,
        _count(row.params),
        _count(row.macs),
        _pct(row.test_accuracy),
        _pct(row.val_accuracy),
        row.tta or _DASH,
        _pct(row.tta_test_accuracy),
        _pct(row.tta_val_accuracy),
        row.seeds or _DASH,
        _DASH
        if row.epochs is None
        else f"{row.epochs:g}" + (", distilled" if row.distilled else ""),
        _DASH if row.train_images is None else f"{row.train_images:,}",
        _duration(row.seconds),
        row.hardware or _DASH,
        row.data or _DASH,
        _WEIGHTS_CELL.get(row.weights or "", _DASH),
    ]


_DISTILLED_NOTE = (
    "*distilled*: trained on a mix of the labels and the averaged predictions of other trained "
    "models on the training images (their training time is not counted; the weights' metadata "
    "names them)."
)


_TTA_NOTE = (
    "*Test acc.* and *Val acc.* are one forward pass of the normalized 32x32 images, what "
    "`model(x)` gives. *TTA*: the test-time augmentation of the *TTA* columns: *flip* averages "
    "each image's logits with its mirror's, *translate* adds copies shifted one pixel diagonally "
    "(`cifarzoo eval MODEL --pretrained` measures both ways). *Seeds*: how many seeds the recipe "
    "was trained with (the weights are one of them) and, for two or more, the range of their "
    "test accuracies. Only models whose weights load show accuracies; docs/training.rst records "
    "the measurements of weights that were not kept."
)


def _notes(rows: Sequence[ModelRow]) -> str:
    notes = []
    if any(r.tta for r in rows):
        notes.append(_TTA_NOTE)
    if any(r.distilled for r in rows):
        notes.append(_DISTILLED_NOTE)
    return "".join(f"\n{note}\n" for note in notes)


def render_markdown(rows: Sequence[ModelRow]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (and a note on distilled rows, if any)."""
    lines = ["| " + " | ".join(_COLUMNS) + " |"]
    lines.append("|" + "|".join("---:" if c in _NUMERIC_COLUMNS else "---" for c in _COLUMNS) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n" + _notes(rows)


def render_rst(rows: Sequence[ModelRow]) -> str:
    """An RST ``list-table`` of ``rows``."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for cells in [list(_COLUMNS), *(_cells(r) for r in rows)]:
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    return "\n".join(lines) + "\n" + _notes(rows).replace("`", "``")  # RST inline literals


def replace_between_markers(text: str, block: str, start: str, end: str) -> str:
    """``text`` with everything between the ``start`` and ``end`` marker lines replaced."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"markers {start!r} ... {end!r} not found (in that order)")
    head = text[: i + len(start)]
    return f"{head}\n\n{block.strip()}\n\n{text[j:]}"


def update_table_in_file(
    path: str | os.PathLike[str], rows: Sequence[ModelRow], *, check: bool = False
) -> bool:
    """Rewrite the table between the model-table markers of a markdown (``<!-- ... -->``) or RST
    (``.. model-table:start``/``end``) file. Returns whether the file was (or, with ``check``,
    would be) changed; with ``check`` nothing is written."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".rst":
        new = replace_between_markers(text, render_rst(rows), RST_TABLE_START, RST_TABLE_END)
    else:
        new = replace_between_markers(text, render_markdown(rows), TABLE_START, TABLE_END)
    if new == text:
        return False
    if not check:
        with atomic_write(path) as f:
            f.write(new.encode("utf-8"))
    return True


# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


def _hub_config(run: RunInfo, model: nn.Module) -> dict[str, Any]:
    """timm's ``config.json`` for the run's model: what ``hf-hub:``/``local-dir:`` read."""
    skip = {"file", "url", "hf_hub_id", "hf_hub_filename", "source", "state_dict", "architecture",
            "tag", "notes"}  # fmt: skip
    cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k not in skip}  # type: ignore[arg-type]
    cfg["num_classes"] = run.num_classes
    cfg["notes"] = [SHA256_NOTE + run.sha256]
    config: dict[str, Any] = {
        "architecture": run.timm_name,
        "num_classes": run.num_classes,
        "num_features": int(getattr(model, "num_features", 0)),
    }
    classes = run.metrics.get("classes")
    if classes is None and run.num_classes == NUM_CLASSES:
        classes = list(CIFAR10_CLASSES)
    if classes is not None:
        config["label_names"] = list(classes)
    if isinstance(run.metrics.get("model_args"), dict):
        config["model_args"] = run.metrics["model_args"]
    config["pretrained_cfg"] = json.loads(json.dumps(cfg))  # tuples -> lists
    return config


def _per_class(run: RunInfo) -> list[tuple[str, float]]:
    per_class = run.metrics.get("per_class_accuracy")
    if isinstance(per_class, dict):
        return [(str(k), float(v)) for k, v in per_class.items()]
    if isinstance(per_class, list):
        names = run.metrics.get("classes") or CIFAR10_CLASSES
        return [(str(n), float(v)) for n, v in zip(names, per_class, strict=False)]
    return []


def build_model_card(run: RunInfo, repo_id: str) -> Any:
    """The Hub model card (``huggingface_hub.ModelCard``) of a run: ``model-index`` results for
    test and validation accuracy on the data set named exactly as measured, the recipe,
    per-class accuracy and the curves.

    Only a run on data named exactly ``"CIFAR-10"`` (``--data-name``'s default, the official
    release) links the Hub's CIFAR-10 dataset; for any other data the results carry an id made
    from its name, and the card says that the data is not the official release.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    data = _text(run.metrics["data"])
    official = data == OFFICIAL_DATA_NAME
    dataset_type = (
        OFFICIAL_DATASET_ID if official else re.sub(r"[^a-z0-9]+", "-", data.lower()).strip("-")
    )
    val_acc = run.metrics.get("val_accuracy")
    summary = (_FACTORIES[run.arch].__doc__ or run.arch).strip().splitlines()[0].rstrip(".")
    test = float(run.metrics["test_accuracy"])

    def result(split: str, name: str, value: float) -> EvalResult:
        return EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_type or "unnamed-data",
            dataset_name=data,
            dataset_split=split,
            metric_type="accuracy",
            metric_name=name,
            metric_value=round(100 * float(value), 2),
        )

    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="timm",
        license="apache-2.0",
        pipeline_tag="image-classification",
        tags=["image-classification", "timm", "cifarzoo", "cifar10"],
        datasets=[OFFICIAL_DATASET_ID] if official else None,
        metrics=["accuracy"],
        eval_results=[result("test", "Test accuracy (%)", test)]
        + ([] if val_acc is None else [result("validation", "Validation accuracy (%)", val_acc)]),
    )
    lines = [
        f"# {run.arch} for CIFAR-10 (cifarzoo)",
        "",
        f"`{run.timm_name}` from [cifarzoo](https://pypi.org/project/cifarzoo/): {summary}. "
        f"Built for 32x32 images and trained from scratch on {data}.",
        "",
        *([] if official else [_data_note(data), ""]),
        "| Metric | Value |",
        "|---|---:|",
        f"| Test accuracy ({data}, test split) | {100 * test:.2f}% |",
        f"| Validation accuracy (held-out split of the training set) | {_pct(val_acc)} |",
        f"| Epochs | {run.metrics['epochs']} |",
        f"| Training time | {_duration(float(run.metrics['seconds']))} |",
        f"| Hardware | {_text(run.metrics.get('hardware'))} |",
        "",
        "## Usage",
        "",
        "timm finds the architecture only after `import cifarzoo` (it registers the `cifar_*` "
        "models):",
        "",
        "```python",
        "import cifarzoo  # registers cifar_* models with timm",
        "import timm",
        "",
        f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()',
        "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
        "```",
        "",
        f"Inputs are 32x32 RGB images normalized with CIFAR-10's per-channel mean {CIFAR10_MEAN} "
        f"and std {CIFAR10_STD}; the transform above does it.",
        "",
    ]
    per_class = _per_class(run)
    if per_class:
        lines += ["## Per-class test accuracy", "", "| Class | Accuracy |", "|---|---:|"]
        lines += [f"| {name} | {100 * acc:.2f}% |" for name, acc in per_class]
        lines.append("")
    if run.recipe is not None:
        lines += ["## Training recipe", "", "```json", json.dumps(run.recipe, indent=2), "```", ""]
    teachers = run.metrics.get("teacher")
    if teachers:
        lines += [
            "Distilled: the targets mixed the labels with the averaged predictions of these "
            "trained models on the training images (their training time is not counted above):",
            "",
            *[f"- {_text(t)}" for t in teachers],
            "",
        ]
    if run.curves:
        lines += ["## Training curves", ""]
        lines += [f"![{p.stem}]({p.name})" for p in run.curves]
        lines.append("")
    lines += [
        "## Files",
        "",
        f"- `{HF_WEIGHTS_FILE}`: the weights (safetensors), sha256 `{run.sha256}`",
        "- `config.json`: timm's model config",
        "- `metrics.json`: everything the training run measured",
        "",
    ]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _data_note(data: str) -> str:
    if "jpeg" in data.lower():
        kind = "a JPEG re-encoding of CIFAR-10's images"
    else:
        kind = "a copy of CIFAR-10 other than its official release"
    return (
        f"**Data:** {data} is {kind}, not the official CIFAR-10 files: the accuracies below were "
        "measured on its test split and are not directly comparable with results on the "
        "official CIFAR-10 test set."
    )


def build_hub_folder(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    out_dir: str | os.PathLike[str],
    *,
    verify: bool = True,
) -> Path:
    """Build the Hub repository folder of a training run in ``out_dir`` (which must not exist
    or be empty): ``model.safetensors``, timm's ``config.json``, the model card ``README.md``,
    ``metrics.json`` and the curves.

    The folder is built in a hidden sibling and renamed to ``out_dir`` only when complete, so a
    failure leaves nothing behind. With ``verify`` it is first loaded back through
    ``timm.create_model('local-dir:...')`` and must give the same outputs as the run's weights.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ValueError(f"repo_id must be 'org/name', got {repo_id!r}")
    run = read_run(run_dir)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model = _load_run_model(run)
        shutil.copyfile(run.weights, tmp / HF_WEIGHTS_FILE)
        verify_sha256(tmp / HF_WEIGHTS_FILE, run.sha256)
        (tmp / "config.json").write_text(json_text(_hub_config(run, model)))
        shutil.copyfile(run.run_dir / "metrics.json", tmp / "metrics.json")
        for curve in run.curves:
            shutil.copyfile(curve, tmp / curve.name)
        build_model_card(run, repo_id).save(tmp / "README.md")
        if verify:
            import timm

            loaded = timm.create_model(f"local-dir:{tmp}", pretrained=True).eval()
            x = torch.randn(2, *_input_size(model), generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                if not torch.equal(model(x), loaded(x)):
                    raise RuntimeError(f"{out} does not load back to the same model")
    return out


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = tuple(int(s) for s in cfg.get("input_size", (3, IMAGE_SIZE, IMAGE_SIZE)))
    return (size[0], size[1], size[2])


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` did: where the folder was built (removed after an upload when
    :func:`publish` built it in a temporary folder), and after an upload the pinned revision."""

    folder: Path
    repo_id: str
    commit: str | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned_id(self) -> str | None:
        """``org/name@<commit>``, for ``install_weights(..., hf_hub_id=...)``."""
        return f"{self.repo_id}@{self.commit}" if self.commit else None


def publish(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    private: bool = False,
    commit_message: str | None = None,
) -> PublishResult:
    """Build the Hub folder of a run (:func:`build_hub_folder`) and, unless ``dry_run``, create
    the repository if needed and upload it with ``HfApi.upload_folder`` (token from
    ``hf auth login`` or ``HF_TOKEN``).

    Without ``out_dir`` the folder is built in a new temporary folder, removed after the upload
    and on any failure; a dry run keeps it, for inspection. With ``out_dir`` the folder is kept.
    """
    temp_parent: Path | None = None
    if out_dir is None:
        temp_parent = Path(tempfile.mkdtemp(prefix="cifarzoo-hub-"))
        folder = temp_parent / "hub"
    else:
        folder = Path(out_dir)
    keep = False
    try:
        build_hub_folder(run_dir, repo_id, folder)
        if dry_run:
            keep = True
            return PublishResult(folder, repo_id)
        return _upload(folder, repo_id, private, commit_message, kept=temp_parent is None)
    finally:
        if temp_parent is not None and not keep:
            shutil.rmtree(temp_parent, ignore_errors=True)


def _upload(
    folder: Path, repo_id: str, private: bool, commit_message: str | None, *, kept: bool
) -> PublishResult:
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    later = (
        f"The folder is built in {folder}; upload it later"
        if kept
        else "The folder was built and checked (pass --out FOLDER to keep it); upload it later"
    )
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError(
            f"cannot upload to {repo_id}: offline mode is on (HF_HUB_OFFLINE=1). {later}, or "
            "rerun without HF_HUB_OFFLINE."
        )
    arch = json.loads((folder / "config.json").read_text())["architecture"]
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {arch} weights",
        )
    except OfflineModeIsEnabled as err:
        raise RuntimeError(f"cannot upload to {repo_id}: {err}. {later}.") from err
    return PublishResult(folder, repo_id, commit=info.oid, url=info.commit_url)


def add_publish_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``publish`` to a CLI's subparsers (``parser.add_subparsers()``); the handler is
    set as ``func`` (:func:`run_publish_command`, returns an exit code)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="publish a training run to the Hugging Face Hub",
        description=(
            "Build a Hub repository folder (model.safetensors, timm config.json, model card, "
            "metrics, curves) from a `cifarzoo train` output folder and upload it."
        ),
    )
    parser.add_argument("--run", required=True, type=Path, help="output folder of cifarzoo train")
    parser.add_argument("--repo-id", required=True, help="Hub repository, as ORG/NAME")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to build the folder, kept (default: a temporary folder, removed after upload)",
    )
    parser.add_argument("--dry-run", action="store_true", help="build and check, don't upload")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.set_defaults(func=run_publish_command)
    return parser


def run_publish_command(args: argparse.Namespace) -> int:
    """The ``cifarzoo publish`` handler."""
    result = publish(
        args.run, args.repo_id, out_dir=args.out, dry_run=args.dry_run, private=args.private
    )
    if result.folder.exists():
        print(f"built {result.folder}")
    if result.commit is None:
        print("dry run: nothing uploaded")
    else:
        print(f"uploaded {result.url}")
        print(f"pinned revision: {result.pinned_id}")
        print(f"register: python scripts/install_weights.py {args.run} --hub-id {result.pinned_id}")
    return 0
