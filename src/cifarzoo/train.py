"""The training API before 0.2, kept for existing code: new code imports
:mod:`cifarzoo.training`.

Everything here is a re-export of :mod:`cifarzoo.training`, except :func:`fit`, which still takes
the recipe and the run options as flat keywords (``fit(model, data, epochs=3, quiet=True)``)
and :func:`recipe_of`. ``TrainConfig`` is gone: the recipe is :class:`~cifarzoo.training.Recipe`,
the rest :class:`~cifarzoo.training.RunOptions` (see the changelog).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .optim import param_groups
from .training import (
    AMP_MODES,
    DataMismatchError,
    DistEnv,
    EvalData,
    History,
    LRSchedule,
    ModelEma,
    NonFiniteLossError,
    Recipe,
    RecipeMismatchError,
    RunOptions,
    Teacher,
    TrainData,
    data_fingerprint,
    frozen_norm_statistics,
    iter_epochs,
    read_checkpoint,
    sam_ascent,
    split_settings,
)
from .training import fit as _fit

__all__ = [
    "AMP_MODES",
    "DataMismatchError",
    "DistEnv",
    "History",
    "LRSchedule",
    "ModelEma",
    "NonFiniteLossError",
    "Recipe",
    "RecipeMismatchError",
    "RunOptions",
    "Teacher",
    "data_fingerprint",
    "fit",
    "frozen_norm_statistics",
    "iter_epochs",
    "param_groups",
    "read_checkpoint",
    "recipe_of",
    "sam_ascent",
]


def fit(
    model: nn.Module,
    data: TrainData,
    *,
    teacher: Teacher | None = None,
    eval_data: EvalData | None = None,
    **settings: Any,
) -> History:
    """:func:`cifarzoo.training.fit` with the recipe and run options as keywords: each keyword
    is a field of :class:`~cifarzoo.training.Recipe` or :class:`~cifarzoo.training.RunOptions`
    (``recipe=`` and ``options=`` give whole objects that the keywords then change)."""
    base_recipe, base_options = settings.pop("recipe", None), settings.pop("options", None)
    recipe, options = split_settings(settings, base_recipe, base_options)
    return _fit(model, data, recipe, options, teacher=teacher, eval_data=eval_data)


def recipe_of(state: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~cifarzoo.training.Recipe` fields of a checkpoint dict, a field newer than
    the checkpoint counting as its default value."""
    return Recipe.from_dict(state["config"]).to_dict()
