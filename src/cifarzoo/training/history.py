"""The :class:`History` of a run: its per-epoch curves and per-step training loss."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import save_json

__all__ = ["History", "iter_epochs"]


@dataclass
class History:
    """Per-epoch curves of a run (plus the per-step training loss), saved as JSON.

    ``eval_*`` are measured on ``eval_split`` (``"val"`` when the data has one, else ``"test"``),
    with the EMA weights when EMA is on, in one forward pass (runs of earlier versions with a
    test-time augmentation on recorded its figures); ``None`` when there was nothing to
    evaluate.
    ``lr`` is the learning rate of each epoch's first step. ``train_loss`` includes label smoothing
    (and is measured against the soft targets when distilling); ``train_acc`` counts the
    predictions that match the label, or the soft target's most likely class.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    eval_loss: list[float | None] = field(default_factory=list)
    eval_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    eval_split: str = "val"

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


def iter_epochs(history: History) -> Iterator[dict[str, Any]]:
    """The history as one dict per epoch (handy for logging or pandas)."""
    for i, e in enumerate(history.epoch):
        yield {
            "epoch": e,
            "train_loss": history.train_loss[i],
            "train_acc": history.train_acc[i],
            "eval_loss": history.eval_loss[i],
            "eval_acc": history.eval_acc[i],
            "lr": history.lr[i],
            "seconds": history.seconds[i],
        }
