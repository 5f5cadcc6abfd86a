"""Training: :func:`fit` a model with a :class:`Recipe` (what changes the weights) and
:class:`RunOptions` (how the run is executed, evaluated and checkpointed).

>>> from cifarzoo.training import Recipe, RunOptions, fit
>>> recipe = Recipe(epochs=1, batch_size=64)
>>> options = RunOptions(device="cpu", quiet=True, checkpoint_dir=None)

The pieces, one module each: :mod:`~cifarzoo.training.recipe`,
:mod:`~cifarzoo.training.options`, the loop (:mod:`~cifarzoo.training.loop`), its device
loaders (:mod:`~cifarzoo.training.loaders`), its stop on a loss or weights no longer finite
(:mod:`~cifarzoo.training.nonfinite`), the checkpoint state and its checks
(:mod:`~cifarzoo.training.state`), the data and its fingerprint
(:mod:`~cifarzoo.training.inputs`), the per-step extras EMA/SAM/clipping
(:mod:`~cifarzoo.training.extras`), distillation targets (:mod:`~cifarzoo.training.distill`),
:class:`History`, the optimizer and schedule, ``torchrun`` support, and the settings declared once
with their rules (:mod:`~cifarzoo.training.fields`), from which :mod:`cifarzoo.cli.options`
generates the command-line options.
"""

from __future__ import annotations

from .distill import Teacher, soft_targets, teacher_logits
from .distributed import DistEnv
from .extras import (
    GradientClipping,
    ModelEma,
    SharpnessAware,
    StepExtra,
    frozen_norm_statistics,
    sam_ascent,
)
from .history import History, iter_epochs
from .inputs import DataMismatchError, EvalData, TrainData, data_fingerprint
from .loop import NonFiniteLossError, fit
from .optimizer import LRSchedule, make_optimizer
from .options import AMP_MODES, RunOptions, split_settings
from .recipe import Recipe, RecipeMismatchError, recipe_differences, recipe_summary
from .state import EpochProgress, ModelArgsMismatchError, TrainState, read_checkpoint

__all__ = [
    "AMP_MODES",
    "DataMismatchError",
    "DistEnv",
    "EpochProgress",
    "EvalData",
    "GradientClipping",
    "History",
    "LRSchedule",
    "ModelArgsMismatchError",
    "ModelEma",
    "NonFiniteLossError",
    "Recipe",
    "RecipeMismatchError",
    "RunOptions",
    "SharpnessAware",
    "StepExtra",
    "Teacher",
    "TrainData",
    "TrainState",
    "data_fingerprint",
    "fit",
    "frozen_norm_statistics",
    "iter_epochs",
    "make_optimizer",
    "read_checkpoint",
    "recipe_differences",
    "recipe_summary",
    "sam_ascent",
    "soft_targets",
    "split_settings",
    "teacher_logits",
]
