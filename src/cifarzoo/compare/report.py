"""The report folder: ``report.json``, the figures, ``report.html`` (:mod:`.page`) and
``summary.txt``; and a report written again from its ``report.json`` alone (:func:`rerender`)."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import atomic_write, save_json
from ..constants import CIFAR10_CLASSES
from ..cost import count_activation_bytes
from .figures import FIGURES, render_figures
from .findings import CONCLUSION_TOPICS, Finding, findings
from .page import ACCURACY_NOTE, GRADIENT_RATIO_NOTE, html_page, result_rows, weights_line
from .results import SCHEMA, ComparisonReport, text_table

__all__ = [
    "REPORT_HTML",
    "REPORT_JSON",
    "REPORT_TXT",
    "existing_report_files",
    "render_report",
    "rerender",
    "summary_text",
    "with_architecture_costs",
    "write_report",
]

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_TXT = "summary.txt"


def existing_report_files(folder: Path) -> list[str]:
    """The files of a comparison report that ``folder`` holds (empty for a new folder)."""
    names = (REPORT_JSON, REPORT_HTML, REPORT_TXT, *FIGURES.values())
    return [name for name in names if (folder / name).is_file()]


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
    return html_page(report, found, classes, pngs), pngs


def summary_text(report: ComparisonReport, found: Sequence[Finding]) -> str:
    """``summary.txt``: the conclusion in words, the results table and what its accuracies
    and gradient ratio are, then the other findings but the gradient ones (the table holds
    those), and the shipped weights it read, if any."""
    conclusion = [f.text for f in found if f.topic in CONCLUSION_TOPICS]
    more = [f"- {f.text}" for f in found if f.topic not in (*CONCLUSION_TOPICS, "gradients")]
    parts = [
        "\n".join(
            textwrap.fill(text, 100, initial_indent="- ", subsequent_indent="  ")
            for text in conclusion
        ),
        text_table(result_rows(report)),
        textwrap.fill(f"{ACCURACY_NOTE} {GRADIENT_RATIO_NOTE}", 100),
    ]
    if more:
        parts.append("\n".join(more))
    weights = [m.weights for m in report.models if m.weights is not None]
    if weights:
        parts.append("\n".join(textwrap.fill(f"Weights {weights_line(w)}", 100) for w in weights))
    return "\n\n".join(parts) + "\n"


def rerender(summary_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the report of a ``report.json`` again into ``out`` (the same folder or another),
    from its numbers alone: no data, no training. The JSON's numbers are kept; its findings
    are stated anew, and the activations per image that reports written before they were
    counted lack are counted from the architectures (:func:`with_architecture_costs`).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not a comparison report's JSON.
    """
    path = Path(summary_path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict) or summary.get("schema") != SCHEMA:
            raise ValueError(f"its schema is not {SCHEMA!r}")
        report = ComparisonReport.from_dict(summary)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not the report.json of a `cifarzoo compare` report ({err}); pass the "
            f"{REPORT_JSON} that compare wrote"
        ) from err
    return write_report(with_architecture_costs(report), out)


def with_architecture_costs(report: ComparisonReport) -> ComparisonReport:
    """``report`` with the ``activation_bytes`` its cifarzoo models lack counted from their
    architecture and recorded constructor arguments (on the meta device: no memory, no
    compute); a model cifarzoo does not know keeps ``None``."""
    from ..models import create_model

    models = []
    for m in report.models:
        if m.activation_bytes is None:
            try:
                with torch.device("meta"):
                    model = create_model(m.name, **m.model_args)
            except ValueError:  # not a cifarzoo model
                pass
            else:
                m = dataclasses.replace(m, activation_bytes=count_activation_bytes(model))
        models.append(m)
    return dataclasses.replace(report, models=models)


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
