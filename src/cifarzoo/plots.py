"""PNG plots of a training run: loss and accuracy curves, per-class accuracy.

matplotlib is optional (``pip install cifarzoo[plot]``); it is imported when a plot is drawn,
with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .constants import CIFAR10_CLASSES
from .runs.folder import CURVE_FILES
from .training.history import History

__all__ = [
    "accuracy_axes",
    "plot_accuracy",
    "plot_loss",
    "plot_per_class_accuracy",
    "pyplot",
    "save_training_plots",
]


def pyplot() -> Any:
    """matplotlib's ``pyplot``, on the non-interactive Agg backend unless a backend is already
    chosen; an ImportError that says how to install matplotlib if it is missing."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("cifarzoo.plots needs matplotlib: pip install 'cifarzoo[plot]'") from e
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    from .checkpoint import atomic_write

    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def _save_epoch_plot(
    fig: Any, ax: Any, ylabel: str, title: str, path: str | os.PathLike[str]
) -> Path:
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_loss(history: History, path: str | os.PathLike[str]) -> Path:
    """Training loss per step (thin) and per epoch, with the evaluation loss per epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if history.step_loss and history.epoch:
        steps_per_epoch = len(history.step_loss) / len(history.epoch)
        xs = [(i + 1) / steps_per_epoch for i in range(len(history.step_loss))]
        ax.plot(xs, history.step_loss, lw=0.5, alpha=0.35, color="C0", label="train (per step)")
    ax.plot(history.epoch, history.train_loss, "o-", color="C0", label="train")
    ev = [(e, v) for e, v in zip(history.epoch, history.eval_loss, strict=True) if v is not None]
    if ev:
        ax.plot(*zip(*ev, strict=True), "s-", color="C1", label=history.eval_split)
    return _save_epoch_plot(fig, ax, "cross-entropy", "Loss", path)


def plot_accuracy(history: History, path: str | os.PathLike[str]) -> Path:
    """Training and evaluation accuracy per epoch (percent), the last evaluation's value
    written beside its point (the run's result: the last epoch's, never the best one's)."""
    fig, ax = accuracy_axes(history)
    return _save_epoch_plot(fig, ax, "accuracy (%)", "Accuracy", path)


def accuracy_axes(history: History) -> tuple[Any, Any]:
    """The figure and axes of :func:`plot_accuracy`, not yet labelled or saved."""
    fig, ax = pyplot().subplots(figsize=(7, 4))
    ax.plot(history.epoch, [100 * a for a in history.train_acc], "o-", label="train")
    ev = [
        (e, 100 * v) for e, v in zip(history.epoch, history.eval_acc, strict=True) if v is not None
    ]
    if ev:
        ax.plot(*zip(*ev, strict=True), "s-", label=history.eval_split)
        last_epoch, last = ev[-1]
        ax.annotate(
            f"last: {last:.2f}%",
            (last_epoch, last),
            xytext=(0, -14),
            textcoords="offset points",
            ha="right",
            fontsize=8,
        )
    return fig, ax


def plot_per_class_accuracy(
    per_class: Sequence[float],
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] = CIFAR10_CLASSES,
    title: str = "Per-class accuracy",
) -> Path:
    """Bar chart of per-class accuracy (fractions in 0..1, drawn as percent)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [100 * v for v in per_class]
    bars = ax.bar(list(classes), values, color="C2")
    for bar, v in zip(bars, values, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def save_training_plots(
    history: History,
    out_dir: str | os.PathLike[str],
    per_class: Sequence[float] | None = None,
    classes: Sequence[str] = CIFAR10_CLASSES,
) -> list[Path]:
    """Write a run's figures (:data:`~cifarzoo.runs.folder.CURVE_FILES`): ``loss.png``,
    ``accuracy.png`` and (with ``per_class``) ``per_class.png``."""
    out = Path(out_dir)
    loss, accuracy, per_class_file = (out / name for name in CURVE_FILES)
    paths = [plot_loss(history, loss), plot_accuracy(history, accuracy)]
    if per_class is not None:
        paths.append(plot_per_class_accuracy(per_class, per_class_file, classes=classes))
    return paths
