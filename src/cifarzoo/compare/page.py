"""The report's HTML page (``templates/report.html``): a conclusion in words and one table of
results first, then the figures, each section with what its numbers mean said once."""

from __future__ import annotations

import base64
import html
import re
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..formats import DASH, duration, mebibytes, percent, times
from .figures import FIGURES
from .findings import CONCLUSION_TOPICS, Finding, degradation_rows, gradient_ratio
from .results import ComparisonReport, ModelReport

__all__ = [
    "ACCURACY_NOTE",
    "DEGRADATION_COLUMNS",
    "GRADIENT_RATIO_NOTE",
    "RESULT_COLUMNS",
    "SECONDS_CAVEAT",
    "html_page",
    "result_rows",
    "test_cell",
    "weights_line",
]

#: The columns of the results table, the page's and ``summary.txt``'s.
RESULT_COLUMNS = (
    "model", "params", "MACs", "training error", "val accuracy", "test accuracy",
    "gradient ratio (init / late)",
)  # fmt: skip
#: What the results table's gradient ratio is (said once, under the table).
GRADIENT_RATIO_NOTE = (
    "Gradient ratio: the mean gradient norm of the first quarter of a network's layers over "
    "that of its last quarter (the classifier left out), at initialisation and averaged over "
    "the last tenth of training. Near 1, every layer gets steps of one size; far above 1, the "
    "first layers get much larger steps than the last ones; far below 1, the gradient vanishes "
    "on its way to the input."
)
#: What the results table's accuracies are (said once, under the table).
ACCURACY_NOTE = (
    "Accuracies are one forward pass, what `model(x)` gives; a test-time augmentation's test "
    "accuracy, when one was measured, is named beside it (flip TTA: ...)."
)
DEGRADATION_COLUMNS = [
    "model", "depth", "shortcuts", "training error", "training error (augmented)",
    "validation error", "test error",
]  # fmt: skip
SECONDS_CAVEAT = (
    "Seconds per epoch are wall-clock time (a training epoch and its validation pass) on the "
    "machine each model trained on, under whatever else ran there at the time: compare MACs "
    "for cost, and these seconds only between runs made on one machine under one load."
)


def _ratios(m: ModelReport) -> str:
    if not m.grad_flow:
        return DASH
    init, late = gradient_ratio(m.grad_flow), gradient_ratio(m.grad_flow, late=True)
    if init is None or late is None:
        return DASH
    return f"{times(init)} / {times(late)}"


def test_cell(test: Mapping[str, Any]) -> str:
    """The test accuracy, one forward pass, and its test-time augmentation's beside it, named
    (``88.42% (flip + translate TTA: 89.73%)``)."""
    tta = test.get("tta_accuracy")
    single = percent(float(test["accuracy"]))
    return single if tta is None else f"{single} ({test.get('tta')} TTA: {percent(float(tta))})"


def result_rows(report: ComparisonReport) -> list[list[str]]:
    """The results table: the header (:data:`RESULT_COLUMNS`), then one row per model."""
    rows = [list(RESULT_COLUMNS)]  # the val column is a dash without a validation split
    for m in report.models:
        train_error = None if m.train_eval is None else 1 - float(m.train_eval["accuracy"])
        rows.append(
            [
                m.name,
                f"{m.params / 1e6:.2f} M",
                f"{m.macs / 1e6:.1f} M",
                percent(train_error),
                percent(m.last_val_accuracy),
                test_cell(m.test),
                _ratios(m),
            ]
        )
    return rows


