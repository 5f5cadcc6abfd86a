"""The comparison's figures (matplotlib, through :mod:`cifarzoo.plots`), as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..plots import pyplot
from .findings import gradient_records, plain_residual_pairs
from .results import ModelReport

__all__ = ["FIGURES", "render_figures"]

#: Figure role -> file name.
FIGURES = {
    "curves": "curves.png",
    "per_class": "per_class_accuracy.png",
    "confusion": "confusion_matrices.png",
    "cost": "cost.png",
    "grad_flow": "gradient_flow.png",
    "grad_depth": "gradient_plain_vs_residual.png",
    "se_gates": "se_gates.png",
}


def _colors(n: int) -> list[Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _panels(n: int, cols: int, width: float, height: float) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels of ``width`` x ``height`` inches, ``cols`` to a row (fewer for a
    smaller ``n``), and its first ``n`` axes; the cells left over are switched off."""
    cols = min(n, cols)
    rows = math.ceil(n / cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _plot_gradient_norms(ax: Any, norms: Sequence[float], **style: Any) -> None:
    """One line of per-layer gradient norms on a log scale (zeros and non-finite values left
    out)."""
    vals = [v if v > 0 and math.isfinite(v) else float("nan") for v in norms]
    ax.plot(range(len(vals)), vals, **style)
    ax.set_yscale("log")
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel("gradient L2 norm")
    ax.grid(alpha=0.3)


def _fig_curves(models: Sequence[ModelReport]) -> Any:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    panels = [
        ("train_loss", "training loss", axes[0, 0]),
        ("eval_loss", "validation loss", axes[0, 1]),
        ("train_acc", "training accuracy", axes[1, 0]),
        ("eval_acc", "validation accuracy", axes[1, 1]),
    ]
    for m, color in zip(models, _colors(len(models)), strict=True):
        epochs = m.history.get("epoch") or []
        for key, _, ax in panels:
            ys = m.history.get(key) or []
            pts = [(e, y) for e, y in zip(epochs, ys, strict=False) if y is not None]
            if not pts:
                continue
            xs, vs = zip(*pts, strict=True)
            scale = 100.0 if key.endswith("acc") else 1.0
            ax.plot(xs, [v * scale for v in vs], marker="o", ms=4, color=color, label=m.name)
    for key, title, ax in panels:
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if key.endswith("acc"):
            ax.set_ylabel("%")
            ax.set_xlabel("epoch")
    axes[0, 0].legend()
    return fig


def _fig_per_class(models: Sequence[ModelReport], classes: Sequence[str]) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    n = len(models)
    width = 0.8 / max(1, n)
    for i, (m, color) in enumerate(zip(models, _colors(n), strict=True)):
        acc = m.test["per_class_accuracy"]
        xs = [c + (i - (n - 1) / 2) * width for c in range(len(acc))]
        ax.bar(xs, [100 * a for a in acc], width, color=color, label=m.name)
    ax.set_xticks(range(len(classes)), list(classes), rotation=30)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(n, 4), fontsize="small")
    return fig


