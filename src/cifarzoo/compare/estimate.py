"""How long a comparison will take, said before it starts: one timed training step of each
model, scaled to its epochs and to the evaluations that follow them."""

from __future__ import annotations

from collections.abc import Mapping

from ..data import CIFAR10Data
from ..formats import duration

__all__ = ["FORWARD_SHARE", "describe_estimate", "estimated_seconds", "evaluated_images"]

#: What an evaluation forward pass costs next to a training step on as many images (no
#: backward pass, no optimizer step): about a third.
FORWARD_SHARE = 1 / 3


def evaluated_images(data: CIFAR10Data, epochs: int, train_eval_images: int) -> int:
    """The images a trained model is evaluated on: the evaluation split after every epoch, then
    the test and validation splits and the training error's images."""
    per_epoch = len(data.val if data.val is not None else data.test)
    final = len(data.test) + (0 if data.val is None else len(data.val))
    return per_epoch * epochs + final + min(train_eval_images, len(data.train))


def estimated_seconds(
    step_seconds: float, *, batch_size: int, train_images: int, epochs: int, eval_images: int
) -> float:
    """The training steps of ``epochs`` epochs and the evaluation of ``eval_images`` images,
    at ``step_seconds`` a training step of ``batch_size`` images."""
    steps = max(1, train_images // batch_size) * epochs
    return step_seconds * (steps + FORWARD_SHARE * eval_images / batch_size)


def describe_estimate(
    step_seconds: Mapping[str, float],
    data: CIFAR10Data,
    *,
    epochs: int,
    batch_size: int,
    train_eval_images: int,
) -> str:
    """The line ``compare`` prints before it starts: the whole estimate and each model's."""
    eval_images = evaluated_images(data, epochs, train_eval_images)
    each = {
        name: estimated_seconds(
            seconds,
            batch_size=batch_size,
            train_images=len(data.train),
            epochs=epochs,
            eval_images=eval_images,
        )
        for name, seconds in step_seconds.items()
    }
    parts = ", ".join(f"{name} {duration(s)}" for name, s in each.items())
    return (
        f"estimated time: about {duration(sum(each.values()))} ({parts}; from one timed "
        "training step of each model)"
    )