def _inline(text: str) -> str:
    """``text`` as HTML: escaped, and ```code``` spans as ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _table(rows: Sequence[Sequence[str]]) -> str:
    """An HTML table: ``rows[0]`` the header, a model name first in each row."""
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in rows[0])
    body = "".join(
        f"<tr><td><code>{e(row[0])}</code></td>{''.join(f'<td>{e(c)}</td>' for c in row[1:])}</tr>"
        for row in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(pngs: Mapping[str, bytes], key: str, alt: str) -> str:
    """The figure ``key`` inlined as a data URL, or nothing when it was not drawn."""
    name = FIGURES[key]
    if name not in pngs:
        return ""
    b64 = base64.b64encode(pngs[name]).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}"></figure>'


def _init_note(report: ComparisonReport) -> str:
    """How the models started, from their constructor arguments: the convolutions
    (``conv_init``; a model that takes none, such as LeNet, does not count) and whether the
    residual blocks' last BN started at zero."""
    args = [m.model_args for m in report.models]
    conv_inits = {a["conv_init"] for a in args if "conv_init" in a}
    every_bn_at_one = any(a.get("zero_init_residual") is False for a in args)
    if conv_inits <= {"kaiming"} and not every_bn_at_one:
        return (
            "Each model has its default initialisation (the residual blocks' last BN starts at "
            "zero, so each block starts as the identity)."
        )
    if conv_inits == {"pytorch"}:
        convs = "Convolutions start at PyTorch's default initialisation (conv_init='pytorch')"
    elif conv_inits <= {"kaiming"}:
        convs = "Each model has its default convolutions"
    else:
        each = (
            f"{m.name} {m.model_args['conv_init']}"
            for m in report.models
            if "conv_init" in m.model_args
        )
        convs = f"Convolutions start as conv_init says ({', '.join(each)})"
    if not every_bn_at_one:
        return f"{convs}; the residual blocks' last BN starts at zero."
    alike = ", so residual and plain networks start alike" if degradation_rows(report) else ""
    return f"{convs}; every BN starts at one (no residual block's last BN at zero){alike}."


def _sentences(found: Sequence[Finding], topics: Sequence[str]) -> str:
    return " ".join(_inline(f.text) for f in found if f.topic in topics)


def _bullets(found: Sequence[Finding], topics: Sequence[str]) -> str:
    items = "".join(f"<li>{_inline(f.text)}</li>" for f in found if f.topic in topics)
    return f"<ul class='conclusion'>{items}</ul>"


def _degradation(report: ComparisonReport, found: Sequence[Finding]) -> str:
    rows = degradation_rows(report)
    if not rows:
        return ""
    table = [
        DEGRADATION_COLUMNS,
        *(
            [r["model"], str(r["depth"]), "yes" if r["shortcuts"] else "no"]
            + [percent(r[k]) for k in ("train_error", "train_error_augmented")]
            + [percent(r[k]) for k in ("val_error", "test_error")]
            for r in rows
        ),
    ]
    return (
        "<h2>Plain vs residual: the degradation table</h2>"
        f"<p>{_sentences(found, ('shortcuts',))}</p>{_table(table)}"
        "<p class='meta'>Training error: unaugmented training images in eval mode after the "
        "last epoch; the augmented one is the last epoch's running error on the training "
        "batches. He et al. 2016 (Fig. 6): a deeper plain network trains worse, a deeper "
        "ResNet better.</p>"
    )


def _per_class_rows(models: Sequence[ModelReport], classes: Sequence[str]) -> str:
    """One row per class, each model's test accuracy, the best marked."""
    rows = []
    for c, cls in enumerate(classes):
        accs = [m.test["per_class_accuracy"][c] for m in models]
        best = max(accs) if accs else None
        cells = "".join(
            f"<td class='{'best' if a == best and len(accs) > 1 else ''}'>{percent(a)}</td>"
            for a in accs
        )
        rows.append(f"<tr><td>{html.escape(cls)}</td>{cells}</tr>")
    return "".join(rows)


def _gradient_section(report: ComparisonReport, pngs: Mapping[str, bytes]) -> str:
    grad = _img(pngs, "grad_flow", "gradient flow")
    if not grad:
        return "<p>No gradient records (runs reused without a grad_flow.json).</p>"
    every = sorted({int(m.grad_flow["every"]) for m in report.models if m.grad_flow})
    steps = ", ".join(str(k) for k in every)
    text = (
        "The L2 norm of each convolution and linear weight gradient just before the optimizer "
        f"step, recorded every {steps} steps; early records are dark, late ones yellow."
    )
    depth = _img(pngs, "grad_depth", "gradient norms of plain and residual networks")
    pairs = (
        f"<h3>Plain vs residual at the same depth</h3><p>{html.escape(_init_note(report))}</p>"
        f"{depth}"
        if depth
        else ""
    )
    return f"<h2>Gradient flow</h2><p>{text}</p>{grad}{pairs}"