def _fig_confusion(models: Sequence[ModelReport], classes: Sequence[str]) -> Any:
    fig, axes = _panels(len(models), 2, 6.2, 5.4)
    for ax, m in zip(axes, models, strict=True):
        cm = torch.tensor(m.test["confusion_matrix"], dtype=torch.float64)
        norm = cm / cm.sum(1, keepdim=True).clamp(min=1)
        im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
        k = len(cm)
        for i in range(k):
            for j in range(k):
                v = float(norm[i, j])
                if v >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.5 else "black",
                    )
        labels = list(classes) if len(classes) == k else [str(i) for i in range(k)]
        ax.set_xticks(range(k), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{m.name} ({100 * m.test['accuracy']:.1f}%)")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def _fig_cost(models: Sequence[ModelReport]) -> Any:
    """One bar panel per cost, and test accuracy; a panel without any value is left out."""
    plt = pyplot()
    panels: list[tuple[str, list[float | None]]] = [
        ("parameters (M)", [m.params / 1e6 for m in models]),
        ("MACs per image (M)", [m.macs / 1e6 for m in models]),
        (
            "activations per image\n(MiB kept for backward)",
            [None if m.activation_bytes is None else m.activation_bytes / 2**20 for m in models],
        ),
        (
            "seconds per epoch\n(wall clock, machine-dependent)",
            [m.seconds_per_epoch for m in models],
        ),
        (
            "peak memory (MiB)",
            [None if m.peak_memory_bytes is None else m.peak_memory_bytes / 2**20 for m in models],
        ),
        ("test accuracy (%)", [100 * m.test["accuracy"] for m in models]),
    ]
    panels = [(title, values) for title, values in panels if any(v is not None for v in values)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    axes = axes[0]
    names = [m.name for m in models]
    colors = _colors(len(models))
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.bar(range(len(values)), [0.0 if v is None else v for v in values], color=colors)
        for i, v in enumerate(values):
            label = "n/a" if v is None else (f"{v:.3g}" if v < 1000 else f"{v:.0f}")
            ax.annotate(label, (i, 0.0 if v is None else v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return fig


def _fig_grad_flow(models: Sequence[ModelReport]) -> Any | None:
    shown = [m for m in models if m.grad_flow and m.grad_flow.get("norms")]
    if not shown:
        return None
    plt = pyplot()
    fig, axes = _panels(len(shown), 2, 6.5, 4.2)
    cmap = plt.get_cmap("viridis")
    for ax, m in zip(axes, shown, strict=True):
        assert m.grad_flow is not None
        steps, norms = m.grad_flow["steps"], m.grad_flow["norms"]
        last = max(1, steps[-1])
        for step, row in zip(steps, norms, strict=True):
            _plot_gradient_norms(ax, row, color=cmap(step / last), lw=0.9, alpha=0.8)
        ax.set_title(f"{m.name} ({len(norms[0])} layers)")
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, last))
        fig.colorbar(sm, ax=ax, label="training step")
    return fig


def _fig_se_gates(models: Sequence[ModelReport]) -> Any | None:
    shown = [m for m in models if m.se_gates and m.se_gates.get("stages")]
    if not shown:
        return None
    fig, axes = _panels(len(shown), len(shown), 6.0, 4.0)
    for ax, m in zip(axes, shown, strict=True):
        assert m.se_gates is not None
        stages = m.se_gates["stages"]
        for (stage, s), color in zip(stages.items(), _colors(len(stages)), strict=True):
            hist = s["histogram"]
            total = max(1, sum(hist))
            bins = len(hist)
            centers = [(i + 0.5) / bins for i in range(bins)]
            density = [h * bins / total for h in hist]
            ax.plot(
                centers,
                density,
                color=color,
                drawstyle="steps-mid",
                label=f"{stage} (mean {s['mean']:.2f})",
            )
            ax.fill_between(centers, density, step="mid", color=color, alpha=0.15)
        ax.set_xlim(0, 1)
        ax.set_xlabel("SE gate value")
        ax.set_ylabel("density")
        ax.set_title(f"{m.name}: gates over {m.se_gates['num_images']} test images")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return fig


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    pyplot().close(fig)
    return buf.getvalue()


def _fig_grad_depth(models: Sequence[ModelReport]) -> Any | None:
    """Per-layer gradient norms of plain and residual networks of the same depth, at
    initialisation (the first record) and late in training (mean of the last tenth)."""
    pairs = [
        (depth, plain, residual)
        for depth, plain, residual in plain_residual_pairs(models)
        if gradient_records(plain.grad_flow or {}) and gradient_records(residual.grad_flow or {})
    ]
    if not pairs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 3.8 * len(pairs)), squeeze=False)
    for row, (depth, plain, residual) in zip(axes, pairs, strict=True):
        for ax, late in zip(row, (False, True), strict=True):
            for m, color in ((plain, "tab:red"), (residual, "tab:blue")):
                assert m.grad_flow is not None
                rows = gradient_records(m.grad_flow, late)
                mean = [sum(col) / len(col) for col in zip(*rows, strict=True)]
                _plot_gradient_norms(ax, mean, color=color, marker=".", lw=1, label=m.name)
            when = "late in training (last tenth of the records)" if late else "at initialisation"
            ax.set_title(f"depth {depth}, {when}", fontsize=10)
            ax.legend(fontsize="small")
    return fig


def render_figures(models: Sequence[ModelReport], classes: Sequence[str]) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` of every figure that the models have data for."""
    figs: Mapping[str, Any] = {
        "curves": _fig_curves(models),
        "per_class": _fig_per_class(models, classes),
        "confusion": _fig_confusion(models, classes),
        "cost": _fig_cost(models),
        "grad_flow": _fig_grad_flow(models),
        "grad_depth": _fig_grad_depth(models),
        "se_gates": _fig_se_gates(models),
    }
    return {FIGURES[k]: _png(f) for k, f in figs.items() if f is not None}
