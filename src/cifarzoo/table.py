"""The accuracy table: parameters, MACs and the shipped weights' recorded metrics of every
model, rendered as markdown or RST and kept current between marker lines in the README and the
docs (``scripts/accuracy_table.py``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write
from .cost import count_activation_bytes, count_macs, count_params
from .data import NUM_TRAIN
from .formats import DASH, count, duration, hardware_name, mebibytes, percent
from .models import TIMM_PREFIX, create_model, list_models
from .pretrained import TAG_RECIPES, WeightsEntry, list_weights
from .runs import RecordedAccuracy, recorded_accuracy, recorded_seed_runs
from .training import Recipe, recipe_differences

__all__ = [
    "ARCHITECTURE_COLUMNS",
    "RST_TABLE_END",
    "RST_TABLE_START",
    "TABLE_END",
    "TABLE_START",
    "WEIGHTS_COLUMNS",
    "ModelRow",
    "has_weights",
    "model_table",
    "render_architecture_rst",
    "render_markdown",
    "render_rst",
    "render_weights_rst",
    "replace_between_markers",
    "update_table_in_file",
    "weights_note",
]

TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"
RST_TABLE_START = ".. model-table:start"
RST_TABLE_END = ".. model-table:end"
#: The TTA cell of weights recorded without a test-time augmentation.
_NO_TTA = "none"


@dataclass(frozen=True)
class ModelRow:
    """One row of the model table: one weights of an architecture (one row for an architecture
    without weights). Accuracy fields are ``None`` for weights that do not load (their
    measurements stay out of the table)."""

    model: str  # the name that loads the weights: the architecture's (its default), or ARCH.TAG
    params: int
    macs: int
    activation_bytes: int  # kept for the backward pass of one 32x32 image, float32
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
    tag: str | None = None  # the weights' tag, which names their recipe (TAG_RECIPES)
    default: bool = True  # the architecture's default weights, or an architecture without any
    recipe: Recipe | None = None  # the recipe the weights' metadata records

    @property
    def arch(self) -> str:
        """The architecture (``lenet`` for ``lenet.lab``)."""
        return self.model.partition(".")[0]


def model_table(
    names: Iterable[str] | None = None, *, weights_dir: str | os.PathLike[str] | None = None
) -> list[ModelRow]:
    """Rows for ``names`` (default: every cifarzoo model): parameters, MACs at 32x32 and the
    recorded metrics of each of its weights (``<weights_dir>/<arch>.<tag>.json``, default the
    package's), the default weights first (named as the model, the others ``ARCH.TAG``).

    Models are built on the ``meta`` device: shapes only, no memory and no initialization."""
    rows = []
    for name in list_models() if names is None else names:
        arch = name.removeprefix(TIMM_PREFIX)
        with torch.device("meta"):
            model = create_model(arch)
        row = ModelRow(arch, count_params(model), count_macs(model), count_activation_bytes(model))
        rows += _weights_rows(row, weights_dir) or [row]
    return rows


def _weights_rows(row: ModelRow, weights_dir: str | os.PathLike[str] | None) -> list[ModelRow]:
    """A row for each weights of ``row``'s architecture, its default first (timm's)."""
    return [_weights_row(row, entry) for entry in list_weights(weights_dir, arch=row.model)]


def _weights_row(row: ModelRow, entry: WeightsEntry) -> ModelRow:
    m = entry.meta.get("metrics") or {}
    loads = entry.loads
    acc = recorded_accuracy(m) if loads else RecordedAccuracy(None, None)
    recipe = m.get("recipe")
    return replace(
        row,
        model=entry.loaded_as,
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
        weights=entry.source,
        distilled=bool(m.get("teacher")),
        tag=entry.tag,
        default=entry.default,
        recipe=Recipe.from_dict(recipe) if isinstance(recipe, dict) else None,
    )


def weights_note(entry: WeightsEntry) -> str | None:
    """How ``cifarzoo list`` marks weights that load: where they are and their one-forward-pass
    test accuracy (``None`` for weights that do not load)."""
    if not entry.loads:
        return None
    metrics = entry.meta.get("metrics") or {}
    note = "pretrained" if entry.shipped else "pretrained (Hub)"
    accuracy = recorded_accuracy(metrics).test
    if accuracy is not None:
        note += f": {percent(accuracy)} test accuracy, one forward pass"
        note += f", on {metrics['data']}" if metrics.get("data") else ""
    return note


def _seeds_cell(metrics: dict[str, Any]) -> str | None:
    """How many seeds the weights' recipe was trained with (``metrics['seed_runs']``) and, for
    two or more, the range of their single-pass test and validation accuracies (of their TTA
    ones, named, when a seed recorded no single pass)."""
    runs = recorded_seed_runs(metrics)
    if not runs:
        return None
    if len(runs) == 1:
        return "1"
    if all(r.test is not None for r in runs):
        test, val, label = [r.test for r in runs], [r.val for r in runs], ""
    elif all(r.tta_test is not None for r in runs):
        test, val = [r.tta_test for r in runs], [r.tta_val for r in runs]
        label = f", {' / '.join(sorted({r.tta or '?' for r in runs}))} TTA"
        if any(r.test is not None for r in runs):
            label += "; one forward pass not recorded for every seed"
    else:
        return str(len(runs))
    cell = f"test {_spread([a for a in test if a is not None])}"
    if all(v is not None for v in val):
        cell += f", validation {_spread([v for v in val if v is not None])}"
    return f"{len(runs)} ({cell}{label})"


def _spread(accuracies: Sequence[float]) -> str:
    """``63.01%-66.23%``, or one figure when they are all alike."""
    low, high = min(accuracies), max(accuracies)
    return percent(low) if low == high else f"{percent(low)}-{percent(high)}"


#: The weights table: one row per weights that load (no Data column when they share one data set).
WEIGHTS_COLUMNS = (
    "Model", "Recipe", "Test acc.", "Val acc.", "TTA test / val acc.", "Epochs x images",
    "Train time", "Data", "Hardware",
)  # fmt: skip
#: The architecture table: every model.
ARCHITECTURE_COLUMNS = ("Model", "Params", "MACs (32x32)", "Training activations (32x32)")
_NUMERIC_COLUMNS = {
    "Params", "MACs (32x32)", "Training activations (32x32)", "Test acc.", "Val acc.",
    "TTA test / val acc.", "Epochs x images", "Train time",
}  # fmt: skip


def has_weights(row: ModelRow) -> bool:
    """Whether the row's weights load (shipped in the package or published on the Hub)."""
    return row.weights in ("package", "hub")


