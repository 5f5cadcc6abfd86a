"""The report folder: ``report.json``, the figures, ``report.html`` (from
``templates/report.html``) and ``summary.txt``."""

from __future__ import annotations

import base64
import html
import json
import os
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import atomic_write, save_json
from ..constants import CIFAR10_CLASSES
from .figures import FIGURES, render_figures
from .findings import Finding, degradation_rows, findings
from .results import ComparisonReport, ModelReport

__all__ = ["REPORT_HTML", "REPORT_JSON", "REPORT_TXT", "render_report", "write_report"]

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_TXT = "summary.txt"


def render_report(summary: Mapping[str, Any] | ComparisonReport) -> tuple[str, dict[str, bytes]]:
    """The HTML page and the PNG figures (``{file name: bytes}``) of a report or of its
    ``report.json`` content."""
    report = (
        summary if isinstance(summary, ComparisonReport) else ComparisonReport.from_dict(summary)
    )
    return _render(report, findings(report))


def _render(report: ComparisonReport, found: Sequence[Finding]) -> tuple[str, dict[str, bytes]]:
    classes = report.meta.get("classes") or list(CIFAR10_CLASSES)
    pngs = render_figures(report.models, classes)
    return _html(report, found, classes, pngs), pngs


def summary_text(report: ComparisonReport, found: Sequence[Finding]) -> str:
    """``summary.txt``: the findings in words, then the table."""
    return "\n".join([*(f"- {f.text}" for f in found), "", report.table(), ""])


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _cells(values: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"


def _img(pngs: Mapping[str, bytes], key: str, alt: str) -> str:
    """The figure ``key`` inlined as a data URL, or nothing when it was not drawn."""
    name = FIGURES[key]
    if name not in pngs:
        return ""
    b64 = base64.b64encode(pngs[name]).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}"></figure>'


def _init_note(report: ComparisonReport) -> str:
    args = {m.name: m.model_args for m in report.models if m.model_args}
    if any(a.get("zero_init_residual") is False for a in args.values()):
        return (
            "residual and plain networks are initialised alike (Kaiming normal, every BN at "
            "one: no zero-initialised last BN in the residual blocks)."
        )
    return (
        "each model has its default initialisation (the residual blocks' last BN starts at "
        "zero, so each block starts as the identity)."
    )


def _degradation_table(report: ComparisonReport) -> str:
    rows = degradation_rows(report)
    if not rows:
        return ""
    body = "".join(
        _cells(
            [
                f"<code>{html.escape(r['model'])}</code>",
                str(r["depth"]),
                "yes" if r["shortcuts"] else "no",
                _pct(r["train_error"]),
                _pct(r["train_error_augmented"]),
                _pct(r["val_error"]),
                _pct(r["test_error"]),
            ]
        )
        for r in rows
    )
    return (
        "<h2>Plain vs residual: the degradation table</h2>"
        "<table><tr><th>model</th><th>depth</th><th>shortcuts</th><th>training error</th>"
        "<th>training error (augmented, last epoch)</th><th>validation error</th>"
        f"<th>test error</th></tr>{body}</table>"
        "<p class='meta'>Training error: unaugmented training images in eval mode after the "
        "last epoch; the augmented one is the last epoch's running error on the training "
        "batches. He et al. 2016 (Fig. 6): a deeper plain network trains worse, a deeper "
        "ResNet better.</p>"
    )


def _summary_rows(models: Sequence[ModelReport]) -> str:
    return "".join(
        _cells(
            [
                f"<code>{html.escape(m.name)}</code>",
                f"{m.params:,}",
                f"{m.macs / 1e6:,.1f} M",
                _pct(None if m.train_eval is None else 1 - m.train_eval["accuracy"]),
                _pct(m.last_val_accuracy),
                _test_cell(m.test),
                "-" if m.seconds_per_epoch is None else f"{m.seconds_per_epoch:.1f}",
                "-" if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 2**20:,.0f}",
                html.escape(m.source),
            ]
        )
        for m in models
    )


def _test_cell(test: Mapping[str, Any]) -> str:
    """The test accuracy, one forward pass, and its test-time augmentation's beside it, named."""
    tta = test.get("tta_accuracy")
    if tta is None:
        return _pct(test["accuracy"])
    return f"{_pct(test['accuracy'])} ({html.escape(str(test.get('tta')))} TTA: {_pct(tta)})"


def _per_class_rows(models: Sequence[ModelReport], classes: Sequence[str]) -> str:
    """One row per class, each model's test accuracy, the best marked."""
    rows = []
    for c, cls in enumerate(classes):
        accs = [m.test["per_class_accuracy"][c] for m in models]
        best = max(accs) if accs else None
        cells = "".join(
            f"<td class='{'best' if a == best and len(accs) > 1 else ''}'>{_pct(a)}</td>"
            for a in accs
        )
        rows.append(f"<tr><td>{html.escape(cls)}</td>{cells}</tr>")
    return "".join(rows)


