"""The :class:`Recipe`: everything that changes the trained weights, checked on resume."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..loader import PadMode
from .fields import check_fields, setting
from .parsing import fraction, nonnegative_float, nonnegative_int, positive_float, positive_int

__all__ = ["Recipe", "RecipeMismatchError", "ScheduleKind", "recipe_differences", "recipe_summary"]

ScheduleKind = Literal["onecycle", "cosine", "constant"]

_AT_LEAST_1 = {"rule": "must be >= 1", "ok": lambda v: v >= 1, "parse": positive_int}
_AT_LEAST_0 = {"rule": "must be >= 0", "ok": lambda v: v >= 0, "parse": nonnegative_float}
_FRACTION = {"rule": "must be in [0, 1]", "ok": lambda v: 0 <= v <= 1, "parse": fraction}


#: The largest seed ``torch.manual_seed`` takes.
MAX_SEED = 2**64 - 1


def _off_at_0(what: str, parse: Any = nonnegative_float) -> dict[str, Any]:
    return {"rule": f"must be >= 0 (0 turns {what} off)", "ok": lambda v: v >= 0, "parse": parse}


def _up_to(top: float, what: str = "", *, below: bool = False) -> dict[str, Any]:
    """A number from 0 to ``top`` (``below``: less than ``top``); ``what`` is what 0 turns
    off. An upper bound keeps a typo (1e30) from training into NaN that seems the lr's fault."""
    rule = f"must be in [0, {top}{')' if below else ']'}" + (
        f" (0 turns {what} off)" if what else ""
    )
    return {
        "rule": rule,
        "ok": (lambda v: 0 <= v < top) if below else (lambda v: 0 <= v <= top),
        "parse": nonnegative_float,
    }


