"""``fit`` with the recipe and the run options as flat keywords, as the tests write their short
runs: ``fit(model, data, epochs=1, quiet=True)`` is :func:`cifarzoo.training.fit` with
:func:`~cifarzoo.training.split_settings` of the keywords (an unknown name is a ``TypeError``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cifarzoo.training import EvalData, History, Teacher, TrainData, split_settings
from cifarzoo.training import fit as fit_with


def fit(
    model: nn.Module,
    data: TrainData,
    *,
    teacher: Teacher | None = None,
    eval_data: EvalData | None = None,
    **settings: Any,
) -> History:
    recipe, options = split_settings(settings)
    return fit_with(model, data, recipe, options, teacher=teacher, eval_data=eval_data)
