"""LeNet-style CNN: the plain network of the lab report this project grew from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from timm.models import generate_default_cfgs
from torch import Tensor, nn

from ..constants import IMAGE_SIZE, NUM_CLASSES
from ..timm_compat import feature_take_indices
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

    Its head flattens the 16x5x5 feature map into ``fc1`` and ``fc2``: ``global_pool=''`` (with
    ``num_classes=0``) skips the whole head, so that the model returns that map. timm's feature
    points (``feature_info``, ``forward_intermediates``, ``features_only=True``) are the
    outputs of the two poolings.
    """

    classifier_name = "fc3"

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 3,
        img_size: int | Sequence[int] = IMAGE_SIZE,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__(num_classes, in_chans, drop_rate, global_pool)
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"LeNet is built for {IMAGE_SIZE}x{IMAGE_SIZE} images, got {img_size=}"
            )
        self.fixed_input_size = (IMAGE_SIZE, IMAGE_SIZE)
        self.conv1 = nn.Conv2d(in_chans, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2: nn.Module | None = nn.Conv2d(6, 16, 5)
        self.fc1: nn.Module = nn.Linear(16 * 5 * 5, 120)
        self.fc2: nn.Module = nn.Linear(120, 84)
        self.num_features = 16
        # Both poolings are the one module ``pool`` (the lab's network): timm reaches these
        # points through forward_intermediates, not through module hooks.
        self.feature_info = [
            dict(num_chs=6, reduction=2, module="pool"),
            dict(num_chs=16, reduction=4, module="pool"),
        ]
        self.fc3: nn.Module = self._make_head(84)

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x = self.pool(F.relu(self.conv1(x)))
        if self.conv2 is not None:  # None once pruned to the first feature point
            x = self.pool(F.relu(self.conv2(x)))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "":
            return x
        x = x.flatten(1)
        x = self.head_drop(F.relu(self.fc2(F.relu(self.fc1(x)))))
        return x if pre_logits else self.fc3(x)

    def _forward_to_points(
        self, x: Tensor, take_indices: list[int], stop_at: int | None
    ) -> tuple[Tensor, list[Tensor]]:
        """Feature points 0 and 1 are the outputs of the two poolings."""
        x = self.pool(F.relu(self.conv1(x)))
        intermediates = [x] if 0 in take_indices else []
        if self.conv2 is not None and stop_at != 0:
            x = self.pool(F.relu(self.conv2(x)))
            if 1 in take_indices:
                intermediates.append(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Remove the second convolution if only the first feature point is kept, and the head
        (``fc1``-``fc3``) with ``prune_head`` or then; returns the points' absolute indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        if max_index == 0:
            self.conv2 = None
        self._prune_end(max_index, prune_head)
        if self.global_pool == "":  # the head is gone: its hidden layers too
            self.fc1 = self.fc2 = nn.Identity()
        return take_indices


default_cfgs = generate_default_cfgs(
    weight_cfgs(
        ["lenet"],
        first_conv="conv1",
        classifier="fc3",
        fixed_input_size=True,
        pool_size=lambda _: (5, 5),  # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5
    )
)


@register
def lenet(pretrained: bool = False, **kwargs: Any) -> LeNet:
    """The lab's LeNet-style CNN (62 K parameters)."""
    # Its shared pooling module cannot be hooked per feature point: features come from
    # forward_intermediates (timm's FeatureGetterNet).
    feature_cls = (kwargs.get("feature_cfg") or {}).get("feature_cls", "getter")
    if kwargs.get("features_only") and feature_cls != "getter":
        raise ValueError(
            f"cifar_lenet supports features_only with feature_cls='getter' only, got "
            f"{feature_cls!r}: both of its feature points are the output of its one pooling "
            "module, which module hooks or torch.fx cannot tell apart."
        )
    getter = dict(feature_cls="getter")
    return build(
        LeNet, "cifar_lenet", pretrained, feature_points=2, default_feature_cfg=getter, **kwargs
    )
