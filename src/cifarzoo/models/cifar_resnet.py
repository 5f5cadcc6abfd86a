"""ResNet, SE-ResNet and plain networks with a CIFAR stem (3x3 conv, stride 1, no max-pool).

One class covers both tiers: the ImageNet-width networks (``resnet18``...``resnet152``, four
stages of 64-512 channels, torchvision's parameter names) and the CIFAR-native networks of He et
al. 2016 (``resnet20``...``resnet110``, three stages of 16/32/64 channels). An SE-ResNet is the
same network built with :class:`~cifarzoo.layers.SEBlock` attention in every block, and a plain
network (``plain20``...``plain110``, He et al.'s baselines without shortcuts) the same network
built with ``residual=False``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from timm.models import checkpoint_seq, generate_default_cfgs
from torch import Tensor, nn

from ..constants import IMAGE_SIZE, NUM_CLASSES
from ..layers import AttnFactory, BasicBlock, Bottleneck, SEBlock, conv3x3
from ..timm_compat import feature_take_indices
from ._base import CifarModel, ConvInit, check_conv_init
from ._registry import build, register, weight_cfgs

__all__ = ["ResNet"]


class ResNet(CifarModel):
    """ResNet with a CIFAR stem.

    Args:
        block: :class:`~cifarzoo.layers.BasicBlock` or :class:`~cifarzoo.layers.Bottleneck`.
        layers: blocks per stage (3 or 4 stages); each stage after the first halves the size.
        widths: block width of each stage (the output is ``width * block.expansion``).
        num_classes: classifier outputs; ``0`` for no classifier.
        in_chans: input channels.
        attn_layer: optional attention factory for every block (e.g. ``SEBlock``).
        drop_rate: dropout on the pooled features, before the classifier.
        global_pool: ``'avg'``, or ``''`` (with ``num_classes=0``) for unpooled output.
        residual: ``False`` removes every block's shortcut (a plain network).
        zero_init_residual: start each residual branch's last BN at zero, so every block begins as
            the identity (Goyal et al. 2017); it helps training from scratch. Default: on for a
            residual network; a plain network cannot have it (its blocks would output zeros).
        conv_init: how the convolutions start (:data:`~cifarzoo.models.ConvInit`):
            ``"kaiming"`` (normal, fan-out, as torchvision's ResNets) or ``"pytorch"``
            (PyTorch's default, as the fast-training recipes and the lab's networks start).

    ``feature_info`` lists timm's feature points (``features_only=True``,
    ``forward_intermediates``): the stem's output and each stage's.
    """

    supports_grad_checkpointing = True

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = NUM_CLASSES,
        in_chans: int = 3,
        attn_layer: AttnFactory | None = None,
        drop_rate: float = 0.0,
        residual: bool = True,
        zero_init_residual: bool | None = None,
        global_pool: str = "avg",
        conv_init: ConvInit = "kaiming",
    ) -> None:
        super().__init__(num_classes, in_chans, drop_rate, global_pool)
        check_conv_init(conv_init)
        if zero_init_residual and not residual:
            raise ValueError(
                "zero_init_residual=True needs residual=True: without shortcuts, a block whose "
                "last BN starts at zero outputs zeros and the network cannot learn"
            )
        if len(layers) not in (3, 4) or len(widths) != len(layers) or min(layers) < 1:
            raise ValueError(
                f"ResNet needs 3 or 4 stages with at least one block each and one width per "
                f"stage, got {layers=} and {widths=}"
            )
        self.conv1 = conv3x3(in_chans, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        channels = widths[0]
        feature_info: list[dict[str, Any]] = [dict(num_chs=channels, reduction=1, module="relu")]
        stages: list[nn.Sequential] = []
        for i, (width, depth) in enumerate(zip(widths, layers, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    block(channels, width, stride, attn_layer=attn_layer, residual=residual)
                )
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
            feature_info.append(dict(num_chs=channels, reduction=2**i, module=f"layer{i + 1}"))
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.layer4 = stages[3] if len(stages) == 4 else None
        self.feature_info = feature_info
        self.num_features = channels
        self.fc: nn.Module = self._make_head(channels)
        self._init_weights(
            residual if zero_init_residual is None else zero_init_residual, conv_init
        )

    def _init_weights(self, zero_init_residual: bool, conv_init: ConvInit) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and conv_init == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """timm's parameter groups (layer-wise lr decay): the stem, then each stage (``coarse``)
        or each block."""
        return dict(
            stem=r"^(?:conv1|bn1)\.", blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"
        )

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.grad_checkpointing and not torch.jit.is_scripting():  # type: ignore[attr-defined]
            out: Tensor = checkpoint_seq(self._stages(), x, flatten=True)
            return out
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.layer4 is not None:
            x = self.layer4(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(self._pool(x))
        return x if pre_logits else self.fc(x)

    def _stages(self) -> list[nn.Module]:
        stages: list[nn.Module] = [self.layer1, self.layer2, self.layer3]
        return stages if self.layer4 is None else [*stages, self.layer4]

    def _forward_to_points(
        self, x: Tensor, take_indices: list[int], stop_at: int | None
    ) -> tuple[Tensor, list[Tensor]]:
        """Feature point 0 is the stem, then one per stage."""
        x = self.relu(self.bn1(self.conv1(x)))
        intermediates = [x] if 0 in take_indices else []
        stages = self._stages()
        for i, stage in enumerate(stages if stop_at is None else stages[:stop_at], start=1):
            if self.grad_checkpointing and not torch.jit.is_scripting():  # type: ignore[attr-defined]
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
            if i in take_indices:
                intermediates.append(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Remove the stages after the last of the feature points ``indices`` (and the
        classifier with ``prune_head``, or when stages went), as timm's ResNet does; returns the
        points' absolute indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for n in range(max_index + 1, len(self._stages()) + 1):
            setattr(self, f"layer{n}", nn.Sequential())  # empty: checkpoint_seq can iterate it
        self._prune_end(max_index, prune_head)
        return take_indices


_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)
_CIFAR_DEPTHS = (20, 32, 44, 56, 110)

# Architecture of each plain ResNet; the "se" variant of each adds SE attention to every block.
_ARCHS: dict[str, dict[str, Any]] = {
    "resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2), widths=_IMAGENET_WIDTHS),
    "resnet34": dict(block=BasicBlock, layers=(3, 4, 6, 3), widths=_IMAGENET_WIDTHS),
    "resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3), widths=_IMAGENET_WIDTHS),
    "resnet101": dict(block=Bottleneck, layers=(3, 4, 23, 3), widths=_IMAGENET_WIDTHS),
    "resnet152": dict(block=Bottleneck, layers=(3, 8, 36, 3), widths=_IMAGENET_WIDTHS),
    **{
        f"resnet{depth}": dict(
            block=BasicBlock, layers=((depth - 2) // 6,) * 3, widths=_CIFAR_WIDTHS
        )
        for depth in _CIFAR_DEPTHS
    },
}


def _pool_size(name: str) -> tuple[int, int]:
    """The size of ``name``'s last feature map at 32x32: each stage after the first halves it."""
    arch = _ARCHS[name.removeprefix("se").replace("plain", "resnet")]
    size = IMAGE_SIZE // 2 ** (len(arch["layers"]) - 1)
    return size, size


