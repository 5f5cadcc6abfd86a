"""A run whose loss or weights are no longer finite: finding it, and saying what was kept."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["non_finite_message", "weights_are_finite"]


def weights_are_finite(model: nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite (one device sync for all of them)."""
    params = [p.detach() for p in model.parameters()]
    return not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


def non_finite_message(
    epoch: int,
    step: int,
    value: float,
    lr: float,
    checkpoint: Path | None,
    *,
    what: str = "loss",
    interrupted: bool = False,
) -> str:
    """Why training stopped at 0-based ``epoch`` and ``step``, where the ``what``
    (``"loss"``, with its ``value``, or ``"weights"``) stopped being finite at learning rate
    ``lr``: what became of ``checkpoint`` and what to try."""
    kept = (
        f"the last good checkpoint is kept at {checkpoint}"
        if checkpoint and checkpoint.is_file()
        else "no checkpoint was written"
    )
    became = f"training loss became {value}" if what == "loss" else "the weights became NaN/inf"
    saved = " (interrupted, but nothing was saved: the state is not finite)" if interrupted else ""
    return (
        f"{became} at epoch {epoch + 1}, step {step + 1} "
        f"(lr {lr:.3g}){saved}; training stopped and {kept}. "
        "Lower the learning rate, enable grad_clip, or check the data."
    )
