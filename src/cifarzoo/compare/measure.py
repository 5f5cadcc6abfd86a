"""Measuring: train (or read) each model and collect every number of the comparison."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..constants import CIFAR10_CLASSES, NUM_CLASSES
from ..cost import count_macs, count_params
from ..data import CIFAR10Data, DeviceLoader, Split, load_cifar10, stratified_split
from ..devices import resolve_device
from ..instrument import GradientFlowRecorder, PeakMemory, SEGateRecorder
from ..layers import SEBlock
from ..metrics import evaluate, model_mean_std
from ..models import create_model
from ..runs import (
    MARKER,
    WEIGHTS_FILE,
    hardware_string,
    read_grad_flow,
    read_history,
    read_metrics,
    recorded_accuracy,
)
from .estimate import describe_estimate
from .results import ComparisonReport, ModelReport

__all__ = [
    "COMPARE_RECIPE",
    "DEFAULT_MODELS",
    "GPU_MODELS",
    "ComparisonReport",
    "ModelReport",
    "compare",
    "subset_train",
    "synthetic_data",
]

#: Small enough to compare on a CPU in minutes per epoch.
DEFAULT_MODELS: tuple[str, ...] = ("lenet", "resnet20", "seresnet20", "densenet_bc_100_k12")
#: The four networks of the original lab report; meant for a GPU.
GPU_MODELS: tuple[str, ...] = ("lenet", "resnet18", "densenet121", "seresnet18")

#: :class:`~cifarzoo.training.Recipe` and :class:`~cifarzoo.training.RunOptions` fields that
#: :func:`compare` changes from their defaults: no EMA and no flip TTA, so the curves, the test
#: evaluation and the gate values all see the same weights the same way (and, on a CPU,
#: ``channels_last=False``, which is faster there). Any other field can be passed to
#: :func:`compare`.
COMPARE_RECIPE: dict[str, Any] = {"ema_decay": 0.0, "tta_flip": False}

# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def _probe_steps(
    model: nn.Module, batch_size: int, device: torch.device, steps: int = 1
) -> tuple[int, str, float]:
    """Peak memory (bytes, and its kind) and seconds per step of ``steps`` SGD training steps at
    ``batch_size`` on a copy of the model, after one warm-up step (so one-off initialization is
    not counted)."""
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
    start = time.perf_counter()
    with PeakMemory(device) as mem:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return mem.peak_bytes, mem.kind, (time.perf_counter() - start) / steps


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
    images, for quick comparisons (all of them when ``num_train`` is their number).

    Raises:
        ValueError: ``num_train`` is more than the training images.
    """
    if num_train > len(data.train):
        raise ValueError(
            f"cannot take {num_train:,} training images of {data.name}: it has "
            f"{len(data.train):,} (CLI: --train-subset)"
        )
    if num_train == len(data.train):
        return data
    _, keep = stratified_split(data.train.labels, num_train, seed=seed)
    return dataclasses.replace(data, train=data.train.subset(keep))


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def _load_data(
    data: CIFAR10Data | str | os.PathLike[str] | None, val_size: int, seed: int
) -> CIFAR10Data:
    if isinstance(data, CIFAR10Data):
        return data
    return load_cifar10(data, val_size=val_size, seed=seed)


def _eval_dict(
    model: nn.Module,
    split: Split,
    classes: Sequence[str],
    device: torch.device,
    tta_flip: bool,
    progress: str | None = None,
) -> dict[str, Any]:
    """One forward pass (accuracy, loss, per-class accuracy, confusion matrix) and, with
    ``tta_flip``, the flip TTA accuracy beside it (``tta``, ``tta_accuracy``)."""
    res = evaluate(
        model,
        split,
        device=device,
        tta_flip=tta_flip,
        classes=classes,
        single_pass=True,
        progress=progress,
    )
    single = res.one_pass or res
    return {
        "accuracy": single.accuracy,
        "loss": single.loss,
        "ece": single.ece,
        "num_samples": single.num_samples,
        "tta": "flip" if tta_flip else None,
        "tta_accuracy": res.accuracy if tta_flip else None,
        "per_class_accuracy": list(single.per_class_accuracy),
        "confusion_matrix": single.confusion_matrix,
    }