default_cfgs = generate_default_cfgs(
    weight_cfgs(
        [f"{prefix}{arch}" for prefix in ("", "se") for arch in _ARCHS]
        + [f"plain{depth}" for depth in _CIFAR_DEPTHS],
        first_conv="conv1",
        classifier="fc",
        pool_size=_pool_size,
    )
)


def _create_resnet(name: str, pretrained: bool, **kwargs: Any) -> ResNet:
    """Build the architecture ``name`` (``resnet20``, ``seresnet18``, ``plain56``...) through
    timm."""
    if name.startswith("plain"):
        model_args = dict(_ARCHS[name.replace("plain", "resnet")], residual=False)
    else:
        model_args = dict(_ARCHS[name.removeprefix("se")])
    if name.startswith("se"):
        model_args["attn_layer"] = functools.partial(SEBlock, reduction=16)
    points = len(model_args["layers"]) + 1
    return build(
        ResNet, f"cifar_{name}", pretrained, feature_points=points, **{**model_args, **kwargs}
    )


@register
def resnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]), 11.2 M parameters."""
    return _create_resnet("resnet18", pretrained, **kwargs)


@register
def resnet34(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]), 21.3 M parameters."""
    return _create_resnet("resnet34", pretrained, **kwargs)


@register
def resnet50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]), 23.5 M parameters."""
    return _create_resnet("resnet50", pretrained, **kwargs)


@register
def resnet101(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]), 42.5 M parameters."""
    return _create_resnet("resnet101", pretrained, **kwargs)


@register
def resnet152(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-152 (Bottleneck, [3, 8, 36, 3]), 58.2 M parameters."""
    return _create_resnet("resnet152", pretrained, **kwargs)


@register
def resnet20(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016: BasicBlock, 3 stages of 3 blocks, 16/32/64 channels)."""
    return _create_resnet("resnet20", pretrained, **kwargs)


@register
def resnet32(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-32 (He et al. 2016: BasicBlock, 3 stages of 5 blocks, 16/32/64 channels)."""
    return _create_resnet("resnet32", pretrained, **kwargs)


@register
def resnet44(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-44 (He et al. 2016: BasicBlock, 3 stages of 7 blocks, 16/32/64 channels)."""
    return _create_resnet("resnet44", pretrained, **kwargs)


@register
def resnet56(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-56 (He et al. 2016: BasicBlock, 3 stages of 9 blocks, 16/32/64 channels)."""
    return _create_resnet("resnet56", pretrained, **kwargs)


@register
def resnet110(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-110 (He et al. 2016: BasicBlock, 3 stages of 18 blocks, 16/32/64 channels)."""
    return _create_resnet("resnet110", pretrained, **kwargs)


@register
def seresnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SE-ResNet-18: resnet18 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet18", pretrained, **kwargs)


@register
def seresnet34(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SE-ResNet-34: resnet34 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet34", pretrained, **kwargs)


@register
def seresnet50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SE-ResNet-50: resnet50 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet50", pretrained, **kwargs)


@register
def seresnet101(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SE-ResNet-101: resnet101 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet101", pretrained, **kwargs)


@register
def seresnet152(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SE-ResNet-152: resnet152 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet152", pretrained, **kwargs)


@register
def seresnet20(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR SE-ResNet-20: resnet20 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet20", pretrained, **kwargs)


@register
def seresnet32(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR SE-ResNet-32: resnet32 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet32", pretrained, **kwargs)


@register
def seresnet44(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR SE-ResNet-44: resnet44 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet44", pretrained, **kwargs)


@register
def seresnet56(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR SE-ResNet-56: resnet56 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet56", pretrained, **kwargs)


@register
def seresnet110(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR SE-ResNet-110: resnet110 with SE attention (reduction 16) in every block."""
    return _create_resnet("seresnet110", pretrained, **kwargs)


@register
def plain20(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR plain-20: resnet20 without shortcuts (He et al. 2016's baseline)."""
    return _create_resnet("plain20", pretrained, **kwargs)


@register
def plain32(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR plain-32: resnet32 without shortcuts (He et al. 2016's baseline)."""
    return _create_resnet("plain32", pretrained, **kwargs)


@register
def plain44(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR plain-44: resnet44 without shortcuts (He et al. 2016's baseline)."""
    return _create_resnet("plain44", pretrained, **kwargs)


@register
def plain56(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR plain-56: resnet56 without shortcuts (He et al. 2016's baseline)."""
    return _create_resnet("plain56", pretrained, **kwargs)


@register
def plain110(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """CIFAR plain-110: resnet110 without shortcuts (He et al. 2016's baseline)."""
    return _create_resnet("plain110", pretrained, **kwargs)