#: between a number and its unit, and around the "/" of a pair: a cell wraps between words,
#: never inside a number
_NBSP = "\u00a0"


#: a count and its unit in a hardware name (``2 CPUs``, ``1 thread``): kept on one line
_COUNT_AND_UNIT = re.compile(r"(\d) (?=(?:CPUs?|threads?|GPUs?)\b)")


def _unbroken(text: str) -> str:
    return text.replace(" ", _NBSP)


def _tta_accuracy_cell(row: ModelRow) -> str:
    if row.tta_test_accuracy is None:
        return DASH
    pair = _unbroken(f"{percent(row.tta_test_accuracy)} / {percent(row.tta_val_accuracy)}")
    return f"{pair} ({row.tta})"


def _training_cell(row: ModelRow) -> str:
    """Epochs x training images (``30 x 45,000``), and whether distilled."""
    if row.epochs is None:
        return DASH
    cell = f"{row.epochs:g}"
    if row.train_images is not None:
        cell += f"{_NBSP}x{_NBSP}{row.train_images:,}"
    return cell + (", distilled" if row.distilled else "")


def _shared_data(rows: Sequence[ModelRow]) -> str | None:
    """The data set every row was trained and measured on, if they share one (the table then
    names it once, in a note, instead of in a column)."""
    names = {row.data for row in rows}
    return names.pop() if len(names) == 1 else None


