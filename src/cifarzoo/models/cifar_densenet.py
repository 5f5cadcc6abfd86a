"""DenseNet-BC with a CIFAR stem (3x3 conv, stride 1, no max-pool).

Parameter names follow torchvision (``features.conv0``, ``features.denseblock1.denselayer1``,
``features.transition1``, ``features.norm5``, ``classifier``), so torchvision's densenet121/169/201
weights for a 3x3 stem load unchanged. ``densenet_bc_100_k12`` is the CIFAR network of Huang et
al. 2017 (3 blocks of 16 layers, growth rate 12).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timm.models import generate_default_cfgs
from torch import Tensor, nn

from ..layers import DenseBlock, Transition, conv3x3
from ._base import CifarModel
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
        drop_rate: dropout after each dense layer.
        num_classes: classifier outputs.
        in_chans: input channels.
    """

    classifier_name = "classifier"

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.features = nn.Sequential()
        self.features.add_module("conv0", conv3x3(in_chans, num_init_features))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i != len(block_config) - 1:
                out_channels = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out_channels))
                channels = out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.features.add_module("relu5", nn.ReLU(inplace=True))
        self.num_features = self.head_hidden_size = channels
        self.classifier: nn.Module = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x = self.features(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.classifier(x)


# Growth rate, dense layers per block and stem width of each architecture.
_ARCHS: dict[str, dict[str, Any]] = {
    "densenet121": dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64),
    "densenet169": dict(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64),
    "densenet201": dict(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64),
    "densenet264": dict(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64),
    "densenet_bc_100_k12": dict(growth_rate=12, block_config=(16, 16, 16), num_init_features=24),
}

default_cfgs = generate_default_cfgs(
    weight_cfgs(_ARCHS, first_conv="features.conv0", classifier="classifier")
)


def _create_densenet(name: str, pretrained: bool, **kwargs: Any) -> DenseNet:
    return build(DenseNet, f"cifar_{name}", pretrained, **{**_ARCHS[name], **kwargs})


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
