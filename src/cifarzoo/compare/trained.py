"""The models a comparison trains itself: one timed training step each (its peak memory and
seconds), the estimate of the whole comparison, then :func:`~cifarzoo.training.fit` and the
measurements of each."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..constants import NUM_CLASSES
from ..cost import count_activation_bytes, count_macs, count_params
from ..instrument import GradientFlowRecorder, PeakMemory
from ..models import create_model, model_arg_names
from .estimate import describe_estimate
from .evaluation import Evaluation
from .results import ModelReport

__all__ = ["GRAD_RECORDS", "train_models"]

#: About how many gradient-norm records a trained model's run keeps (``grad_every`` unset).
GRAD_RECORDS = 40


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


def _train_one(
    name: str,
    measure: Evaluation,
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
    every = grad_every if grad_every is not None else max(1, steps // GRAD_RECORDS)
    with GradientFlowRecorder(model, every=every) as flow:
        run = {"epochs": epochs, "seed": seed, "device": device, "quiet": quiet}
        history = fit(model, data, *split_settings({**fit_kwargs, **run}))
    h = history.to_dict()
    return ModelReport(
        name=name,
        params=params,
        macs=macs,
        activation_bytes=count_activation_bytes(model),
        seconds_per_epoch=float(sum(h["seconds"]) / max(1, len(h["seconds"]))),
        peak_memory_bytes=peak,
        memory_kind=kind,
        history=h,
        grad_flow=flow.to_dict(),
        model_args=dict(model_args),
        **measure.splits(model, name),
    )


def train_models(
    models: Sequence[str],
    measure: Evaluation,
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


def _accepted_args(name: str, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``model_args`` that the model ``name`` takes (``zero_init_residual``
    means nothing to a DenseNet)."""
    accepted = model_arg_names(name)
    return {k: v for k, v in model_args.items() if k in accepted}
