"""The results of a comparison: :class:`ModelReport` per model, :class:`ComparisonReport` for
all of them, and their JSON form (``report.json``, schema :data:`SCHEMA`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "ComparisonReport", "ModelReport", "text_table"]

SCHEMA = "cifarzoo.compare/1"


@dataclass
class ModelReport:
    """Everything measured for one model (see :func:`compare`); JSON via :meth:`to_dict`.

    ``history`` is :class:`cifarzoo.training.History` as a dict; ``test`` holds ``accuracy``,
    ``loss``, ``per_class_accuracy`` (list, class order) and ``confusion_matrix`` (row: true
    class), one forward pass, and ``tta_accuracy`` with the test-time augmentation ``tta``
    (``None`` without one); ``val`` the same for the validation split (when there is one) and
    ``train_eval`` for training images in eval mode, without augmentation (the *training
    error* of He et al.'s degradation result); ``grad_flow`` holds ``every``, ``layers``,
    ``steps`` and ``norms`` (one list per record); ``se_gates`` maps each stage to a
    :func:`~cifarzoo.instrument.gate_summary`; ``model_args`` are the constructor arguments the
    model was trained with (e.g. ``zero_init_residual``); ``weights`` describes the shipped
    weights a model was read from (``compare --pretrained``: their timm name, file, sha256,
    dtype, recipe, training and recorded accuracies), ``None`` for trained models and runs;
    ``activation_bytes`` is :func:`~cifarzoo.cost.count_activation_bytes` of one 32x32 image
    (``None`` in reports written before cifarzoo measured it).
    """

    name: str
    params: int
    macs: int
    seconds_per_epoch: float | None
    peak_memory_bytes: int | None
    memory_kind: str
    history: dict[str, Any]
    test: dict[str, Any]
    grad_flow: dict[str, Any] | None = None
    se_gates: dict[str, Any] | None = None
    source: str = "trained"
    val: dict[str, Any] | None = None
    train_eval: dict[str, Any] | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] | None = None
    activation_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelReport:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def last_val_accuracy(self) -> float | None:
        """The validation accuracy after the last epoch (never the best epoch's); ``None``
        without a validation split (the curves of a run without one measure the test set)."""
        if self.val is not None:
            return float(self.val["accuracy"])
        if self.history.get("eval_split", "val") != "val":
            return None
        measured = [v for v in (self.history.get("eval_acc") or []) if v is not None]
        return float(measured[-1]) if measured else None


@dataclass
class ComparisonReport:
    """The models' :class:`ModelReport` s plus the shared setting (``meta``: data, recipe,
    device, versions). ``files`` maps each written file's role to its path."""

    models: list[ModelReport]
    meta: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **self.meta, "models": [m.to_dict() for m in self.models]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ComparisonReport:
        meta = {k: v for k, v in d.items() if k not in ("models", "schema", "findings")}
        return cls([ModelReport.from_dict(m) for m in d["models"]], meta)

    def model(self, name: str) -> ModelReport | None:
        """The report of the model called ``name``, if it is in the comparison."""
        return next((m for m in self.models if m.name == name), None)

    def table(self) -> str:
        """The results table of the report page and ``summary.txt``, as aligned plain text
        (last epoch; accuracies one forward pass, a test-time augmentation's named beside)."""
        from .page import result_rows  # the page builds on these results

        return text_table(result_rows(self))


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned plain text: the first column left-aligned, the others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )
