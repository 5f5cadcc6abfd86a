"""DenseNet-BC with a CIFAR stem (3x3 conv, stride 1, no max-pool).

Parameter names follow torchvision (``features.conv0``, ``features.denseblock1.denselayer1``,
``features.transition1``, ``features.norm5``, ``classifier``), so torchvision's densenet121/169/201
state_dicts load once their stem conv is 3x3 and their classifier matches ``num_classes``.
``densenet_bc_100_k12`` is the CIFAR network of Huang et al. 2017 (3 blocks of 16 layers, growth
rate 12).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.models import checkpoint_seq, generate_default_cfgs
from torch import Tensor, nn

from ..constants import IMAGE_SIZE, NUM_CLASSES
from ..layers import DenseBlock, Transition, conv3x3
from ..timm_compat import MATCH_PREV_GROUP, feature_take_indices
from ._base import CifarModel, ConvInit, check_conv_init
from ._registry import build, register, weight_cfgs

__all__ = ["DenseNet"]


class DenseNet(CifarModel):
    """DenseNet-BC with a CIFAR stem.

    Args:
        growth_rate: channels added by each dense layer (k).
        block_config: dense layers per block.
        num_init_features: channels of the stem convolution.
        bn_size: bottleneck width of each layer, in multiples of ``growth_rate``.
        compression: channel factor of each transition (0.5 halves the channels).
        proj_drop_rate: dropout on each dense layer's new features (torchvision's ``drop_rate``,
            timm's ``proj_drop_rate``).
        num_classes: classifier outputs; ``0`` for no classifier.
        in_chans: input channels.
        drop_rate: dropout on the pooled features, before the classifier (as in timm).
        global_pool: ``'avg'``, or ``''`` (with ``num_classes=0``) for unpooled output.
        conv_init: how the convolutions start (:data:`~cifarzoo.models.ConvInit`):
            ``"kaiming"`` (normal, fan-in, as torchvision's DenseNets) or ``"pytorch"``
            (PyTorch's default, as the lab's networks start).

    ``feature_info`` lists timm's feature points (``features_only=True``,
    ``forward_intermediates``): the stem's output, each dense block's but the last (before its
    transition), and the final ``norm5``/``relu5`` output.
    """

    classifier_name = "classifier"
    supports_grad_checkpointing = True

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        proj_drop_rate: float = 0.0,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        conv_init: ConvInit = "kaiming",
    ) -> None:
        super().__init__(num_classes, in_chans, drop_rate, global_pool)
        check_conv_init(conv_init)
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.features = nn.Sequential()
        self.features.add_module("conv0", conv3x3(in_chans, num_init_features))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        feature_info: list[dict[str, Any]] = [
            dict(num_chs=num_init_features, reduction=1, module="features.relu0")
        ]
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, proj_drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i != len(block_config) - 1:
                feature_info.append(
                    dict(num_chs=channels, reduction=2**i, module=f"features.denseblock{i + 1}")
                )
                out_channels = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out_channels))
                channels = out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.features.add_module("relu5", nn.ReLU(inplace=True))
        feature_info.append(
            dict(num_chs=channels, reduction=2 ** (len(block_config) - 1), module="features.relu5")
        )
        self.feature_info = feature_info
        self.num_features = channels
        self.classifier: nn.Module = self._make_head(channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and conv_init == "kaiming":
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (layer-wise lr decay): the stem, then each dense block with
        its transition (``coarse``) or each dense layer, a transition joining the layer before."""
        blocks: Any = (
            r"^features\.(?:denseblock|transition)(\d+)"
            if coarse
            else [
                (r"^features\.denseblock(\d+)\.denselayer(\d+)", None),
                (r"^features\.transition(\d+)", MATCH_PREV_GROUP),
            ]
        )
        return dict(stem=r"^features\.(?:conv0|norm0)\.", blocks=blocks)

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():  # type: ignore[attr-defined]
            for module in self.features:
                x = checkpoint_seq(module, x) if isinstance(module, DenseBlock) else module(x)
            return x
        x = self.features(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(self._pool(x))
        return x if pre_logits else self.classifier(x)

    def _feature_ends(self) -> list[int]:
        """The position in ``features`` of each feature point's module (of those that
        ``prune_intermediate_layers`` left)."""
        names = [name for name, _ in self.features.named_children()]
        points = [p["module"].removeprefix("features.") for p in self.feature_info]
        return [names.index(point) for point in points if point in names]

    def _num_feature_points(self) -> int:
        return len(self._feature_ends())

    def _forward_to_points(
        self, x: Tensor, take_indices: list[int], stop_at: int | None
    ) -> tuple[Tensor, list[Tensor]]:
        """Feature point 0 is the stem, the last the final ``relu5`` output."""
        ends = self._feature_ends()
        modules = self.features if stop_at is None else list(self.features)[: ends[stop_at] + 1]
        checkpointing = self.grad_checkpointing and not torch.jit.is_scripting()  # type: ignore[attr-defined]
        intermediates = []
        for i, module in enumerate(modules):
            if checkpointing and isinstance(module, DenseBlock):
                x = checkpoint_seq(module, x)
            else:
                x = module(x)
            if i in ends and ends.index(i) in take_indices:
                intermediates.append(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Remove the layers after the last of the feature points ``indices`` (and the
        classifier with ``prune_head``, or when layers went), as timm's DenseNet does; returns
        the points' absolute indices."""
        ends = self._feature_ends()
        take_indices, max_index = feature_take_indices(len(ends), indices)
        self.features = self.features[: ends[max_index] + 1]
        self._prune_end(max_index, prune_head)
        return take_indices


# Growth rate, dense layers per block and stem width of each architecture.
_ARCHS: dict[str, dict[str, Any]] = {
    "densenet121": dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64),
    "densenet169": dict(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64),
    "densenet201": dict(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64),
    "densenet264": dict(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64),
    "densenet_bc_100_k12": dict(growth_rate=12, block_config=(16, 16, 16), num_init_features=24),
}


def _pool_size(name: str) -> tuple[int, int]:
    """The size of ``name``'s last feature map at 32x32: each transition halves it."""
    size = IMAGE_SIZE // 2 ** (len(_ARCHS[name]["block_config"]) - 1)
    return size, size


default_cfgs = generate_default_cfgs(
    weight_cfgs(_ARCHS, first_conv="features.conv0", classifier="classifier", pool_size=_pool_size)
)


def _create_densenet(name: str, pretrained: bool, **kwargs: Any) -> DenseNet:
    model_args = _ARCHS[name]
    # The feature points live inside ``features``, which timm's extractor must flatten.
    return build(
        DenseNet,
        f"cifar_{name}",
        pretrained,
        feature_points=len(model_args["block_config"]) + 1,
        default_feature_cfg=dict(flatten_sequential=True),
        **{**model_args, **kwargs},
    )


@register
def densenet121(pretrained: bool = False, **kwargs: Any) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16), 7.0 M parameters."""
    return _create_densenet("densenet121", pretrained, **kwargs)


@register
def densenet169(pretrained: bool = False, **kwargs: Any) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32), 12.5 M parameters."""
    return _create_densenet("densenet169", pretrained, **kwargs)


@register
def densenet201(pretrained: bool = False, **kwargs: Any) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32), 18.1 M parameters."""
    return _create_densenet("densenet201", pretrained, **kwargs)


@register
def densenet264(pretrained: bool = False, **kwargs: Any) -> DenseNet:
    """DenseNet-264 (k=32, blocks 6-12-64-48)."""
    return _create_densenet("densenet264", pretrained, **kwargs)


@register
def densenet_bc_100_k12(pretrained: bool = False, **kwargs: Any) -> DenseNet:
    """DenseNet-BC-100 with growth rate 12 (Huang et al. 2017: 3 blocks of 16 layers), 0.8 M
    parameters."""
    return _create_densenet("densenet_bc_100_k12", pretrained, **kwargs)
