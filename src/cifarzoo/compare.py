"""Side-by-side comparison of architectures trained with one recipe: ``cifarzoo compare``.

:func:`compare` trains each model with :func:`cifarzoo.train.fit` (same recipe, same seed, same
data) -- or reads the output folders of earlier ``cifarzoo train`` runs -- and measures:

* loss and accuracy curves (train and validation) and the test set's per-class accuracy and
  confusion matrix;
* parameters, multiply-accumulates of one 32x32 image (``FlopCounterMode`` FLOPs / 2: convolutions
  and matrix products, not norms or activations), seconds per epoch and the peak memory of a
  training step;
* gradient flow: the gradient norm of every convolution/linear layer every ``k`` steps
  (:class:`~cifarzoo.instrument.GradientFlowRecorder`);
* for SE models, the distribution of the SE gate values of each stage over test images
  (:class:`~cifarzoo.instrument.SEGateRecorder`).

:func:`write_report` turns the result into a folder: ``report.html`` (self-contained, figures
embedded as base64 PNG), the figures as PNG files, and ``report.json`` with every number.
The report can be re-rendered from ``report.json`` alone (:func:`render_report`).

>>> from cifarzoo.compare import compare, synthetic_data
>>> report = compare(["lenet"], synthetic_data(256, 128), epochs=1, quiet=True)
>>> report.models[0].name, len(report.models[0].test["per_class_accuracy"])
('lenet', 10)
"""

from __future__ import annotations

import argparse
import base64
import copy
import dataclasses
import datetime
import html
import io
import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import __version__
from .argtypes import nonnegative_int, positive_float, positive_int
from .checkpoint import atomic_write, save_json
from .constants import CIFAR10_CLASSES, NUM_CLASSES
from .data import CIFAR10Data, DeviceLoader, Split, load_cifar10, stratified_split
from .instrument import GradientFlowRecorder, PeakMemory, SEGateRecorder
from .layers import SEBlock
from .metrics import evaluate, model_mean_std, resolve_device
from .models import create_model
from .plots import _pyplot
from .runs import check_finished
from .train import AMP_MODES

__all__ = [
    "COMPARE_RECIPE",
    "DEFAULT_MODELS",
    "GPU_MODELS",
    "ComparisonReport",
    "ModelReport",
    "add_compare_parser",
    "compare",
    "count_macs",
    "count_params",
    "render_report",
    "run_compare",
    "synthetic_data",
    "write_report",
]

#: Small enough to compare on a CPU in minutes per epoch.
DEFAULT_MODELS: tuple[str, ...] = ("lenet", "resnet20", "seresnet20", "densenet_bc_100_k12")
#: The four networks of the original lab report; meant for a GPU.
GPU_MODELS: tuple[str, ...] = ("lenet", "resnet18", "densenet121", "seresnet18")