@dataclass(frozen=True)
class Recipe:
    """What a run trains with: every field changes the trained weights, so a checkpoint records
    them and resuming with other values is refused (:class:`RecipeMismatchError`).

    The defaults are cifarzoo's baseline CPU recipe, which :func:`recipe_summary` puts in words
    (each shipped weights records its own, which docs/training.rst gives as a command). With a
    teacher
    (``fit(teacher=...)``) the training targets become
    ``(1 - distill_weight) * one_hot(label) + distill_weight * softmax(teacher_logits / T)``
    with ``T = distill_temperature``. ``sam_rho > 0`` turns on sharpness-aware minimization
    (SAM, Foret et al. 2021): each step takes its gradient at the weights moved ``sam_rho``
    along the normalized gradient (a second forward and backward pass). ``muon_lr > 0`` trains
    the convolution filters with Muon (:class:`~cifarzoo.training.optimizer.MuonSGD`) at that
    peak learning rate, on the same schedule; the other parameters keep SGD with ``lr``.

    How the run is executed and evaluated (device, bf16 autocast, ``torch.compile``, memory
    layout, test-time augmentation, checkpoints) is not part of it: see
    :class:`~cifarzoo.training.RunOptions`.
    """

    epochs: int = setting(30, "training epochs", **_AT_LEAST_1)
    batch_size: int = setting(
        128, "global batch size (under torchrun each of N processes takes 1/N)", **_AT_LEAST_1
    )
    lr: float = setting(
        0.1, "peak learning rate", rule="must be > 0", ok=lambda v: v > 0, parse=positive_float
    )
    momentum: float = setting(0.9, "SGD momentum", **_up_to(1, below=True))
    nesterov: bool = setting(True, "Nesterov momentum (needs a momentum above 0)")
    weight_decay: float = setting(5e-4, "on conv/linear weights only", **_up_to(1))
    label_smoothing: float = setting(0.1, "of the training loss", **_FRACTION)
    schedule: ScheduleKind = setting(
        "onecycle",
        "learning-rate decay after the warm-up: linear, half cosine or none",
        choices=("onecycle", "cosine", "constant"),
    )
    warmup_epochs: float = setting(2.0, "linear learning-rate warm-up", **_AT_LEAST_0)
    ema_decay: float = setting(
        0.999,
        "EMA of the weights, per step; 0 turns EMA off",
        rule="must be in [0, 1) (0 turns EMA off)",
        ok=lambda v: 0 <= v < 1,
        parse=fraction,
    )
    crop_padding: int = setting(
        4,
        "random crops shift the image by up to this many pixels (less than the image size); "
        "0 = no crops",
        **_off_at_0("crops", nonnegative_int),
    )
    pad_mode: PadMode = setting(
        "reflect", "how the crops pad the image", choices=("reflect", "zeros")
    )
    flip: bool = setting(True, "random horizontal flips")
    alternate_flip: bool = setting(
        False,
        "mirror each image in every other epoch instead of at random (airbench; needs flip)",
    )
    cutout: int = setting(
        0,
        "side of a square blanked at a random place (less than the image size); 0 = off",
        **_off_at_0("cutout", nonnegative_int),
    )
    grad_clip: float | None = setting(
        None,
        "clip the gradient norm to this (off: no clipping)",
        rule="must be > 0 (or None for no clipping)",
        ok=lambda v: v is None or v > 0,
        parse=lambda text: None if text == "off" else positive_float(text),
        shown=lambda v: "off" if v is None else str(v),
    )
    sam_rho: float = setting(
        0.0,
        "sharpness-aware minimization with this radius (0.05 is usual); each step costs two "
        "forward and backward passes; 0 = off",
        **_up_to(1, "SAM"),
    )
    muon_lr: float = setting(
        0.0,
        "train the convolution filters with Muon at this peak learning rate (0.01 for "
        "ResNet-20 at batch 64); 0 = SGD for all parameters",
        **_off_at_0("Muon"),
    )
    sync_bn: bool = setting(False, "synchronized batch norm across torchrun processes")
    distill_weight: float = setting(
        0.0, "weight of the teacher's probabilities in the targets", **_FRACTION
    )
    distill_temperature: float = setting(
        1.0,
        "temperature that softens the teacher's probabilities",
        rule="must be > 0",
        ok=lambda v: v > 0,
        parse=positive_float,
    )
    seed: int = setting(
        0,
        "seed of the initialization, the augmentation and the data order",
        rule="must be in 0..2**64 - 1",
        ok=lambda v: 0 <= v <= MAX_SEED,
        parse=nonnegative_int,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov needs a momentum above 0, got momentum 0: turn Nesterov off "
                "(nesterov=False; CLI: --no-nesterov) or give a momentum such as 0.9"
            )
        if self.alternate_flip and not self.flip:
            raise ValueError(
                "alternate_flip mirrors each image in every other epoch, but flip=False turns "
                "mirroring off: drop one of them (CLI: --alternate-flip or --no-flip)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Recipe:
        """The recipe of a stored dict (a checkpoint's ``config``, a metrics.json ``recipe``):
        keys that are no recipe field (older checkpoints also stored ``tta_flip``, ``amp``...)
        are ignored and a field the dict lacks takes its default."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


_SCHEDULE_WORDS = {
    "onecycle": "then linear decay to 0 (onecycle)",
    "cosine": "then half-cosine decay to 0 (cosine)",
    "constant": "then constant (constant)",
}


def _number(x: float) -> str:
    """``5e-4`` rather than ``0.0005``; ``0.1`` and ``30`` as they are."""
    return f"{x:.0e}".replace("e-0", "e-") if 0 < abs(x) < 0.01 else f"{x:g}"


def recipe_summary(recipe: Recipe) -> list[str]:
    """The main settings of ``recipe`` in words, one phrase each (optimizer, schedule,
    regularisation, augmentation, EMA), for help texts and docs: ``recipe_summary(Recipe())``
    is the baseline recipe."""
    momentum = "Nesterov momentum" if recipe.nesterov else "momentum"
    crops = (
        f"random crops ({recipe.pad_mode} padding {recipe.crop_padding})"
        if recipe.crop_padding
        else "no crops"
    )
    augmentation = [crops]
    if recipe.flip:
        augmentation.append("alternating flips" if recipe.alternate_flip else "horizontal flips")
    if recipe.cutout:
        augmentation.append(f"{recipe.cutout}-pixel cutout")
    warmup = (
        f"after a {_number(recipe.warmup_epochs)}-epoch linear warm-up, "
        if recipe.warmup_epochs
        else ""
    )
    return [
        f"{recipe.epochs} epochs at batch {recipe.batch_size}",
        f"SGD with {momentum} {_number(recipe.momentum)}, peak learning rate "
        f"{_number(recipe.lr)} {warmup}{_SCHEDULE_WORDS[recipe.schedule]}",
        f"weight decay {_number(recipe.weight_decay)} on convolution and linear weights only, "
        f"label smoothing {_number(recipe.label_smoothing)}",
        augmentation[0]
        if len(augmentation) == 1
        else f"{', '.join(augmentation[:-1])} and {augmentation[-1]}",
        f"an exponential moving average of the weights (decay {_number(recipe.ema_decay)})"
        if recipe.ema_decay
        else "no moving average of the weights",
    ]


def recipe_differences(saved: Recipe, now: Recipe) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved value, value now)}`` for each field that differs."""
    a, b = saved.to_dict(), now.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


class RecipeMismatchError(ValueError):
    """``resume=True`` with a recipe other than the checkpoint's.

    ``differences`` maps each differing :class:`Recipe` field to
    ``(checkpoint value, requested value)``.
    """

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]) -> None:
        self.path = path
        self.differences = differences
        details = ", ".join(
            f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in differences.items()
        )
        wanted = ", ".join(f"{k}={a!r}" for k, (a, _) in differences.items())
        super().__init__(
            f"cannot resume {path}: the recipe differs ({details}). Resume with the checkpoint's "
            f"values ({wanted}), or start a new run in another checkpoint_dir (CLI: --out)"
        )
