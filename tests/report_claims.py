"""Numbers of a written analysis checked against the comparison report they come from.

A :class:`Claim` is a phrase of the text with ``{}`` where it writes a number, and the
:class:`Field` of report.json each number is; :func:`wrong_numbers` lists every number of a
text that is not its field as the report rounds it (Python's float format at the written
precision), and fails on a number that no phrase names. A field is read from report.json, or
for the training activations of reports written before cifarzoo measured them, counted from
the architecture. docs/lab.rst's analyses and its
opening summary are checked this way (tests/test_lab_docs.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cifarzoo.compare.findings import gradient_ratio

Report = dict[str, Any]

#: a written number: ``83.23``, ``655``, ``2,752``
NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
#: a reStructuredText heading's underline, of any level
UNDERLINE = re.compile(r"([=\-~^\"'`#*+])\1{2,}")
#: inline literals (``plain20``): names, not numbers
LITERAL = re.compile(r"``[^`]+``")


# --- the fields a number can name ----------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A number of the report, by name: ``value`` reads it from report.json."""

    name: str
    value: Callable[[Report], float]


def _model(report: Report, name: str) -> dict[str, Any]:
    return next(m for m in report["models"] if m["name"] == name)


def _fraction(report: Report, model: str, split: str) -> float:
    return float(_model(report, model)[split]["accuracy"])


SPLITS = {"test": "test", "val": "validation", "train_eval": "final training"}


def accuracy(model: str, split: str) -> Field:
    return Field(
        f"{model}'s {SPLITS[split]} accuracy (%)", lambda r: 100 * _fraction(r, model, split)
    )


def error(model: str, split: str) -> Field:
    return Field(
        f"{model}'s {SPLITS[split]} error (%)", lambda r: 100 * (1 - _fraction(r, model, split))
    )


def lead(model: str, over: str, split: str) -> Field:
    return Field(
        f"{model}'s {SPLITS[split]} accuracy minus {over}'s (points)",
        lambda r: 100 * (_fraction(r, model, split) - _fraction(r, over, split)),
    )


def class_accuracy(model: str, name: str) -> Field:
    def value(r: Report) -> float:
        per_class = _model(r, model)["test"]["per_class_accuracy"]
        return 100 * float(per_class[r["classes"].index(name)])

    return Field(f"{model}'s test accuracy on {name} (%)", value)


def classes(name: str, before: str, after: str) -> tuple[Field, Field]:
    """The test accuracy on class ``name`` of two models."""
    return class_accuracy(before, name), class_accuracy(after, name)


def val_after(model: str, epoch: int) -> Field:
    def value(r: Report) -> float:
        history = _model(r, model)["history"]
        assert history["eval_split"] == "val" and history["epoch"][epoch - 1] == epoch
        return 100 * float(history["eval_acc"][epoch - 1])

    return Field(f"{model}'s validation accuracy after epoch {epoch} (%)", value)


def params(model: str) -> Field:
    return Field(f"{model}'s parameters (millions)", lambda r: _model(r, model)["params"] / 1e6)


def macs(model: str) -> Field:
    return Field(f"{model}'s MACs (millions)", lambda r: _model(r, model)["macs"] / 1e6)


def more_params(model: str, than: str) -> Field:
    return Field(
        f"{model}'s parameters minus {than}'s",
        lambda r: _model(r, model)["params"] - _model(r, than)["params"],
    )


def _ratio(r: Report, model: str, late: bool) -> float:
    value = gradient_ratio(_model(r, model)["grad_flow"], late)
    assert value is not None, f"{model} has no gradient ratio"
    return value


def ratio(model: str, *, late: bool = False) -> Field:
    when = "late in training" if late else "at initialisation"
    return Field(f"{model}'s gradient ratio {when}", lambda r: _ratio(r, model, late))


def late_ratios(pick: Callable[[list[float]], float], models: Sequence[str]) -> Field:
    return Field(
        f"{pick.__name__} of {', '.join(models)}'s gradient ratios late in training",
        lambda r: pick([_ratio(r, m, late=True) for m in models]),
    )


def gate(model: str, stage: str, statistic: str) -> Field:
    return Field(
        f"{model}'s {stage} gate {statistic}",
        lambda r: float(_model(r, model)["se_gates"]["stages"][stage][statistic]),
    )


def _leads(r: Report, model: str) -> list[bool]:
    """After each epoch, whether ``model`` has the highest validation accuracy of the report (a
    tie counts as leading)."""
    histories = [m["history"] for m in r["models"]]
    assert all(h["eval_split"] == "val" and h["epoch"] == histories[0]["epoch"] for h in histories)
    curves = [[float(v) for v in h["eval_acc"]] for h in histories]
    mine = [float(v) for v in _model(r, model)["history"]["eval_acc"]]
    return [v >= max(c[e] for c in curves) for e, v in enumerate(mine)]