def _setting(meta: Mapping[str, Any]) -> str:
    """The data, recipe and software the comparison ran with."""
    e = html.escape
    data = meta.get("data") or {}
    recipe = ", ".join(f"{k}={v}" for k, v in (meta.get("recipe") or {}).items())
    val = f"val {data['val']}, " if data.get("val") else ""
    return (
        f"Data: {e(str(data.get('name', '?')))} (train {data.get('train', '?')}, {val}test "
        f"{data.get('test', '?')}); {meta.get('epochs')} epoch(s), seed {meta.get('seed')}; "
        f"device {e(str(meta.get('device')))}; cifarzoo {e(str(meta.get('cifarzoo_version')))}, "
        f"torch {e(str(meta.get('torch_version')))}; created {e(str(meta.get('created')))}."
        f"<br>Recipe (cifarzoo.training.fit): {e(recipe)}."
    )


def _gradient_section(pngs: Mapping[str, bytes], notes: Mapping[str, Any], init: str) -> str:
    grad = _img(pngs, "grad_flow", "gradient flow")
    if not grad:
        return "<p>No gradient records (runs reused without a grad_flow.json).</p>"
    depth = _img(pngs, "grad_depth", "gradient norms of plain and residual networks")
    pairs = f"<h3>Plain vs residual at the same depth</h3><p>{init}</p>{depth}" if depth else ""
    note = html.escape(notes.get("grad_flow", ""))
    return f"<p>{note}. Early steps are dark, late steps yellow.</p>{grad}{pairs}"


def _se_section(pngs: Mapping[str, bytes], notes: Mapping[str, Any]) -> str:
    gates = _img(pngs, "se_gates", "SE gate distributions")
    if not gates:
        return "<p>No model with SE blocks in this comparison.</p>"
    return (
        "<p>Distribution of the SE gate values (channel weights in (0, 1)) of each stage over "
        f"test images. {html.escape(notes.get('se_gates', ''))}.</p>{gates}"
    )


def _html(
    report: ComparisonReport,
    found: Sequence[Finding],
    classes: Sequence[str],
    pngs: Mapping[str, bytes],
) -> str:
    e = html.escape
    meta, models = report.meta, report.models
    notes = meta.get("notes") or {}
    init = e(_init_note(report))
    template = string.Template(
        resources.files(__package__).joinpath("templates/report.html").read_text("utf-8")
    )
    return template.substitute(
        title=e(", ".join(m.name for m in models)),
        setting=_setting(meta),
        findings="".join(f"<li>{e(f.text)}</li>" for f in found),
        init=init,
        eval_split=e(f"final {(meta.get('data') or {}).get('eval_split', 'val')}"),
        summary_rows=_summary_rows(models),
        cost_notes=e(
            f"Training error: {notes.get('train_eval', 'not measured')}. MACs: "
            f"{notes.get('macs', '')}. Seconds per epoch: {notes.get('seconds_per_epoch', '')}. "
            f"Peak memory: {notes.get('peak_memory', '')}."
        ),
        fig_cost=_img(pngs, "cost", "cost and accuracy"),
        degradation=_degradation_table(report),
        fig_curves=_img(pngs, "curves", "loss and accuracy curves"),
        model_heads="".join(f"<th>{e(m.name)}</th>" for m in models),
        per_class_rows=_per_class_rows(models, classes),
        fig_per_class=_img(pngs, "per_class", "per-class accuracy"),
        fig_confusion=_img(pngs, "confusion", "confusion matrices"),
        grad_flow=_gradient_section(pngs, notes, init),
        se_gates=_se_section(pngs, notes),
    )


def write_report(report: ComparisonReport, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.json``, the PNG figures, the self-contained ``report.html`` and the
    plain-text ``summary.txt`` into ``out`` (created if needed); returns ``{role: path}``
    and stores it in ``report.files``.

    ``out`` may hold other files (run folders, say): only the report's files are replaced,
    each atomically, so none is ever left half-written. Everything is rendered before anything
    is written, so a failure while rendering leaves an earlier report as it was; a failure while
    writing (a full disk) can leave some files of the new report next to older ones. NaN and
    infinities are written as ``null``.
    """
    folder = Path(out)
    # Through JSON once: Paths, tensors and dtypes become plain values before save_json.
    summary = json.loads(json.dumps(report.to_dict(), default=_json_default))
    found = findings(report)
    summary["findings"] = [f.__dict__ for f in found]
    page, pngs = _render(report, found)
    texts = {REPORT_HTML: page, REPORT_TXT: summary_text(report, found)}
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {"json": folder / REPORT_JSON}
    save_json(summary, files["json"])
    for name, data in pngs.items():
        with atomic_write(folder / name) as f:
            f.write(data)
        files[name.removesuffix(".png")] = folder / name
    for name, text in texts.items():
        with atomic_write(folder / name, "w") as f:
            f.write(text)
    files["html"] = folder / REPORT_HTML
    files["summary"] = folder / REPORT_TXT
    report.files = files
    return files


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, torch.dtype | torch.device):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
