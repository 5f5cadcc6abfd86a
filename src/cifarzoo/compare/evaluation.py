"""What a comparison measures of each model once it is trained (or read from a run folder):
test, validation and training-set figures, and the SE gate values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import CIFAR10Data, DeviceLoader, Split
from ..instrument import SEGateRecorder
from ..layers import SEBlock
from ..metrics import evaluate, model_mean_std

__all__ = ["Evaluation"]


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


def _eval_dict(
    model: nn.Module,
    split: Split,
    classes: Sequence[str],
    device: torch.device,
    tta_flip: bool,
    progress: str | None = None,
    amp: bool = False,
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
        amp=amp,
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
class Evaluation:
    """What is measured after training, the same for trained and for reused models; in fp32
    unless ``amp`` (bf16 autocast, which the shipped weights' evaluation may use for speed)."""

    data: CIFAR10Data
    device: torch.device
    tta_flip: bool
    gate_images: int
    train_eval_images: int
    quiet: bool = True
    amp: bool = False

    def splits(self, model: nn.Module, name: str = "model") -> dict[str, Any]:
        """``test``, ``val`` (when the data has one), ``train_eval`` (the first
        ``train_eval_images`` training images, unaugmented, eval mode) and ``se_gates``; with a
        progress bar per split unless ``quiet``."""
        data, dev = self.data, self.device
        n_train = min(self.train_eval_images, len(data.train))
        train_part = data.train.subset(torch.arange(n_train)) if n_train else None

        def bar(split: str) -> str | None:
            return None if self.quiet else f"{name}: {split}"

        def measured(split: Split, tta_flip: bool, what: str) -> dict[str, Any]:
            return _eval_dict(model, split, data.classes, dev, tta_flip, bar(what), self.amp)

        return {
            "test": measured(data.test, self.tta_flip, "test"),
            "val": None if data.val is None else measured(data.val, self.tta_flip, "val"),
            "train_eval": None
            if train_part is None
            else measured(train_part, False, "training error"),
            "se_gates": _se_gates(model, data.test, self.gate_images, dev),
        }