@dataclass(frozen=True)
class _Measure:
    """What is measured after training, the same for trained and for reused models."""

    data: CIFAR10Data
    device: torch.device
    tta_flip: bool
    gate_images: int
    train_eval_images: int
    quiet: bool = True

    def splits(self, model: nn.Module, name: str = "model") -> dict[str, Any]:
        """``test``, ``val`` (when the data has one), ``train_eval`` (the first
        ``train_eval_images`` training images, unaugmented, eval mode) and ``se_gates``; with a
        progress bar per split unless ``quiet``."""
        data, dev = self.data, self.device
        n_train = min(self.train_eval_images, len(data.train))
        train_part = data.train.subset(torch.arange(n_train)) if n_train else None

        def bar(split: str) -> str | None:
            return None if self.quiet else f"{name}: {split}"

        return {
            "test": _eval_dict(model, data.test, data.classes, dev, self.tta_flip, bar("test")),
            "val": None
            if data.val is None
            else _eval_dict(model, data.val, data.classes, dev, self.tta_flip, bar("val")),
            "train_eval": None
            if train_part is None
            else _eval_dict(model, train_part, data.classes, dev, False, bar("training error")),
            "se_gates": _se_gates(model, data.test, self.gate_images, dev),
        }


def _train_one(
    name: str,
    measure: _Measure,
    *,
    epochs: int,
    seed: int,
    grad_every: int | None,
    quiet: bool,
    fit_kwargs: dict[str, Any],
    model_args: dict[str, Any],
    probe: tuple[int, str, float],
    announce: str | None = None,
) -> ModelReport:
    """Train ``name`` with the comparison's recipe and measure it; ``probe`` is its
    :func:`_probe_steps`; ``announce`` (e.g. "[1/4]") starts the line printed first."""
    from ..training import fit, split_settings

    data, device = measure.data, measure.device
    if announce is not None:
        print(f"{announce} training {name} for {epochs} epoch(s) on {device}")
    torch.manual_seed(seed)
    model = create_model(name, **model_args)
    params = count_params(model)
    macs = count_macs(model)
    batch_size = int(fit_kwargs.get("batch_size", 128))
    peak, kind, _ = probe
    steps = max(1, len(data.train) // batch_size) * epochs
    every = grad_every if grad_every is not None else max(1, steps // 40)
    with GradientFlowRecorder(model, every=every) as flow:
        run = {"epochs": epochs, "seed": seed, "device": device, "quiet": quiet}
        history = fit(model, data, *split_settings({**fit_kwargs, **run}))
    h = history.to_dict()
    return ModelReport(
        name=name,
        params=params,
        macs=macs,
        seconds_per_epoch=float(sum(h["seconds"]) / max(1, len(h["seconds"]))),
        peak_memory_bytes=peak,
        memory_kind=kind,
        history=h,
        grad_flow=flow.to_dict(),
        model_args=dict(model_args),
        **measure.splits(model, name),
    )


def _train_models(
    models: Sequence[str],
    measure: _Measure,
    recipe: dict[str, Any],
    model_args: Mapping[str, Any],
    **train: Any,
) -> list[ModelReport]:
    """Time one training step of each model, say how long the comparison will take (unless
    quiet), then train and measure each (``train``: :func:`_train_one`'s keywords)."""
    args = {name: _accepted_args(name, model_args) for name in models}
    batch_size = int(recipe.get("batch_size", 128))
    probes = {}
    for name in models:
        torch.manual_seed(train["seed"])
        model = create_model(name, **args[name])
        probes[name] = _probe_steps(model, min(batch_size, len(measure.data.train)), measure.device)
    if not train["quiet"]:
        seconds = {name: probe[2] for name, probe in probes.items()}
        print(
            describe_estimate(
                seconds,
                measure.data,
                epochs=train["epochs"],
                batch_size=batch_size,
                train_eval_images=measure.train_eval_images,
            ),
            flush=True,
        )
    return [
        _train_one(
            name,
            measure,
            fit_kwargs=recipe,
            model_args=args[name],
            probe=probes[name],
            announce=None if train["quiet"] else f"[{i + 1}/{len(models)}]",
            **train,
        )
        for i, name in enumerate(models)
    ]


def _read_run(folder: Path, measure: _Measure | None) -> ModelReport:
    """A :class:`ModelReport` from a ``cifarzoo train`` output folder. Its
    ``model.safetensors`` is loaded as ``cifarzoo eval --weights`` loads it: checked against
    the ``.sha256`` sidecar first."""
    metrics, history = read_metrics(folder), read_history(folder)
    name = str(metrics.get("model") or folder.name)
    weights = folder / WEIGHTS_FILE
    model = create_model(name, weights=str(weights)) if weights.is_file() else create_model(name)
    if measure is not None:
        model.to(measure.device)
        measured = measure.splits(model, name)
    else:
        measured = {"test": _recorded_test(folder, metrics), **_NOT_MEASURED}
    seconds = history.get("seconds") or []
    grad_flow = read_grad_flow(folder)
    return ModelReport(
        name=name,
        params=count_params(model),
        macs=count_macs(model),
        seconds_per_epoch=float(sum(seconds) / len(seconds)) if seconds else None,
        peak_memory_bytes=None,
        memory_kind="not measured",
        history=history,
        grad_flow=grad_flow,
        source=str(folder),
        model_args=dict(metrics.get("model_args") or {}),
        **measured,
    )


_NOT_MEASURED: dict[str, Any] = {"val": None, "train_eval": None, "se_gates": None}


def _recorded_test(folder: Path, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The test figures a run folder recorded, one forward pass (its TTA accuracy beside);
    refused when it recorded none in one forward pass (runs of earlier versions with TTA)."""
    acc = recorded_accuracy(metrics)
    per_class = metrics.get("per_class_accuracy")
    recorded = per_class is not None and "confusion_matrix" in metrics
    if per_class is None or not recorded or acc.test is None or acc.per_class_tta is not None:
        what = "single-pass test metrics" if recorded else "per-class test metrics"
        raise ValueError(
            f"{folder} has no {what} ({MARKER}); pass data to evaluate {WEIGHTS_FILE} on the test "
            "set in one forward pass"
        )
    if isinstance(per_class, Mapping):
        per_class = list(per_class.values())
    return {
        "accuracy": acc.test,
        "loss": metrics.get("test_loss"),
        "tta": acc.tta,
        "tta_accuracy": acc.tta_test,
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion_matrix": metrics["confusion_matrix"],
    }


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
    train_eval_images: int = 10_000,
    model_args: Mapping[str, Any] | None = None,
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
        out: when given, :func:`~cifarzoo.compare.write_report` writes the report there.
        runs: output folders of earlier ``cifarzoo train`` runs (``history.json``,
            ``metrics.json``, ``model.safetensors``, and ``grad_flow.json`` when the run
            recorded one) to include instead of training; their peak memory is not measured.
        grad_every: record gradient norms every this many steps (default: about 40 records).
        gate_images: test images over which SE gate values are recorded.
        train_eval_images: training images (unaugmented, eval mode) on which the final training
            error is measured; 0 skips it.
        model_args: constructor arguments for every trained model that takes them, e.g.
            ``{"zero_init_residual": False}`` to initialise residual and plain networks alike.
        quiet: no progress output.
        fit_kwargs: fields of :class:`~cifarzoo.training.Recipe` and
            :class:`~cifarzoo.training.RunOptions` (``lr``, ``batch_size``, ``amp``...),
            on top of :data:`COMPARE_RECIPE`.
    """
    _check_request(models, runs, epochs)
    dev = resolve_device(device)
    loaded = _load_data(data, val_size, seed) if (models or data is not None) else None
    recipe = {**COMPARE_RECIPE, **fit_kwargs}
    if dev.type == "cpu":
        # Same numbers, but channels_last convolutions are up to 2x slower on CPUs.
        recipe.setdefault("channels_last", False)
    measure = None
    if loaded is not None:
        tta_flip = bool(recipe.get("tta_flip", False))
        measure = _Measure(loaded, dev, tta_flip, gate_images, train_eval_images, quiet)
    reports = []
    if models and measure is not None:  # there is data when there are models
        train = {"epochs": epochs, "seed": seed, "grad_every": grad_every, "quiet": quiet}
        reports = _train_models(models, measure, recipe, model_args or {}, **train)
    reports += [_read_run(Path(folder), measure) for folder in runs]
    meta = _meta(loaded, dev, recipe, epochs=epochs, seed=seed)
    if not models:  # nothing trained here: the setting is the runs'
        meta.update(_runs_setting([Path(folder) for folder in runs], meta["device"]))
    meta["notes"] = _notes(dev, train_eval_images)
    report = ComparisonReport(reports, meta)
    if out is not None:
        from .report import write_report

        write_report(report, out)
    return report


def _check_request(
    models: Sequence[str], runs: Sequence[str | os.PathLike[str]], epochs: int
) -> None:
    if not models and not runs:
        raise ValueError("nothing to compare: give model names or run folders")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")


def _meta(
    data: CIFAR10Data | None, dev: torch.device, recipe: dict[str, Any], *, epochs: int, seed: int
) -> dict[str, Any]:
    """The setting every model of the comparison shares: versions, device, data, recipe."""
    classes = data.classes if data is not None else CIFAR10_CLASSES
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cifarzoo_version": __version__,
        "torch_version": torch.__version__,
        "device": _device_name(dev),
        "data": None
        if data is None
        else {
            "name": data.name,
            "train": len(data.train),
            "val": None if data.val is None else len(data.val),
            "test": len(data.test),
            "eval_split": data.eval_split_name,
        },
        "classes": list(classes),
        "epochs": epochs,
        "seed": seed,
        "recipe": recipe,
    }


def _runs_setting(folders: Sequence[Path], measured_on: str) -> dict[str, Any]:
    """Epochs, seed, recipe and hardware of run folders trained elsewhere, for the report's
    meta: each where every run agrees, else ``None`` (the recipe: the fields they share, and
    the names of those that differ under ``"differs"``)."""
    from ..training import Recipe

    recorded = [read_metrics(folder) for folder in folders]
    recipes = [m.get("recipe") or {} for m in recorded]

    def shared(values: Sequence[Any]) -> Any:
        return values[0] if values and all(v == values[0] for v in values) else None

    fields = [f.name for f in dataclasses.fields(Recipe)]
    recipe = {k: shared([r.get(k) for r in recipes]) for k in fields}
    differs = [
        k for k in fields if recipe[k] is None and any(r.get(k) is not None for r in recipes)
    ]
    return {
        "epochs": shared([m.get("epochs") for m in recorded]),
        "seed": recipe["seed"],
        "recipe": {**{k: v for k, v in recipe.items() if k not in differs}, "differs": differs},
        "device": shared([m.get("hardware") for m in recorded]) or "several machines",
        "measured_on": measured_on,
    }


def _notes(dev: torch.device, train_eval_images: int) -> dict[str, str]:
    """What each measurement is, in words (``meta["notes"]``)."""
    return {
        "macs": "FlopCounterMode FLOPs / 2 for one 3x32x32 image: convolutions and matrix "
        "products only",
        "seconds_per_epoch": "wall-clock time of a training epoch plus its validation",
        "peak_memory": _memory_note(dev),
        "grad_flow": "L2 norm of each conv/linear weight gradient just before the "
        "optimizer step, every grad_flow.every steps",
        "se_gates": "SE gate values (sigmoid outputs) of each stage over test images, "
        "eval mode, after training",
        "train_eval": f"the first {train_eval_images:,} training images, unaugmented, "
        "eval mode, after the last epoch",
    }


def _accepted_args(name: str, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``model_args`` that the model ``name``'s class takes
    (``zero_init_residual`` means nothing to a DenseNet)."""
    import inspect

    with torch.device("meta"):
        probe = create_model(name)
    accepted = set(inspect.signature(type(probe).__init__).parameters)
    return {k: v for k, v in model_args.items() if k in accepted}


def _device_name(dev: torch.device) -> str:
    """The machine, as ``cifarzoo train`` records it (``hardware`` in metrics.json), so that a
    report names trained and reused runs' machines and thread counts the same way."""
    return hardware_string(str(dev))


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
