"""LeNet-style CNN: the plain network of the lab report this project grew from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from timm.models import generate_default_cfgs
from torch import Tensor, nn

from ..constants import IMAGE_SIZE
from ._base import CifarModel
from ._registry import build, register, weight_cfgs

__all__ = ["LeNet", "lenet"]


class LeNet(CifarModel):
    """conv 5x5 (6) - max-pool - conv 5x5 (16) - max-pool - fc 120 - fc 84 - fc, with ReLU.

    Exactly the lab's network (module names ``conv1, pool, conv2, fc1, fc2, fc3``, plus the
    parameter-free ``head_drop``). Its fully connected layers fix the input to 32x32.

    ``drop_rate`` means what it means in timm and in the other families: dropout on the
    pre-logit features (the 84 outputs of ``fc2``) before the classifier ``fc3``. ``fc1`` and
    ``fc2`` get none, so that ``drop_rate=0`` (the default) is the lab's network unchanged.
    """

    classifier_name = "fc3"

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int | Sequence[int] = 32,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_chans, drop_rate)
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"LeNet is built for {IMAGE_SIZE}x{IMAGE_SIZE} images, got {img_size=}"
            )
        self.fixed_input_size = (IMAGE_SIZE, IMAGE_SIZE)
        self.conv1 = nn.Conv2d(in_chans, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.num_features = 16
        self.fc3: nn.Module = self._make_head(84)

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.flatten(1)
        x = self.head_drop(F.relu(self.fc2(F.relu(self.fc1(x)))))
        return x if pre_logits else self.fc3(x)


default_cfgs = generate_default_cfgs(
    weight_cfgs(["lenet"], first_conv="conv1", classifier="fc3", fixed_input_size=True)
)


@register
def lenet(pretrained: bool = False, **kwargs: Any) -> LeNet:
    """The lab's LeNet-style CNN (62 K parameters)."""
    if kwargs.get("features_only"):
        raise ValueError(
            "cifar_lenet does not support features_only: it has no multi-scale feature points "
            "(its pooling module is shared by both convolutions). Use model.forward_features(x) "
            "for its last feature map, or a ResNet or DenseNet for a feature pyramid."
        )
    return build(LeNet, "cifar_lenet", pretrained, **kwargs)
