"""docs/compare.rst's analysis of the lab runs: every number it writes is one of
docs/_static/lab/report.json's, at the precision written."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cifarzoo.compare.findings import gradient_ratio

DOCS = Path(__file__).resolve().parents[1] / "docs"
REPORT = DOCS / "_static" / "lab" / "report.json"
PAGE = DOCS / "compare.rst"
SECTION = "What the runs show"
INDEX = DOCS / "index.rst"
INDEX_SECTION = "How plain, residual, dense and SE networks differ while they train"

#: a written number's kind -> its pattern (group 1: the number)
PATTERNS = {
    "percent": r"(\d+(?:\.\d+)?)%",
    "ratio": r"(\d+(?:\.\d+)?)x\b",
    "gate": r"(\d\.\d+) ± ",
    "gate_std": r" ± (\d\.\d+)",
    "millions": r"(\d+(?:\.\d+)?) M\b",
    "count": r"\b(\d{1,3}(?:,\d{3})+)\b",
    "points": r"(\d+(?:\.\d+)?) points?\b",
}


#: a reStructuredText heading's underline, of any level
UNDERLINE = re.compile(r"([=\-~^\"'`#*+])\1{2,}")


def _section(text: str, title: str) -> str:
    """The body of section ``title``, up to the next heading of any level."""
    lines = text.splitlines()
    start = lines.index(title) + 2  # the title, its underline
    end = next(
        (i - 1 for i in range(start + 1, len(lines)) if UNDERLINE.fullmatch(lines[i])), len(lines)
    )
    return "\n".join(lines[start:end])


def _fractions(m: dict[str, Any]) -> Iterator[float]:
    for split in ("test", "val", "train_eval"):
        result = m.get(split) or {}
        if "accuracy" in result:
            yield result["accuracy"]
            yield from result.get("per_class_accuracy") or []
    for key in ("eval_acc", "train_acc"):
        yield from m["history"].get(key) or []


def _candidates(report: dict[str, Any]) -> dict[str, list[float]]:
    models = report["models"]
    fractions = [f for m in models for f in _fractions(m)]
    finding_numbers = [
        v for f in report["findings"] for v in f.get("numbers", {}).values() if v is not None
    ]
    fractions += finding_numbers
    gates = [s for m in models for s in ((m.get("se_gates") or {}).get("stages") or {}).values()]
    grads = [m["grad_flow"] for m in models if m.get("grad_flow")]
    accuracies = [m[s]["accuracy"] for m in models for s in ("test", "val") if m.get(s)]
    params = [m["params"] for m in models]
    return {
        "percent": [100 * f for f in fractions] + [100 * (1 - f) for f in fractions],
        "ratio": [
            r for g in grads for late in (False, True) if (r := gradient_ratio(g, late)) is not None
        ],
        "gate": [s["mean"] for s in gates],
        "gate_std": [s["std"] for s in gates],
        "millions": [n / 1e6 for m in models for n in (m["params"], m["macs"]) if n],
        "count": params + [abs(a - b) for a, b in itertools.combinations(params, 2)],
        "points": [100 * abs(a - b) for a, b in itertools.combinations(accuracies, 2)],
    }


def _matches(written: str, candidates: Iterable[float]) -> bool:
    """``written`` (e.g. ``83.23``, ``655``, ``2,752``) is a candidate rounded to its digits."""
    digits = written.replace(",", "")
    decimals = len(digits.partition(".")[2])
    value = float(digits)
    return any(abs(c - value) <= 0.5 * 10**-decimals + 1e-9 for c in candidates)


def _unbacked(text: str, candidates: dict[str, list[float]]) -> list[str]:
    return [
        f"{kind} {m.group(1)!r} in ...{text[max(0, m.start() - 40) : m.end() + 10]!r}"
        for kind, pattern in PATTERNS.items()
        for m in re.finditer(pattern, text)
        if not _matches(m.group(1), candidates[kind])
    ]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return json.loads(REPORT.read_text())


def test_every_number_of_the_analysis_is_in_the_report(report: dict[str, Any]) -> None:
    text = _section(PAGE.read_text(), SECTION)
    assert len(re.findall(PATTERNS["percent"], text)) > 20  # the section was found and read
    assert _unbacked(text, _candidates(report)) == []


def test_every_number_of_the_front_page_summary_is_in_the_report(report: dict[str, Any]) -> None:
    text = _section(INDEX.read_text(), INDEX_SECTION)
    assert len(re.findall(PATTERNS["percent"], text)) >= 6  # the section was found and read
    assert _unbacked(text, _candidates(report)) == []


def test_a_number_not_in_the_report_is_found(report: dict[str, Any]) -> None:
    text = _section(PAGE.read_text(), SECTION)
    candidates = _candidates(report)
    first = re.search(r"(\d+\.\d\d)% test", text)
    assert first is not None
    # a transcription error: the first test accuracy off by a few tenths, to a value no
    # report number rounds to
    wrong = next(
        w
        for delta in (0.37, 0.41, 0.53, 0.67, 0.79)
        if not _matches(w := f"{float(first.group(1)) + delta:.2f}", candidates["percent"])
    )
    altered = text.replace(first.group(0), f"{wrong}% test", 1)
    unbacked = _unbacked(altered, candidates)
    assert len(unbacked) == 1 and repr(wrong) in unbacked[0]