#: :func:`~cifarzoo.train.fit` keywords that :func:`compare` changes from fit's defaults: no EMA
#: and no flip TTA, so the curves, the test evaluation and the gate values all see the same
#: weights the same way (and, on a CPU, ``channels_last=False``, which is faster there). Any
#: other fit keyword can be passed to :func:`compare`.
COMPARE_RECIPE: dict[str, Any] = {"ema_decay": 0.0, "tta_flip": False}

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_TXT = "summary.txt"
FIGURES = {
    "curves": "curves.png",
    "per_class": "per_class_accuracy.png",
    "confusion": "confusion_matrices.png",
    "cost": "cost.png",
    "grad_flow": "gradient_flow.png",
    "se_gates": "se_gates.png",
}
SCHEMA = "cifarzoo.compare/1"


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass of ``input_size`` (batch included), in eval mode.

    Measured with :class:`torch.utils.flop_counter.FlopCounterMode` (which counts convolutions and
    matrix products) as FLOPs / 2. Works on a ``meta``-device model, so even big networks are
    counted without memory or compute.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(*input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def _peak_step_memory(
    model: nn.Module, batch_size: int, device: torch.device, steps: int = 1
) -> tuple[int, str]:
    """Peak memory of ``steps`` SGD training steps at ``batch_size`` on a copy of the model,
    after one warm-up step (so one-off initialization is not counted)."""
    probe = copy.deepcopy(model).to(device).train()
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)
    opt = torch.optim.SGD(probe.parameters(), lr=0.0, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(probe(x), y).backward()
        opt.step()

    step()  # warm-up: lazy initialization, thread pools, optimizer state
    opt.zero_grad(set_to_none=True)
    with PeakMemory(device) as mem:
        for _ in range(steps):
            step()
    return mem.peak_bytes, mem.kind


def _has_se(model: nn.Module) -> bool:
    return any(isinstance(m, SEBlock) for m in model.modules())


@torch.no_grad()
def _se_gates(
    model: nn.Module, split: Split, num_images: int, device: torch.device, bins: int = 50
) -> dict[str, Any] | None:
    """Per-stage summary of the SE gate values over the first ``num_images`` of ``split``."""
    if not _has_se(model) or num_images <= 0:
        return None
    n = min(num_images, len(split))
    mean, std = model_mean_std(model)
    loader = DeviceLoader(
        split.images[:n],
        split.labels[:n],
        batch_size=500,
        train=False,
        mean=mean,
        std=std,
        device=device,
    )
    was_training = model.training
    model.eval()
    try:
        with SEGateRecorder(model) as rec:
            for x, _ in loader.epoch_batches(0):
                model(x)
    finally:
        model.train(was_training)
    return {"num_images": n, "bins": bins, "stages": rec.summary(bins)}


def synthetic_data(
    num_train: int = 256, num_test: int = 128, *, val_size: int = 0, seed: int = 0
) -> CIFAR10Data:
    """Random CIFAR-10-shaped data that a network can learn a little: each class has its own
    mean colour pattern, plus noise. For tests, examples and smoke runs (not a benchmark)."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(NUM_CLASSES, 3, 8, 8, generator=g) * 160 + 48

    def make(n: int) -> Split:
        labels = torch.arange(n) % NUM_CLASSES
        labels = labels[torch.randperm(n, generator=g)]
        base = patterns[labels].repeat_interleave(4, 2).repeat_interleave(4, 3)
        noise = torch.randn(n, 3, 32, 32, generator=g) * 40
        return Split((base + noise).clamp(0, 255).to(torch.uint8), labels)

    data = CIFAR10Data(train=make(num_train + val_size), test=make(num_test), name="synthetic")
    return data.hold_out(val_size, seed=seed) if val_size else data


def subset_train(data: CIFAR10Data, num_train: int, seed: int = 0) -> CIFAR10Data:
    """``data`` with a stratified (class-balanced, seeded) subset of ``num_train`` training
    images, for quick comparisons."""
    if num_train >= len(data.train):
        return data
    _, keep = stratified_split(data.train.labels, num_train, seed=seed)
    return dataclasses.replace(data, train=data.train.subset(keep))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class ModelReport:
    """Everything measured for one model (see :func:`compare`); JSON via :meth:`to_dict`.

    ``history`` is :class:`cifarzoo.train.History` as a dict; ``test`` holds ``accuracy``,
    ``loss``, ``per_class_accuracy`` (list, class order) and ``confusion_matrix`` (row: true
    class); ``grad_flow`` holds ``every``, ``layers``, ``steps`` and ``norms`` (one list per
    record); ``se_gates`` maps each stage to a :func:`~cifarzoo.instrument.gate_summary`.
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelReport:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
        meta = {k: v for k, v in d.items() if k not in ("models", "schema")}
        return cls([ModelReport.from_dict(m) for m in d["models"]], meta)

    def table(self) -> str:
        """A plain-text summary table."""
        rows = [("model", "params", "MMACs", "test acc", "s/epoch", "peak MiB")]
        for m in self.models:
            rows.append(
                (
                    m.name,
                    f"{m.params / 1e6:.2f}M",
                    f"{m.macs / 1e6:.1f}",
                    f"{100 * m.test['accuracy']:.2f}%",
                    "-" if m.seconds_per_epoch is None else f"{m.seconds_per_epoch:.1f}",
                    "-" if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 2**20:.0f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        )


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def _load_data(
    data: CIFAR10Data | str | os.PathLike[str] | None, val_size: int, seed: int
) -> CIFAR10Data:
    if isinstance(data, CIFAR10Data):
        return data
    return load_cifar10(data, val_size=val_size, seed=seed)


def _test_dict(
    model: nn.Module, data: CIFAR10Data, device: torch.device, tta_flip: bool
) -> dict[str, Any]:
    res = evaluate(model, data.test, device=device, tta_flip=tta_flip, classes=data.classes)
    return {
        "accuracy": res.accuracy,
        "loss": res.loss,
        "ece": res.ece,
        "num_samples": res.num_samples,
        "tta_flip": res.tta_flip,
        "per_class_accuracy": list(res.per_class_accuracy),
        "confusion_matrix": res.confusion_matrix,
    }


def _train_one(
    name: str,
    data: CIFAR10Data,
    *,
    epochs: int,
    seed: int,
    device: torch.device,
    grad_every: int | None,
    gate_images: int,
    quiet: bool,
    fit_kwargs: dict[str, Any],
) -> ModelReport:
    from .train import fit

    torch.manual_seed(seed)
    model = create_model(name)
    params = count_params(model)
    macs = count_macs(model)
    batch_size = int(fit_kwargs.get("batch_size", 128))
    peak, kind = _peak_step_memory(model, min(batch_size, len(data.train)), device)
    steps = max(1, len(data.train) // batch_size) * epochs
    every = grad_every if grad_every is not None else max(1, steps // 40)
    with GradientFlowRecorder(model, every=every) as flow:
        history = fit(
            model, data, epochs=epochs, seed=seed, device=device, quiet=quiet, **fit_kwargs
        )
    test = _test_dict(model, data, device, bool(fit_kwargs.get("tta_flip", False)))
    gates = _se_gates(model, data.test, gate_images, device)
    h = history.to_dict()
    return ModelReport(
        name=name,
        params=params,
        macs=macs,
        seconds_per_epoch=float(sum(h["seconds"]) / max(1, len(h["seconds"]))),
        peak_memory_bytes=peak,
        memory_kind=kind,
        history=h,
        test=test,
        grad_flow=flow.to_dict(),
        se_gates=gates,
    )


def _read_run(
    folder: Path, data: CIFAR10Data | None, device: torch.device, gate_images: int
) -> ModelReport:
    """A :class:`ModelReport` from a ``cifarzoo train`` output folder. Its
    ``model.safetensors`` is loaded as ``cifarzoo eval --weights`` loads it: checked against
    the ``.sha256`` sidecar first."""

    def read(name: str) -> dict[str, Any]:
        path = folder / name
        return dict(json.loads(path.read_text())) if path.is_file() else {}

    check_finished(folder)
    history, metrics = read("history.json"), read("metrics.json")
    name = str(metrics.get("model") or folder.name)
    weights = folder / "model.safetensors"
    model = create_model(name, weights=str(weights)) if weights.is_file() else create_model(name)
    model.to(device)
    if data is not None:
        test = _test_dict(model, data, device, False)
    elif "per_class_accuracy" in metrics and "confusion_matrix" in metrics:
        per_class = metrics["per_class_accuracy"]
        if isinstance(per_class, Mapping):
            per_class = list(per_class.values())
        test = {
            "accuracy": float(metrics["test_accuracy"]),
            "loss": metrics.get("test_loss"),
            "per_class_accuracy": [float(v) for v in per_class],
            "confusion_matrix": metrics["confusion_matrix"],
        }
    else:
        raise ValueError(
            f"{folder} has no per-class test metrics (metrics.json); pass data to evaluate "
            "model.safetensors on the test set"
        )
    seconds = history.get("seconds") or []
    return ModelReport(
        name=name,
        params=count_params(model),
        macs=count_macs(model),
        seconds_per_epoch=float(sum(seconds) / len(seconds)) if seconds else None,
        peak_memory_bytes=None,
        memory_kind="not measured",
        history=history,
        test=test,
        grad_flow=None,
        se_gates=None if data is None else _se_gates(model, data.test, gate_images, device),
        source=str(folder),
    )


def compare(
    models: Sequence[str] = DEFAULT_MODELS,
    data: CIFAR10Data | str | os.PathLike[str] | None = None,
    *,
    epochs: int = 3,
    seed: int = 0,
    device: torch.device | str | None = None,
    out: str | os.PathLike[str] | None = None,
    runs: Sequence[str | os.PathLike[str]] = (),
    val_size: int = 5000,
    grad_every: int | None = None,
    gate_images: int = 1000,
    quiet: bool = False,
    **fit_kwargs: Any,
) -> ComparisonReport:
    """Train ``models`` with one recipe and measure them side by side.

    Args:
        models: model names (``cifarzoo.list_models()``). The default suits a CPU;
            :data:`GPU_MODELS` are the lab's four.
        data: a :class:`~cifarzoo.data.CIFAR10Data`, or a data root to read with
            ``val_size`` validation images held out of the training set.
        epochs: training epochs per model.
        seed: seed of the initialization, the data order and the augmentation (the same for
            every model).
        device: ``"cuda"``/``"cpu"``; default CUDA when available.
        out: when given, :func:`write_report` writes the report there.
        runs: output folders of earlier ``cifarzoo train`` runs (``history.json``,
            ``metrics.json``, ``model.safetensors``) to include instead of training; their
            gradient flow and memory are not available.
        grad_every: record gradient norms every this many steps (default: about 40 records).
        gate_images: test images over which SE gate values are recorded.
        quiet: no progress output.
        fit_kwargs: recipe keywords for :func:`cifarzoo.train.fit` (``lr``, ``batch_size``...),
            on top of :data:`COMPARE_RECIPE`.
    """
    if not models and not runs:
        raise ValueError("nothing to compare: give model names or run folders")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dev = resolve_device(device)
    loaded = _load_data(data, val_size, seed) if (models or data is not None) else None
    recipe = {**COMPARE_RECIPE, **fit_kwargs}
    if dev.type == "cpu":
        # Same numbers, but channels_last convolutions are up to 2x slower on CPUs.
        recipe.setdefault("channels_last", False)
    reports: list[ModelReport] = []
    for i, name in enumerate(models):
        if not quiet:
            print(f"[{i + 1}/{len(models)}] training {name} for {epochs} epoch(s) on {dev}")
        assert loaded is not None
        reports.append(
            _train_one(
                name,
                loaded,
                epochs=epochs,
                seed=seed,
                device=dev,
                grad_every=grad_every,
                gate_images=gate_images,
                quiet=quiet,
                fit_kwargs=recipe,
            )
        )
    for folder in runs:
        reports.append(_read_run(Path(folder), loaded, dev, gate_images))
    classes = loaded.classes if loaded is not None else CIFAR10_CLASSES
    meta: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cifarzoo_version": __version__,
        "torch_version": torch.__version__,
        "device": _device_name(dev),
        "data": None
        if loaded is None
        else {
            "name": loaded.name,
            "train": len(loaded.train),
            "val": None if loaded.val is None else len(loaded.val),
            "test": len(loaded.test),
            "eval_split": loaded.eval_split_name,
        },
        "classes": list(classes),
        "epochs": epochs,
        "seed": seed,
        "recipe": recipe,
        "notes": {
            "macs": "FlopCounterMode FLOPs / 2 for one 3x32x32 image: convolutions and matrix "
            "products only",
            "seconds_per_epoch": "wall-clock time of a training epoch plus its validation",
            "peak_memory": _memory_note(dev),
            "grad_flow": "L2 norm of each conv/linear weight gradient just before the "
            "optimizer step, every `every` steps",
            "se_gates": "SE gate values (sigmoid outputs) of each stage over test images, "
            "eval mode, after training",
        },
    }
    report = ComparisonReport(reports, meta)
    if out is not None:
        write_report(report, out)
    return report


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return (
        f"{dev.type} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads)"
    )


def _memory_note(dev: torch.device) -> str:
    if dev.type == "cuda":
        return (
            "torch.cuda.max_memory_allocated during SGD training steps at the training "
            "batch size, after a warm-up step (weights, gradients, optimizer state, "
            "activations; caching allocator excluded)"
        )
    return (
        "growth of the process's resident set size (RSS) during SGD training steps at the "
        "training batch size, after a warm-up step, sampled every 2 ms: an estimate"
    )


# --------------------------------------------------------------------------------------------
# Figures and HTML
# --------------------------------------------------------------------------------------------


def _colors(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _fig_curves(models: Sequence[ModelReport]) -> Any:
    plt = _pyplot()
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
    fig.tight_layout()
    return fig


def _fig_per_class(models: Sequence[ModelReport], classes: Sequence[str]) -> Any:
    plt = _pyplot()
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
    fig.tight_layout()
    return fig


def _fig_confusion(models: Sequence[ModelReport], classes: Sequence[str]) -> Any:
    plt = _pyplot()
    n = len(models)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 5.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, m in zip(axes.flat, models, strict=False):
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
    fig.tight_layout()
    return fig


def _fig_cost(models: Sequence[ModelReport]) -> Any:
    plt = _pyplot()
    panels: list[tuple[str, list[float | None]]] = [
        ("parameters (M)", [m.params / 1e6 for m in models]),
        ("MACs per image (M)", [m.macs / 1e6 for m in models]),
        ("seconds per epoch", [m.seconds_per_epoch for m in models]),
        (
            "peak memory (MiB)",
            [None if m.peak_memory_bytes is None else m.peak_memory_bytes / 2**20 for m in models],
        ),
        ("test accuracy (%)", [100 * m.test["accuracy"] for m in models]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
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
    fig.tight_layout()
    return fig


def _fig_grad_flow(models: Sequence[ModelReport]) -> Any | None:
    plt = _pyplot()
    shown = [m for m in models if m.grad_flow and m.grad_flow.get("norms")]
    if not shown:
        return None
    cols = min(len(shown), 2)
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    cmap = plt.get_cmap("viridis")
    for ax, m in zip(axes.flat, shown, strict=False):
        assert m.grad_flow is not None
        steps, norms = m.grad_flow["steps"], m.grad_flow["norms"]
        last = max(1, steps[-1])
        for step, row in zip(steps, norms, strict=True):
            vals = [v if v > 0 and math.isfinite(v) else float("nan") for v in row]
            ax.plot(range(len(vals)), vals, color=cmap(step / last), lw=0.9, alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("layer (input to output)")
        ax.set_ylabel("gradient L2 norm")
        ax.set_title(f"{m.name} ({len(norms[0])} layers)")
        ax.grid(alpha=0.3)
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, last))
        fig.colorbar(sm, ax=ax, label="training step")
    fig.tight_layout()
    return fig


def _fig_se_gates(models: Sequence[ModelReport]) -> Any | None:
    plt = _pyplot()
    shown = [m for m in models if m.se_gates and m.se_gates.get("stages")]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(6.0 * len(shown), 4.0), squeeze=False)
    for ax, m in zip(axes.flat, shown, strict=True):
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
    fig.tight_layout()
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return buf.getvalue()


def render_report(summary: Mapping[str, Any] | ComparisonReport) -> tuple[str, dict[str, bytes]]:
    """The HTML page and the PNG figures (``{file name: bytes}``) of a report or of its
    ``report.json`` content."""
    report = (
        summary if isinstance(summary, ComparisonReport) else ComparisonReport.from_dict(summary)
    )
    models = report.models
    classes = report.meta.get("classes") or list(CIFAR10_CLASSES)
    figs: dict[str, Any] = {
        "curves": _fig_curves(models),
        "per_class": _fig_per_class(models, classes),
        "confusion": _fig_confusion(models, classes),
        "cost": _fig_cost(models),
        "grad_flow": _fig_grad_flow(models),
        "se_gates": _fig_se_gates(models),
    }
    pngs = {FIGURES[k]: _png(f) for k, f in figs.items() if f is not None}
    return _html(report, classes, pngs), pngs


def _html(report: ComparisonReport, classes: Sequence[str], pngs: Mapping[str, bytes]) -> str:
    e = html.escape
    meta, models = report.meta, report.models
    data = meta.get("data") or {}

    def img(key: str, alt: str) -> str:
        name = FIGURES[key]
        if name not in pngs:
            return ""
        b64 = base64.b64encode(pngs[name]).decode("ascii")
        return f'<figure><img src="data:image/png;base64,{b64}" alt="{e(alt)}"></figure>'

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    summary_rows = []
    for m in models:
        eval_acc = [v for v in (m.history.get("eval_acc") or []) if v is not None]
        summary_rows.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    f"<code>{e(m.name)}</code>",
                    f"{m.params:,}",
                    f"{m.macs / 1e6:,.1f} M",
                    pct(m.test["accuracy"]),
                    pct(max(eval_acc) if eval_acc else None),
                    "-" if m.seconds_per_epoch is None else f"{m.seconds_per_epoch:.1f}",
                    "-" if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 2**20:,.0f}",
                    e(m.source),
                )
            )
            + "</tr>"
        )
    per_class_rows = []
    for c, cls in enumerate(classes):
        cells = []
        accs = [m.test["per_class_accuracy"][c] for m in models]
        best = max(accs) if accs else None
        for a in accs:
            cells.append(
                f"<td class='{'best' if a == best and len(accs) > 1 else ''}'>{pct(a)}</td>"
            )
        per_class_rows.append(f"<tr><td>{e(cls)}</td>{''.join(cells)}</tr>")
    model_heads = "".join(f"<th>{e(m.name)}</th>" for m in models)
    notes = meta.get("notes") or {}
    recipe = ", ".join(f"{k}={v}" for k, v in (meta.get("recipe") or {}).items())
    se_section = img("se_gates", "SE gate distributions")
    se_text = (
        "<p>Distribution of the SE gate values (channel weights in (0, 1)) of each stage over "
        f"test images. {e(notes.get('se_gates', ''))}.</p>{se_section}"
        if se_section
        else "<p>No model with SE blocks in this comparison.</p>"
    )
    grad_section = img("grad_flow", "gradient flow")
    grad_text = (
        f"<p>{e(notes.get('grad_flow', ''))}. Early steps are dark, late steps yellow.</p>"
        f"{grad_section}"
        if grad_section
        else "<p>No gradient records (reused runs).</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cifarzoo comparison: {e(", ".join(m.name for m in models))}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f2f2f2; }}
td.best {{ font-weight: bold; background: #eef7ee; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
.meta {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>cifarzoo architecture comparison</h1>
<p class="meta">Data: {e(str(data.get("name", "?")))} (train {data.get("train", "?")},
{"val " + str(data["val"]) + ", " if data.get("val") else ""}test {data.get("test", "?")});
{meta.get("epochs")} epoch(s), seed {meta.get("seed")}; device {e(str(meta.get("device")))};
cifarzoo {e(str(meta.get("cifarzoo_version")))}, torch {e(str(meta.get("torch_version")))};
created {e(str(meta.get("created")))}.<br>Recipe (cifarzoo.train.fit): {e(recipe)}.</p>
<h2>Summary</h2>
<table><tr><th>model</th><th>parameters</th><th>MACs / image</th><th>test accuracy</th>
<th>best {e(str(data.get("eval_split", "val")))} accuracy</th><th>s / epoch</th>
<th>peak memory (MiB)</th><th>source</th></tr>
{"".join(summary_rows)}</table>
<p class="meta">MACs: {e(notes.get("macs", ""))}. Seconds per epoch:
{e(notes.get("seconds_per_epoch", ""))}. Peak memory: {e(notes.get("peak_memory", ""))}.</p>
{img("cost", "cost and accuracy")}
<h2>Learning curves</h2>{img("curves", "loss and accuracy curves")}
<h2>Per-class test accuracy</h2>
<table><tr><th>class</th>{model_heads}</tr>{"".join(per_class_rows)}</table>
{img("per_class", "per-class accuracy")}
<h2>Confusion matrices</h2><p>Rows: true class; columns: predicted class; % of the row.</p>
{img("confusion", "confusion matrices")}
<h2>Gradient flow</h2>{grad_text}
<h2>SE gates</h2>{se_text}
</body></html>
"""


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
    page, pngs = render_report(report)
    texts = {REPORT_HTML: page, REPORT_TXT: report.table() + "\n"}
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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to an argparse ``subparsers`` object; the parsed
    namespace's ``func`` is :func:`run_compare`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="train several models with one recipe and write a comparison report",
        description=(
            "Train MODELs with the same recipe and seed and write OUT/report.html (figures "
            "embedded), the figures as PNG and OUT/report.json. Default models: "
            f"{' '.join(DEFAULT_MODELS)} (CPU-sized); the lab's GPU set: {' '.join(GPU_MODELS)}."
        ),
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"model names (default: {' '.join(DEFAULT_MODELS)})",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--epochs", type=positive_int, default=3, help="epochs per model (default 3)")
    p.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="CIFAR-10 root holding cifar-10-batches-py (default $CIFARZOO_DATA or "
        "~/.cache/cifarzoo)",
    )
    p.add_argument(
        "--data-name",
        default="CIFAR-10",
        help="name of the data in the report, e.g. 'CIFAR-10 (JPEG mirror)'",
    )
    p.add_argument(
        "--val-size",
        type=nonnegative_int,
        default=5000,
        help="training images held out for validation (default 5000)",
    )
    p.add_argument(
        "--train-subset",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on a class-balanced subset of N images (quick comparisons)",
    )
    p.add_argument(
        "--synthetic",
        type=positive_int,
        default=None,
        metavar="N",
        help="use N random synthetic training images instead of CIFAR-10 (smoke test)",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="also include these `cifarzoo train` output folders (not retrained)",
    )
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument(
        "--lr", type=positive_float, default=0.1, help="peak learning rate (default 0.1)"
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--grad-every",
        type=positive_int,
        default=None,
        metavar="K",
        help="record gradient norms every K steps (default: ~40 records)",
    )
    p.add_argument(
        "--gate-images",
        type=nonnegative_int,
        default=1000,
        help="test images for the SE gate statistics (default 1000)",
    )
    add_amp_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_compare)
    return p


#: Help of the ``--amp`` option.
AMP_HELP = "bf16 autocast: auto = on for CUDA, off for CPU (bf16 is fast on CPUs with AMX)"


def add_amp_argument(
    p: argparse.ArgumentParser, *, default: str | None = "auto", default_help: str = "auto"
) -> None:
    """``--amp {auto,bf16,off}`` (see :data:`cifarzoo.train.AMP_MODES`); ``default`` is the
    value when not given (``None``: the caller decides, described by ``default_help``)."""
    help_text = f"{AMP_HELP} (default: {default_help})"
    p.add_argument("--amp", choices=list(AMP_MODES), default=default, help=help_text)


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``cifarzoo compare``; returns the exit status."""
    models = list(args.models) if args.models or args.runs else list(DEFAULT_MODELS)
    if args.synthetic is not None:
        data: CIFAR10Data = synthetic_data(
            args.synthetic,
            max(100, args.synthetic // 2),
            val_size=max(10, args.synthetic // 10),
            seed=args.seed,
        )
    else:
        data = load_cifar10(args.data, val_size=args.val_size, seed=args.seed, name=args.data_name)
    if args.train_subset is not None:
        data = subset_train(data, args.train_subset, seed=args.seed)
    report = compare(
        models,
        data,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        out=args.out,
        runs=args.runs,
        grad_every=args.grad_every,
        gate_images=args.gate_images,
        quiet=args.quiet,
        batch_size=args.batch_size,
        lr=args.lr,
        amp=AMP_MODES[args.amp],
    )
    print(report.table())
    print(f"report: {report.files['html']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cifarzoo.compare ...`` (the same as ``cifarzoo compare ...``)."""
    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_compare_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["compare", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