def epochs_leading(model: str) -> Field:
    return Field(
        f"epochs after which {model} has the highest validation accuracy",
        lambda r: float(sum(_leads(r, model))),
    )


def leads_from(model: str) -> Field:
    def value(r: Report) -> float:
        leads = _leads(r, model)
        assert leads[-1], f"{model} does not lead after the last epoch"
        while leads and leads[-1]:
            leads.pop()
        return float(len(leads) + 1)

    return Field(f"first epoch from which {model} leads in every epoch", value)


def macs_ratio(model: str, over: str) -> Field:
    return Field(
        f"{model}'s MACs over {over}'s",
        lambda r: _model(r, model)["macs"] / _model(r, over)["macs"],
    )


def _activation_bytes(r: Report, model: str) -> int:
    """As the report has it, or (reports written before cifarzoo measured it) counted from the
    architecture, as ``compare`` counts it: a property of the architecture alone, so the
    report's ``model_args`` (initialisation only) do not change it."""
    recorded = _model(r, model).get("activation_bytes")
    return _counted_activation_bytes(model) if recorded is None else int(recorded)


@functools.cache
def _counted_activation_bytes(model: str) -> int:
    import torch

    from cifarzoo import create_model
    from cifarzoo.cost import count_activation_bytes

    with torch.device("meta"):
        return count_activation_bytes(create_model(model))


def activations(model: str) -> Field:
    return Field(
        f"{model}'s training activations per image (MiB)",
        lambda r: _activation_bytes(r, model) / 2**20,
    )


def activations_ratio(model: str, over: str) -> Field:
    return Field(
        f"{model}'s training activations over {over}'s",
        lambda r: _activation_bytes(r, model) / _activation_bytes(r, over),
    )


EPOCHS = Field("epochs of every run", lambda r: float(r["epochs"]))


# --- what the text says --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A phrase of the text, one ``{}`` where it writes each number of ``fields`` (a phrase
    without fields holds numbers that are no measurement, such as a citation)."""

    phrase: str
    fields: tuple[Field, ...] = ()

    def pattern(self) -> re.Pattern[str]:
        parts = (re.escape(part) for part in self.phrase.split("{}"))
        return re.compile(f"({NUMBER})".join(parts))


def claim(phrase: str, *fields: Field) -> Claim:
    assert phrase.count("{}") == len(fields), phrase
    return Claim(phrase, fields)


# --- checking -------------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The prose of section ``title`` (up to the next heading of any level; directives and
    their indented options and captions left out), on one line."""
    lines = text.splitlines()
    start = lines.index(title) + 2  # the title, its underline
    end = next(
        (i - 1 for i in range(start + 1, len(lines)) if UNDERLINE.fullmatch(lines[i])), len(lines)
    )
    paragraphs = "\n".join(lines[start:end]).split("\n\n")
    prose = [p for p in paragraphs if p.strip() and not p.startswith((" ", ".."))]
    return " ".join(" ".join(prose).split())


def as_written(value: float, written: str) -> str:
    """``value`` as the report rounds it, at the precision of ``written`` (``2,752`` -> 0
    decimals, thousands separated; ``83.23`` -> 2)."""
    decimals = len(written.partition(".")[2])
    return f"{value:{',' if ',' in written else ''}.{decimals}f}"


@dataclass(frozen=True)
class Number:
    """A number of the text: where it is, as written, and the field it names."""

    start: int
    end: int
    written: str
    field: Field


def numbers(text: str, claims: Sequence[Claim]) -> Iterator[Number]:
    """The numbers of ``claims``, each phrase found after the one before it.

    Raises:
        AssertionError: a phrase is not in the text (after the one before it), or a number
            of the text is in none of the phrases.
    """
    at, covered = 0, set[int]()
    for c in claims:
        found = c.pattern().search(text, at)
        assert found is not None, f"no {c.phrase!r} in the text after ...{text[at - 60 : at]!r}"
        covered.update(range(found.start(), found.end()))
        for group, field in enumerate(c.fields, start=1):
            yield Number(found.start(group), found.end(group), found.group(group), field)
        at = found.end()
    names = {i for m in LITERAL.finditer(text) for i in range(m.start(), m.end())}
    unnamed = [
        f"{m.group()!r} in ...{text[max(0, m.start() - 40) : m.end() + 10]!r}"
        for m in re.finditer(NUMBER, text)
        if m.start() not in covered and m.start() not in names
    ]
    assert not unnamed, "numbers that no phrase of the test names a field for: " + "; ".join(
        unnamed
    )


def wrong_numbers(text: str, claims: Sequence[Claim], report: Report) -> list[str]:
    """Each number of ``text`` that is not its field in ``report``, as the report rounds it, in
    words."""
    return [
        f"{n.written!r} is {n.field.name}: {expected} "
        f"(in ...{text[max(0, n.start - 40) : n.end + 10]!r})"
        for n in numbers(text, claims)
        if n.written != (expected := as_written(n.field.value(report), n.written))
    ]
