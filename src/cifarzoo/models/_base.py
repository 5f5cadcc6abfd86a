"""The timm model interface shared by every cifarzoo family."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CifarModel", "check_num_classes"]


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(
            f"num_classes must be a positive integer, got {num_classes!r}. For features without "
            "a classifier, use model.forward_features(x) or model.forward_head(x, pre_logits=True)."
        )
    return num_classes


class CifarModel(nn.Module):
    """Base of cifarzoo models: timm's ``num_classes``, ``num_features``, ``head_hidden_size``,
    ``forward_features``, ``forward_head(x, pre_logits=False)``, ``get_classifier`` and
    ``reset_classifier``, plus a readable error for inputs of the wrong shape.

    Subclasses build their layers, name their classifier attribute in ``classifier_name`` and
    implement ``forward_features`` and ``forward_head``.
    """

    classifier_name: str = "fc"

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
            raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
        self.num_classes = check_num_classes(num_classes)
        self.in_chans = in_chans
        self.arch_name: str = type(self).__name__
        self.num_features = 0
        self.head_hidden_size = 0

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{self.arch_name} expects a batch of shape (N, {self.in_chans}, H, W), got "
                f"{list(x.shape)}. Add a batch dimension with x.unsqueeze(0) for a single image, "
                "or build the model with in_chans matching your images' channels."
            )

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def get_classifier(self) -> nn.Module:
        """The final classification layer."""
        classifier: nn.Module = getattr(self, self.classifier_name)
        return classifier

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` classes; ``0`` removes it
        (the model then returns pre-logit features), as in timm."""
        if num_classes != 0:
            check_num_classes(num_classes)
        self.num_classes = num_classes
        old = self.get_classifier()
        new: nn.Module = (
            nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        )
        if isinstance(old, nn.Linear):
            new.to(device=old.weight.device, dtype=old.weight.dtype)
        setattr(self, self.classifier_name, new)