def _weights_columns(rows: Sequence[ModelRow]) -> tuple[str, ...]:
    if _shared_data(rows) is None:
        return WEIGHTS_COLUMNS
    return tuple(c for c in WEIGHTS_COLUMNS if c != "Data")


def _weights_cells(row: ModelRow, columns: Sequence[str]) -> list[str]:
    cells = {
        "Model": row.model + (" (Hub)" if row.weights == "hub" else ""),
        "Recipe": row.tag or DASH,
        "Test acc.": percent(row.test_accuracy),
        "Val acc.": percent(row.val_accuracy),
        "TTA test / val acc.": _tta_accuracy_cell(row),
        "Epochs x images": _training_cell(row),
        "Train time": _unbroken(duration(row.seconds)),
        "Data": row.data or DASH,
        "Hardware": _COUNT_AND_UNIT.sub(rf"\1{_NBSP}", hardware_name(row.hardware)),
    }
    return [cells[c] for c in columns]


def _weights_table(
    rows: Sequence[ModelRow], render: Callable[[Sequence[str], Iterable[Sequence[str]]], str]
) -> str:
    columns = _weights_columns(rows)
    return render(columns, (_weights_cells(r, columns) for r in rows))


def _architecture_cells(row: ModelRow) -> list[str]:
    counts = (count(row.params), count(row.macs), f"{mebibytes(row.activation_bytes)} MiB")
    return [row.model, *(_unbroken(c) for c in counts)]


_DISTILLED_NOTE = (
    "*distilled*: trained on a mix of the labels and the averaged predictions of other trained "
    "models on the training images (their training time is not counted; the weights' metadata "
    "names them)."
)

_ACCURACY_NOTE = (
    "*Test acc.* and *Val acc.* are one forward pass of the normalized 32x32 images, what "
    "`model(x)` gives; *TTA test / val acc.* the same weights with the test-time augmentation "
    "named in brackets (a dash: recorded without one): *flip* averages each image's logits "
    "with its mirror's, *translate* adds copies shifted one pixel diagonally (`cifarzoo eval "
    "MODEL --pretrained` measures both ways). *Epochs x images*: training epochs, and the "
    f"training images of each (the rest of the {NUM_TRAIN:,} held out for validation). Weights "
    "that were trained but not kept are recorded in docs/experiments.rst."
)


def _location_note(rows: Sequence[ModelRow]) -> str:
    if all(r.weights == "package" for r in rows):
        return "All these weights ship in the package: `pretrained=True` works offline."
    return (
        "*(Hub)*: downloaded from the Hugging Face Hub and cached by timm; the other weights "
        "ship in the package, so `pretrained=True` works offline for them."
    )


def _seeds_note(rows: Sequence[ModelRow]) -> str | None:
    several = [(r.model, r.seeds) for r in rows if r.seeds and r.seeds != "1"]
    if not several:
        return None
    listed = "; ".join(
        f"{model} trained with {seeds.replace(' (', ' seeds (', 1)}" for model, seeds in several
    )
    return (
        f"*Seeds*: {listed}; the weights that ship are one of these runs. The other weights "
        "come from one run."
    )


#: What the recipe note says of a tag :data:`~cifarzoo.pretrained.TAG_RECIPES` does not describe.
_UNDESCRIBED_TAG = "the recipe its weights' metadata records"


def _recipe_note(rows: Sequence[ModelRow]) -> str:
    """What each tag's recipe is (and which architectures have weights of it), how to load
    weights that are not an architecture's default, and how their recipe differs from the
    default's (from the recipes the metadata records)."""
    archs: dict[str, list[str]] = {}
    for row in rows:
        archs.setdefault(row.tag or DASH, []).append(row.arch)
    tags = "; ".join(
        f"*{tag}* ({', '.join(names)}): {TAG_RECIPES.get(tag, _UNDESCRIBED_TAG)}"
        for tag, names in archs.items()
    )
    note = f"*Recipe*: the weights' tag, which names how they were trained: {tags}."
    tagged = [row for row in rows if not row.default]
    if tagged:
        name = tagged[0].model
        note += (
            " The model's name loads its default weights, listed first; ARCH.TAG loads the "
            "others: "
            f'`cifarzoo.create_model("{name}", pretrained=True)`, '
            f'`timm.create_model("{TIMM_PREFIX}{name}", pretrained=True)`, '
            f"`cifarzoo eval {name} --pretrained`."
        )
    defaults = {row.arch: row for row in rows if row.default}
    for row in tagged:
        note += _recipe_difference(row, defaults.get(row.arch))
    return note


