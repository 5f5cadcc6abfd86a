""":class:`RunOptions`: how a run is executed and evaluated, not what it learns."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..checkpoint import CHECKPOINT_NAME
from ..devices import resolve_amp
from .fields import check_fields, setting
from .parsing import positive_int
from .recipe import Recipe

__all__ = [
    "AMP_MODES",
    "RECORDED_OPTIONS",
    "RunOptions",
    "TrainingSetup",
    "amp_mode",
    "amp_name",
    "split_settings",
]

#: Command-line spellings of ``RunOptions.amp``: ``auto`` is bf16 autocast where it is fast
#: (:func:`~cifarzoo.devices.fast_bf16`: CUDA, and CPUs with AMX or AVX512-BF16).
AMP_MODES: dict[str, bool | None] = {"auto": None, "bf16": True, "off": False}


#: The :class:`RunOptions` that checkpoints and run folders record (a resume from the command
#: line takes them from the checkpoint when they are not given).
RECORDED_OPTIONS = ("amp", "channels_last", "compile", "tta_flip", "tta_translate")


def amp_mode(word: str) -> bool | None:
    """``--amp WORD`` as the value of ``RunOptions.amp``; another word is a ``ValueError``."""
    if word not in AMP_MODES:
        raise ValueError(f"must be one of {', '.join(AMP_MODES)}, got {word!r}")
    return AMP_MODES[word]


def amp_name(value: bool | None) -> str:
    """How the command line names an ``amp`` value (``None`` is ``auto``)."""
    return next((k for k, v in AMP_MODES.items() if v is value), str(value))


@dataclass(frozen=True)
class RunOptions:
    """The settings of a run that do not belong to the recipe: changing them between an
    interrupted run and its resume is allowed (a checkpoint records those of
    :data:`RECORDED_OPTIONS`, and a resume with another precision warns that the result will not
    be bit-identical, as a different number of processes does).

    ``amp=None`` means bf16 autocast where it is faster than fp32 (CUDA, and CPUs with AMX or
    AVX512-BF16 instructions: :func:`~cifarzoo.devices.fast_bf16`) and fp32 elsewhere;
    checkpoints record the precision that ran. ``tta_flip`` and ``tta_translate`` are the
    test-time augmentation measured beside the single-pass accuracy in the evaluations during
    training (shown in the progress bar; the curves, ``History.eval_*``, are one forward pass)
    and at the end (``cifarzoo train``'s ``tta_test_accuracy``); ``eval_every`` evaluates every
    this many epochs (and after the last).
    ``checkpoint_dir`` receives ``checkpoint.pt`` after every epoch (atomically) and on Ctrl-C or
    SIGTERM;
    ``resume`` continues from it when it exists. A ``checkpoint_dir`` that holds a run (a
    finished one's ``metrics.json``, another run's ``checkpoint.pt``...) is refused unless
    ``resume`` continues it or ``overwrite`` replaces it: its run files are then deleted when
    training starts, once the model, data and recipe were accepted.
    """

    device: torch.device | str | None = setting(None, "cuda, cuda:1, cpu...; unset: cuda if any")
    amp: bool | None = setting(
        None,
        "bf16 autocast: auto = on where it is fast (CUDA; CPUs with AMX or AVX512-BF16), else off",
        parse=amp_mode,
        choices=tuple(AMP_MODES.values()),
        shown=amp_name,
    )
    compile: bool = setting(False, "torch.compile the model")
    channels_last: bool = setting(True, "channels_last memory layout (faster on GPUs)")
    tta_flip: bool = setting(
        True,
        "also measure flip test-time augmentation, beside the single-pass accuracy",
        flag="--tta",
    )
    tta_translate: bool = setting(
        False, "also average over copies shifted one pixel diagonally (test-time augmentation)"
    )
    eval_every: int = setting(
        1,
        "evaluate every N epochs (and after the last); the curves get fewer points",
        rule="must be a positive integer (epochs)",
        ok=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        parse=positive_int,
    )
    checkpoint_dir: str | os.PathLike[str] | None = setting(
        None, f"write {CHECKPOINT_NAME} here after every epoch and on Ctrl-C or SIGTERM"
    )
    resume: bool = setting(False, f"continue from checkpoint_dir/{CHECKPOINT_NAME} when it exists")
    overwrite: bool = setting(
        False, "replace the run that checkpoint_dir holds (deleted when training starts)"
    )
    quiet: bool = setting(False, "no progress bars")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.resume and self.overwrite:
            raise ValueError(
                "resume=True continues the run in checkpoint_dir and overwrite=True replaces it: "
                "pass one of them"
            )

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)

    def recorded(self) -> dict[str, Any]:
        """The options that checkpoints and run folders record (:data:`RECORDED_OPTIONS`)."""
        return {k: getattr(self, k) for k in RECORDED_OPTIONS}

    def resolved_amp(self, device: torch.device | str) -> bool:
        """Whether bf16 autocast is on for ``device`` (:func:`~cifarzoo.devices.resolve_amp`)."""
        return resolve_amp(self.amp, torch.device(device))


def split_settings(
    settings: Mapping[str, Any], recipe: Recipe | None = None, options: RunOptions | None = None
) -> tuple[Recipe, RunOptions]:
    """Flat keywords (``lr=0.05, quiet=True``)
    as a :class:`Recipe` and :class:`RunOptions`, on top of ``recipe``/``options``. An unknown
    name is a ``TypeError`` that lists the known ones."""
    recipe_names = {f.name for f in dataclasses.fields(Recipe)}
    option_names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(settings) - recipe_names - option_names)
    if unknown:
        raise TypeError(
            f"unknown training setting(s) {', '.join(unknown)}; the recipe has "
            f"{', '.join(sorted(recipe_names))} and the run options "
            f"{', '.join(sorted(option_names))}"
        )
    base_recipe = Recipe() if recipe is None else recipe
    base_options = RunOptions() if options is None else options
    return (
        base_recipe.replace(**{k: v for k, v in settings.items() if k in recipe_names}),
        base_options.replace(**{k: v for k, v in settings.items() if k in option_names}),
    )


@dataclass(frozen=True)
class TrainingSetup:
    """A run's recipe and run options together, as the run folder records them: ``to_dict()``
    is ``metrics.json``'s ``recipe`` (the recipe fields plus ``amp``, ``channels_last``,
    ``compile``, ``tta_flip`` and ``tta_translate``, the keys it has always had)."""

    recipe: Recipe
    options: RunOptions

    @property
    def amp(self) -> bool | None:
        return self.options.amp

    @property
    def tta_flip(self) -> bool:
        return self.options.tta_flip

    @property
    def tta_translate(self) -> bool:
        return self.options.tta_translate

    def to_dict(self) -> dict[str, Any]:
        return {**self.recipe.to_dict(), **self.options.recorded()}
