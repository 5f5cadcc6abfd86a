"""The comparison's answer in words: each key number of a report, as a sentence.

:func:`findings` reads a :class:`~cifarzoo.compare.ComparisonReport` and states what its numbers
show (only for the models it holds): shortcuts at each depth, the degradation of plain networks
with depth, the gradient reaching the first layers, what SE gates and dense connections change,
and which classes gain. Runs too short to mean anything (:func:`too_short`) get one statement
saying so instead. :func:`degradation_rows` is the training-error table of He et al. 2016's
plain-vs-residual result. Every number is last-epoch; nothing is chosen on the test set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..formats import percent, times
from .results import ComparisonReport, ModelReport

__all__ = [
    "CONCLUSION_TOPICS",
    "MIN_EPOCHS",
    "MIN_LEAD_OVER_CHANCE",
    "Finding",
    "degradation_rows",
    "epochs_trained",
    "findings",
    "gradient_ratio",
    "gradient_records",
    "plain_residual_pairs",
    "too_short",
]

#: Conclusions are drawn only from runs of at least this many epochs...
MIN_EPOCHS = 5
#: ...in which the best model's test accuracy beats chance by at least this much.
MIN_LEAD_OVER_CHANCE = 0.2
#: The findings that make a report's conclusion (the others have their own sections).
CONCLUSION_TOPICS = ("preliminary", "best", "degradation", "se", "dense")

_DEPTH = re.compile(r"^(plain|resnet|seresnet)(\d+)$")


@dataclass(frozen=True)
class Finding:
    """One statement and the numbers behind it (``numbers`` keys name what each value is)."""

    topic: str
    text: str
    numbers: dict[str, float] = field(default_factory=dict)


def _train_error(m: ModelReport) -> float | None:
    return None if m.train_eval is None else 1.0 - float(m.train_eval["accuracy"])


def _augmented_train_error(m: ModelReport) -> float | None:
    accs = m.history.get("train_acc") or []
    return 1.0 - float(accs[-1]) if accs else None


def epochs_trained(m: ModelReport) -> int:
    """The epochs a model's history records (its last epoch number), else those its shipped
    weights record."""
    epochs = m.history.get("epoch") or []
    if epochs:
        return int(max(epochs))
    return int((m.weights or {}).get("epochs") or 0)


def too_short(report: ComparisonReport) -> str | None:
    """Why the report's runs are too short to compare the architectures, or ``None``: a model
    trained fewer than :data:`MIN_EPOCHS` epochs, or the best test accuracy within
    :data:`MIN_LEAD_OVER_CHANCE` of chance (one class in ``num_classes``)."""
    if not report.models:
        return None
    reasons = []
    short = {m.name: epochs_trained(m) for m in report.models if epochs_trained(m) < MIN_EPOCHS}
    if short and len(short) == len(report.models) and len(set(short.values())) == 1:
        n = next(iter(short.values()))
        reasons.append(f"{n} epoch{'' if n == 1 else 's'} of training, fewer than {MIN_EPOCHS}")
    elif short:
        listed = ", ".join(f"{name} ({n})" for name, n in short.items())
        reasons.append(f"epochs of training fewer than {MIN_EPOCHS}: {listed}")
    chance = 1 / max(1, len(report.models[0].test.get("per_class_accuracy") or [0] * 10))
    best = max(float(m.test["accuracy"]) for m in report.models)
    if best < chance + MIN_LEAD_OVER_CHANCE:
        reasons.append(
            f"the best test accuracy, {percent(best)}, is within "
            f"{100 * MIN_LEAD_OVER_CHANCE:.0f} points of chance ({percent(chance)})"
        )
    if not reasons:
        return None
    return (
        f"These runs are too short to compare the architectures ({'; '.join(reasons)}): the "
        "numbers below describe these runs only. Train for "
        f"{MIN_EPOCHS} epochs or more (--epochs) before drawing conclusions from them."
    )


def _depth_rows(report: ComparisonReport) -> list[dict[str, Any]]:
    """:func:`degradation_rows` for every plain or residual network, paired or not."""
    rows = []
    for m in report.models:
        match = _DEPTH.match(m.name)
        if match is None or match.group(1) == "seresnet":
            continue
        val = m.last_val_accuracy
        rows.append(
            {
                "model": m.name,
                "depth": int(match.group(2)),
                "shortcuts": match.group(1) == "resnet",
                "train_error": _train_error(m),
                "train_error_augmented": _augmented_train_error(m),
                "val_error": None if val is None else 1.0 - val,
                "test_error": 1.0 - float(m.test["accuracy"]),
            }
        )
    return sorted(rows, key=lambda r: (r["depth"], r["shortcuts"]))


def degradation_rows(report: ComparisonReport) -> list[dict[str, Any]]:
    """One row per plain or residual CIFAR network of the report, by depth then shortcuts:
    ``model``, ``depth``, ``shortcuts``, ``train_error`` (unaugmented training images, eval
    mode), ``train_error_augmented`` (the last epoch's running error on augmented batches),
    ``val_error`` and ``test_error``. Empty unless the report holds a plain network and its
    residual twin (``plainN`` and ``resnetN``): without both, the table shows no degradation."""
    if not plain_residual_pairs(report.models):
        return []
    return _depth_rows(report)


def gradient_records(grad_flow: dict[str, Any], late: bool = False) -> Sequence[Sequence[float]]:
    """The gradient records of one moment: the first (initialisation) or, with ``late``, the
    last tenth of them."""
    norms: Sequence[Sequence[float]] = grad_flow.get("norms") or []
    return norms[-max(1, len(norms) // 10) :] if late else norms[:1]


def plain_residual_pairs(
    models: Sequence[ModelReport],
) -> list[tuple[int, ModelReport, ModelReport]]:
    """``(depth, plainN, resnetN)`` for each depth at which the models hold both networks."""
    by_name = {m.name: m for m in models}
    depths = sorted(
        int(match.group(2))
        for m in models
        if (match := _DEPTH.match(m.name)) is not None and match.group(1) == "plain"
    )
    return [
        (d, by_name[f"plain{d}"], by_name[f"resnet{d}"]) for d in depths if f"resnet{d}" in by_name
    ]


def gradient_ratio(grad_flow: dict[str, Any], late: bool = False) -> float | None:
    """How much gradient reaches the input side: the mean gradient norm of the first quarter of
    the recorded layers over that of the last quarter (the classifier excluded), at the first
    record (initialisation) or, with ``late``, averaged over the last tenth of the records."""
    rows = gradient_records(grad_flow, late)
    layers = grad_flow.get("layers") or []
    if not rows or len(layers) < 5:
        return None
    width = len(layers) - 1  # the last recorded layer is the classifier
    quarter = max(1, width // 4)
    first = [v for r in rows for v in r[:quarter]]
    last = [v for r in rows for v in r[width - quarter : width]]
    denominator = sum(last) / len(last)
    if denominator <= 0 or not math.isfinite(denominator):
        return None
    return (sum(first) / len(first)) / denominator


def _with_val(test: float, val: float | None) -> str:
    """``16.77% (validation 16.26%)``: a test figure with the validation figure beside it."""
    return percent(test) + ("" if val is None else f" (validation {percent(val)})")


def _accuracies(m: ModelReport) -> str:
    """``84.72% test / 85.10% validation accuracy`` (the test figure alone without a split)."""
    val = m.last_val_accuracy
    test = percent(float(m.test["accuracy"]))
    return f"{test} test" + ("" if val is None else f" / {percent(val)} validation") + " accuracy"


def _shortcut_findings(report: ComparisonReport) -> list[Finding]:
    out = []
    rows = {r["model"]: r for r in _depth_rows(report)}
    depths = sorted({r["depth"] for r in rows.values()})
    for d in depths:
        plain, res = rows.get(f"plain{d}"), rows.get(f"resnet{d}")
        if plain is None or res is None or None in (plain["train_error"], res["train_error"]):
            continue
        out.append(
            Finding(
                "shortcuts",
                f"Depth {d}: without shortcuts (plain{d}) the final training error is "
                f"{percent(plain['train_error'])}, with them (resnet{d}) "
                f"{percent(res['train_error'])}; test error "
                f"{_with_val(plain['test_error'], plain['val_error'])} vs "
                f"{_with_val(res['test_error'], res['val_error'])}.",
                {
                    f"plain{d}_train_error": plain["train_error"],
                    f"resnet{d}_train_error": res["train_error"],
                    f"plain{d}_test_error": plain["test_error"],
                    f"resnet{d}_test_error": res["test_error"],
                },
            )
        )
    for kind, label in (("plain", "Plain networks"), ("resnet", "Residual networks")):
        family = [rows[f"{kind}{d}"] for d in depths if f"{kind}{d}" in rows]
        family = [r for r in family if r["train_error"] is not None]
        if len(family) < 2:
            continue
        shallow, deep = family[0], family[-1]
        worse = deep["train_error"] > shallow["train_error"]
        if kind == "plain":
            verdict = (
                "deeper trains worse: the degradation problem"
                if worse
                else "no degradation at this length of training"
            )
        else:
            verdict = "depth no longer hurts training" if not worse else "deeper trains worse"
        out.append(
            Finding(
                "degradation",
                f"{label}: from {shallow['depth']} to {deep['depth']} layers the final training "
                f"error goes from {percent(shallow['train_error'])} to "
                f"{percent(deep['train_error'])} "
                f"({verdict}); test error {_with_val(shallow['test_error'], shallow['val_error'])}"
                f" to {_with_val(deep['test_error'], deep['val_error'])}.",
                {
                    f"{shallow['model']}_train_error": shallow["train_error"],
                    f"{deep['model']}_train_error": deep["train_error"],
                },
            )
        )
    return out


def _gradient_findings(report: ComparisonReport) -> list[Finding]:
    out = []
    for m in report.models:
        if not m.grad_flow:
            continue
        at_init, late = gradient_ratio(m.grad_flow), gradient_ratio(m.grad_flow, late=True)
        if at_init is None or late is None:
            continue
        out.append(
            Finding(
                "gradients",
                f"{m.name}: the gradient norm of the first quarter of its layers is "
                f"{times(at_init)} that of the last quarter at initialisation and {times(late)} "
                "late in training.",
                {f"{m.name}_ratio_init": at_init, f"{m.name}_ratio_late": late},
            )
        )
    return out


def _se_findings(report: ComparisonReport) -> list[Finding]:
    """What SE gates change against the same network without them (``se``), and how the gates
    spread over test images (``se_gates``)."""
    out = []
    for m in report.models:
        match = _DEPTH.match(m.name)
        if match is None or match.group(1) != "seresnet":
            continue
        base = report.model(f"resnet{match.group(2)}")
        if base is not None:
            gain = float(m.test["accuracy"]) - float(base.test["accuracy"])
            text = (
                f"SE gates: {m.name} reaches {_accuracies(m)} against {base.name}'s "
                f"{_accuracies(base)} ({100 * gain:+.2f} points of test accuracy) for "
                f"{m.params - base.params:,} more parameters."
            )
            out.append(Finding("se", text, {"test_accuracy_gain": gain}))
        stages = (m.se_gates or {}).get("stages")
        if stages:
            spread = ", ".join(
                f"{stage} {s['mean']:.2f} ± {s['std']:.2f}" for stage, s in stages.items()
            )
            numbers = {f"{m.name}_{stage}_gate_std": float(s["std"]) for stage, s in stages.items()}
            text = f"{m.name}'s gates (mean ± std over test images): {spread}."
            out.append(Finding("se_gates", text, numbers))
    return out


def _dense_findings(report: ComparisonReport) -> list[Finding]:
    out = []
    residual = [m for m in report.models if m.name.startswith("resnet")]
    for m in report.models:
        if not m.name.startswith("densenet") or not residual:
            continue
        best = max(residual, key=lambda r: float(r.test["accuracy"]))
        # no seconds per epoch: runs read from folders may come from other machines or loads
        costs = ""
        if m.activation_bytes and best.activation_bytes:
            costs = (
                f"; a training step keeps {m.activation_bytes / best.activation_bytes:.1f}x the "
                "activations per image"
            )
        out.append(
            Finding(
                "dense",
                f"Dense connections: {m.name} reaches {_accuracies(m)} with "
                f"{m.params / 1e6:.2f} M parameters and {m.macs / 1e6:.0f} M MACs, the best "
                f"ResNet here ({best.name}) {_accuracies(best)} with "
                f"{best.params / 1e6:.2f} M and {best.macs / 1e6:.0f} M{costs}.",
                {
                    "dense_test_accuracy": float(m.test["accuracy"]),
                    "resnet_test_accuracy": float(best.test["accuracy"]),
                },
            )
        )
    return out


def _class_findings(report: ComparisonReport, classes: Sequence[str]) -> list[Finding]:
    models = report.models
    if not models:
        return []
    best = max(models, key=lambda m: float(m.test["accuracy"]))
    worst = min(models, key=lambda m: float(m.test["accuracy"]))
    acc = best.test["per_class_accuracy"]
    names = list(classes) if len(classes) == len(acc) else [str(i) for i in range(len(acc))]
    hardest = min(range(len(acc)), key=lambda c: acc[c])
    val = best.last_val_accuracy
    out = [
        Finding(
            "best",
            f"Highest test accuracy: {best.name}, {_with_val(float(best.test['accuracy']), val)}"
            f"; its hardest class is {names[hardest]} ({percent(acc[hardest])}).",
            {"test_accuracy": float(best.test["accuracy"])},
        )
    ]
    if worst is not best:
        base = worst.test["per_class_accuracy"]
        gains = [a - b for a, b in zip(acc, base, strict=True)]
        order = sorted(range(len(gains)), key=lambda c: -gains[c])
        most, least = order[0], order[-1]
        least_text = "loses the most" if gains[least] < 0 else "the least"
        out.append(
            Finding(
                "classes",
                f"From {worst.name} to {best.name}, {names[most]} gains the most "
                f"({percent(base[most])} to {percent(acc[most])}) and {names[least]} {least_text} "
                f"({percent(base[least])} to {percent(acc[least])}).",
                {f"{names[most]}_gain": gains[most], f"{names[least]}_gain": gains[least]},
            )
        )
    return out


def findings(report: ComparisonReport) -> list[Finding]:
    """What the report's numbers say, one :class:`Finding` per statement; for runs too short
    to mean anything (:func:`too_short`), only the one saying so (topic ``preliminary``)."""
    reason = too_short(report)
    if reason is not None:
        best = max(float(m.test["accuracy"]) for m in report.models)
        epochs = min(epochs_trained(m) for m in report.models)
        return [Finding("preliminary", reason, {"epochs": epochs, "best_test_accuracy": best})]
    classes = report.meta.get("classes") or []
    return [
        *_class_findings(report, classes),
        *_shortcut_findings(report),
        *_gradient_findings(report),
        *_se_findings(report),
        *_dense_findings(report),
    ]
