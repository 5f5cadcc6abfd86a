"""The accuracy table: parameters, MACs and the shipped weights' recorded metrics of every
model, rendered as markdown or RST and kept current between marker lines in the README and the
docs (``scripts/accuracy_table.py``)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write
from .cost import count_macs, count_params
from .models._registry import TIMM_PREFIX, create_model, list_models, read_weights_meta
from .runs import RecordedAccuracy, recorded_accuracy, recorded_seed_runs

__all__ = [
    "RST_TABLE_END",
    "RST_TABLE_START",
    "TABLE_END",
    "TABLE_START",
    "ModelRow",
    "duration",
    "model_table",
    "percent",
    "render_markdown",
    "render_rst",
    "replace_between_markers",
    "update_table_in_file",
]

TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"
RST_TABLE_START = ".. model-table:start"
RST_TABLE_END = ".. model-table:end"
_DASH = "\u2014"
#: The TTA cell of weights recorded without a test-time augmentation.
_NO_TTA = "none"


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
        row = ModelRow(arch, count_params(model), count_macs(model))
        meta = read_weights_meta(arch, weights_dir)
        if meta is not None:
            m = meta.get("metrics") or {}
            loads = bool(meta.get("file") or meta.get("hf_hub_id"))
            acc = recorded_accuracy(m) if loads else RecordedAccuracy(None, None)
            row = ModelRow(
                row.model,
                row.params,
                row.macs,
                test_accuracy=acc.test,
                val_accuracy=acc.val,
                tta_test_accuracy=acc.tta_test,
                tta_val_accuracy=acc.tta_val,
                tta=(acc.tta or _NO_TTA) if loads else None,
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


def duration(seconds: float | None) -> str:
    """``seconds`` as a table cell: seconds, minutes or hours."""
    if seconds is None or not math.isfinite(seconds):
        return _DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _seeds_cell(metrics: dict[str, Any]) -> str | None:
    """How many seeds the weights' recipe was trained with (``metrics['seed_runs']``) and, for
    two or more, the range of their single-pass test accuracies (of their TTA ones, labelled,
    when some runs recorded no single pass)."""
    runs = recorded_seed_runs(metrics)
    if not runs:
        return None
    if len(runs) == 1:
        return "1"
    single = [r.test for r in runs]
    tta = [r.tta_test for r in runs]
    if all(a is not None for a in single):
        accuracies, label = sorted(float(a) for a in single if a is not None), ""
    elif all(a is not None for a in tta):
        accuracies, label = sorted(float(a) for a in tta if a is not None), ", TTA"
    else:
        return str(len(runs))
    return f"{len(runs)} (test {percent(accuracies[0])}-{percent(accuracies[-1])}{label})"


def percent(x: float | None) -> str:
    """A fraction as a percentage cell (a dash for ``None``)."""
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
        percent(row.test_accuracy),
        percent(row.val_accuracy),
        row.tta or _DASH,
        percent(row.tta_test_accuracy),
        percent(row.tta_val_accuracy),
        row.seeds or _DASH,
        _DASH
        if row.epochs is None
        else f"{row.epochs:g}" + (", distilled" if row.distilled else ""),
        _DASH if row.train_images is None else f"{row.train_images:,}",
        duration(row.seconds),
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
    "test accuracies (with TTA where the cell says so). Only models whose weights load show "
    "accuracies; docs/experiments.rst records the measurements of weights that were not kept."
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