def _se_section(
    pngs: Mapping[str, bytes], notes: Mapping[str, Any], found: Sequence[Finding]
) -> str:
    gates = _img(pngs, "se_gates", "SE gate distributions")
    if not gates:
        return ""
    what = notes.get("se_gates") or "SE gate values of each stage over test images"
    return (
        f"<h2>SE gates</h2><p>{_inline(what)}: channel weights in (0, 1), one histogram per "
        "stage. Gates near 0.5 everywhere mean the attention does little yet; spread-out gates "
        f"mean it selects channels per image. {_sentences(found, ('se_gates',))}</p>{gates}"
    )


def _source(m: ModelReport) -> str:
    if m.weights is not None:
        return f"weights {m.weights['name']}"
    return "trained here" if m.source == "trained" else f"run folder {Path(m.source).name}"


def weights_line(weights: Mapping[str, Any]) -> str:
    """What a report says of shipped weights: file, dtype, sha256, training, the training
    record, and the accuracies recorded with them."""
    w = weights
    acc = [
        f"{split} {percent(w[f'recorded_{split}_accuracy'])}"
        for split in ("test", "val")
        if w.get(f"recorded_{split}_accuracy") is not None
    ]
    trained = f"{w.get('epochs')} epochs x {w.get('train_images') or 0:,} images of {w.get('data')}"
    if w.get("train_seconds"):
        trained += f" in {duration(float(w['train_seconds']))}"
    record = "curves from its training record" if w.get("training_record") else "no curves shipped"
    return (
        f"{w['name']}: {w.get('file')} ({w.get('dtype')}, sha256 {str(w.get('sha256'))[:12]}...), "
        f"trained {trained} on {w.get('hardware')}; {record}; recorded with the weights (float32, "
        f"one forward pass): {', '.join(acc) or 'no accuracy'}."
    )


def _cost_section(report: ComparisonReport, pngs: Mapping[str, bytes]) -> str:
    models, notes = report.models, report.meta.get("notes") or {}
    memory = any(m.peak_memory_bytes is not None for m in models)
    activations = any(m.activation_bytes is not None for m in models)
    header = ["model", "parameters", "MACs / image"]
    header += ["activations / image (MiB)"] * activations + ["s / epoch (wall clock)"]
    rows = [
        [m.name, f"{m.params:,}", f"{m.macs / 1e6:,.1f} M"]
        + [mebibytes(m.activation_bytes)] * activations
        + [DASH if m.seconds_per_epoch is None else f"{m.seconds_per_epoch:.1f}"]
        + [DASH if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 2**20:,.0f}"] * memory
        + [_source(m)]
        for m in models
    ]
    header += ["peak memory (MiB)"] * memory + ["source"]
    text = [f"MACs: {notes.get('macs', '')}."]
    if activations:
        text.append(f"Activations: {notes.get('activations', '')}.")
    text.append(SECONDS_CAVEAT)
    if memory:
        text.append(f"Peak memory: {notes.get('peak_memory', '')}.")
    return (
        f"<h2>Cost</h2>{_table([header, *rows])}<p class='meta'>"
        f"{' '.join(_inline(t) for t in text)}</p>{_img(pngs, 'cost', 'cost and accuracy')}"
    )


