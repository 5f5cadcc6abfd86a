"""The device loaders of a training run: its labels checked, the distillation targets, the
model's normalization, this process's share of each batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..loader import DeviceLoader, check_labels
from ..metrics import eval_batch_size, model_mean_std
from .distill import Teacher, soft_targets, teacher_logits
from .distributed import DistEnv
from .options import RunOptions
from .recipe import Recipe

__all__ = ["run_loaders"]


def run_loaders(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    ev: tuple[Tensor, Tensor] | None,
    eval_split: str,
    teacher: Teacher | None,
    *,
    recipe: Recipe,
    options: RunOptions,
    env: DistEnv,
    device: torch.device,
    amp: bool,
    log: Callable[[str], None],
) -> tuple[DeviceLoader, DeviceLoader | None]:
    """The training loader (augmented, shuffled, the teacher's soft targets when there is one)
    and the loader of the ``ev`` split, if any, named ``eval_split`` in messages; the teacher
    predicts under bf16 autocast if ``amp``, and ``log`` says what it does.

    Raises:
        ValueError: a label outside the model's classes, or a batch larger than the data.
    """
    declared = getattr(model, "num_classes", None)
    num_classes = declared if isinstance(declared, int) else None
    # The labels are checked once, here; the loaders below only refuse negative ones.
    check_labels(train[1], num_classes, "training labels")
    if ev is not None:
        check_labels(ev[1], num_classes, f"{eval_split} labels")
    mean, std = model_mean_std(model)
    targets = train[1]
    if teacher is not None:
        logits = teacher_logits(teacher, train, device, amp, log)
        targets = soft_targets(
            logits, train[1], recipe.distill_weight, recipe.distill_temperature, num_classes
        )
    layout: dict[str, Any] = dict(
        mean=mean, std=std, device=device, channels_last=options.channels_last
    )
    layout.update(rank=env.rank, world_size=env.world_size)
    loader = DeviceLoader(
        train[0],
        targets,
        batch_size=recipe.batch_size,
        train=True,
        drop_last=True,
        crop_padding=recipe.crop_padding,
        pad_mode=recipe.pad_mode,
        flip=recipe.flip,
        alternate_flip=recipe.alternate_flip,
        cutout=recipe.cutout,
        seed=recipe.seed,
        **layout,
    )
    if len(loader) == 0:
        raise ValueError(
            f"batch_size {recipe.batch_size} is larger than the training set "
            f"({loader.num_images} images)"
        )
    eval_loader = (
        None
        if ev is None
        else DeviceLoader(
            ev[0],
            ev[1],
            batch_size=eval_batch_size(device) * env.world_size,
            train=False,
            **layout,
        )
    )
    return loader, eval_loader
