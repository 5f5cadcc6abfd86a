"""Knowledge distillation as data: a teacher's softened probabilities mixed into the labels.

:func:`soft_targets` turns a teacher (a model, an ensemble, or its logits) into the soft-label
targets that :func:`~cifarzoo.training.fit` trains on like any other soft labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..metrics import predict_logits

__all__ = ["Teacher", "soft_targets", "teacher_logits"]

#: A teacher for distillation: a model, an ensemble of models, or logits for the training images.
Teacher = nn.Module | Sequence[nn.Module] | Tensor


def teacher_logits(
    teacher: Teacher,
    train: tuple[Tensor, Tensor],
    device: torch.device,
    amp: bool,
    log: Callable[[str], None] = print,
) -> Tensor:
    """The teacher's logits for the training images: given ones as they are, a model's with flip
    TTA, an ensemble's as the log of its members' mean probability."""
    if isinstance(teacher, Tensor):
        return teacher.to(device, torch.float32)
    members = [teacher] if isinstance(teacher, nn.Module) else list(teacher)
    log(
        f"computing the predictions of {len(members)} teacher model(s) on "
        f"{len(train[1])} training images"
    )
    log_probs = [
        torch.log_softmax(
            predict_logits(m.to(device), train, tta_flip=True, device=device, amp=amp), dim=1
        )
        for m in members
    ]
    # the log of the members' mean probability: softmax(logits) is that mean
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(members))


def soft_targets(
    logits: Tensor,
    labels: Tensor,
    weight: float,
    temperature: float,
    num_classes: int | None,
) -> Tensor:
    """``(1 - weight) * one_hot(labels) + weight * softmax(logits / temperature)``, after
    checking that the logits have one row per label and a column per class."""
    labels = labels.to(logits.device, torch.int64)
    if num_classes is not None:
        wanted = f"the model's {num_classes}"
        fits = logits.dim() == 2 and logits.shape[1] == num_classes
    else:  # the model does not say: every label needs a column
        needed = int(labels.max()) + 1 if len(labels) else 0
        wanted = f"at least {needed} (the largest label + 1)"
        fits = logits.dim() == 2 and logits.shape[1] >= needed
    if not fits or len(logits) != len(labels):
        raise ValueError(
            f"teacher logits must be [{len(labels)}, num_classes] (one row per training "
            f"image, num_classes {wanted}), got {list(logits.shape)}; use a teacher of the "
            "same classes"
        )
    probs = torch.softmax(logits / temperature, dim=1)
    one_hot = F.one_hot(labels, probs.shape[1]).float()
    return torch.lerp(one_hot, probs, weight)