def _context(report: ComparisonReport) -> str:
    """One line on what was compared, above the conclusion."""
    meta = report.meta
    epochs = meta.get("epochs")
    length = (
        f"{epochs} epoch{'' if epochs == 1 else 's'} each"
        if epochs
        else "each for its own number of epochs"
    )
    data = (meta.get("data") or {}).get("name") or "?"
    shipped = [m.weights["name"] for m in report.models if m.weights is not None]
    if shipped:
        differs = (meta.get("recipe") or {}).get("differs") or []
        recipe = "one recipe"
        if differs:
            named = ", ".join(differs) if len(differs) <= 3 else "several fields (see Setting)"
            recipe = f"recipes that differ in {named}"
        return html.escape(
            f"{len(shipped)} shipped weights ({', '.join(shipped)}), trained with {recipe}, "
            f"{length}, seed {meta.get('seed')}; evaluated here on {data} in "
            f"{meta.get('evaluation', 'float32')}; the full setting is at the end."
        )
    return html.escape(
        f"{len(report.models)} models trained with one recipe, {length}, seed "
        f"{meta.get('seed')}, on {data}; the full setting is at the end."
    )


def _setting(meta: Mapping[str, Any], weights: Sequence[Mapping[str, Any]]) -> str:
    """The data, recipe, machines and software the comparison ran with, and the shipped
    ``weights`` it read."""
    e = html.escape
    data = meta.get("data") or {}
    recipe = ", ".join(f"{k}={v}" for k, v in (meta.get("recipe") or {}).items() if v != [])

    def count(key: str) -> str:
        n = data.get(key)
        return f"{n:,}" if isinstance(n, int) else "?"

    val = f"val {count('val')}, " if data.get("val") else ""
    machines = f"trained on {e(str(meta.get('device')))}"
    if meta.get("measured_on") and meta["measured_on"] != meta.get("device"):
        machines += f", evaluated on {e(str(meta['measured_on']))}"
    return (
        f"Data: {e(str(data.get('name', '?')))} (train {count('train')}, {val}test "
        f"{count('test')}); {meta.get('epochs')} epoch(s), seed {meta.get('seed')}; "
        f"{machines}; cifarzoo {e(str(meta.get('cifarzoo_version')))}, torch "
        f"{e(str(meta.get('torch_version')))}; created {e(str(meta.get('created')))}."
        f"<br>Recipe (cifarzoo.training.fit): {e(recipe)}."
        + "".join(f"<br>Weights {e(weights_line(w))}" for w in weights)
    )


def html_page(
    report: ComparisonReport,
    found: Sequence[Finding],
    classes: Sequence[str],
    pngs: Mapping[str, bytes],
) -> str:
    """The self-contained ``report.html`` of ``report``, its findings and figures."""
    notes = report.meta.get("notes") or {}
    template = string.Template(
        resources.files(__package__).joinpath("templates/report.html").read_text("utf-8")
    )
    result_notes = [
        ACCURACY_NOTE,
        GRADIENT_RATIO_NOTE,
        f"Training error: {notes.get('train_eval', DASH)}.",
    ]
    if report.meta.get("evaluation"):
        result_notes.append(
            f"The shipped weights were evaluated here in {report.meta['evaluation']}, each with "
            "the validation split its training held out; their validation accuracy is the last "
            "epoch's of their training record when it measured these same images (measured "
            "here otherwise). The float32 figures recorded with them are under Setting."
        )
    return template.substitute(
        title=html.escape(", ".join(m.name for m in report.models)),
        context=_context(report),
        conclusion=_bullets(found, CONCLUSION_TOPICS),
        results=_table(result_rows(report)),
        result_notes=" ".join(_inline(t) for t in result_notes)
        + " Every number is the last epoch's (never the best epoch's). "
        + html.escape(_init_note(report)),
        fig_curves=_img(pngs, "curves", "loss and accuracy curves"),
        degradation=_degradation(report, found),
        classes=_sentences(found, ("classes",)),
        model_heads="".join(f"<th>{html.escape(m.name)}</th>" for m in report.models),
        per_class_rows=_per_class_rows(report.models, classes),
        fig_per_class=_img(pngs, "per_class", "per-class accuracy"),
        fig_confusion=_img(pngs, "confusion", "confusion matrices"),
        grad_flow=_gradient_section(report, pngs),
        se_gates=_se_section(pngs, notes, found),
        cost=_cost_section(report, pngs),
        setting=_setting(report.meta, [m.weights for m in report.models if m.weights]),
    )