def _recipe_difference(row: ModelRow, default: ModelRow | None) -> str:
    """`` lenet.lab differs from lenet in `lr` (0.2 vs 0.1) and ...`` (not in the seed)."""
    if default is None or row.recipe is None or default.recipe is None:
        return ""
    differences = recipe_differences(row.recipe, default.recipe)
    differences.pop("seed", None)
    if not differences:
        return ""
    listed = [f"`{k}` ({_setting(a)} vs {_setting(b)})" for k, (a, b) in differences.items()]
    joined = ", ".join(listed[:-1]) + " and " + listed[-1] if len(listed) > 1 else listed[0]
    return f" {row.model} differs from {default.model} in {joined}."


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return "off" if value is None else str(value)


def _data_note(rows: Sequence[ModelRow]) -> str | None:
    data = _shared_data(rows)
    return f"*Data*: all these weights were trained and are measured on {data}." if data else None


def _notes(rows: Sequence[ModelRow]) -> str:
    notes = [
        _data_note(rows), _ACCURACY_NOTE, _recipe_note(rows), _location_note(rows),
        _seeds_note(rows),
    ]  # fmt: skip
    if any(r.distilled for r in rows):
        notes.append(_DISTILLED_NOTE)
    return "".join(f"\n{note}\n" for note in notes if note)


def _markdown(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---:" if c in _NUMERIC_COLUMNS else "---" for c in columns) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _rst(columns: Sequence[str], rows: Iterable[Sequence[str]], css_class: str) -> str:
    lines = [".. list-table::", "   :header-rows: 1", f"   :class: {css_class}", ""]
    for cells in [list(columns), *rows]:
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    return "\n".join(lines) + "\n"


def render_markdown(rows: Sequence[ModelRow]) -> str:
    """Two GitHub-flavoured markdown tables of ``rows``: the weights that load (accuracy, recipe,
    data, training) with their notes, then every architecture (parameters, MACs)."""
    loaded = [r for r in rows if has_weights(r)]
    parts = []
    if loaded:
        parts += [
            "**Pretrained weights**\n",
            _weights_table(loaded, _markdown) + _notes(loaded),
        ]
    parts += [
        "**Architectures**\n",
        _markdown(ARCHITECTURE_COLUMNS, (_architecture_cells(r) for r in rows if r.default)),
    ]
    return "\n".join(parts)


def render_weights_rst(rows: Sequence[ModelRow]) -> str:
    """An RST ``list-table`` (class ``weights-table``) of the rows whose weights load, with
    its notes."""
    loaded = [r for r in rows if has_weights(r)]
    if not loaded:
        return "No model has weights that load yet.\n"
    table = _weights_table(loaded, partial(_rst, css_class="weights-table"))
    return table + _notes(loaded).replace("`", "``")  # RST inline literals


def render_architecture_rst(rows: Sequence[ModelRow]) -> str:
    """An RST ``list-table`` (class ``architecture-table``) of every architecture's parameters
    and MACs (one row each: its default weights' row)."""
    cells = (_architecture_cells(r) for r in rows if r.default)
    return _rst(ARCHITECTURE_COLUMNS, cells, "architecture-table")


def render_rst(rows: Sequence[ModelRow]) -> str:
    """Both RST tables of ``rows``: :func:`render_weights_rst` then
    :func:`render_architecture_rst`."""
    return render_weights_rst(rows) + "\n" + render_architecture_rst(rows)


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
