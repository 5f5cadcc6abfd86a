"""Building blocks shared by every cifarzoo model family.

The blocks are public so that new networks can be composed from them in a few lines:

>>> import torch
>>> from torch import nn
>>> from cifarzoo.layers import BasicBlock, DenseBlock, SEBlock, Transition, conv1x1, conv3x3
>>> net = nn.Sequential(
...     conv3x3(3, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
...     BasicBlock(32, 32, attn_layer=SEBlock),
...     DenseBlock(num_layers=2, in_channels=32, growth_rate=16),  # 32 + 2 * 16 = 64 channels
...     Transition(64, 32),                                        # halves channels and size
...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
... )
>>> net(torch.randn(2, 3, 32, 32)).shape
torch.Size([2, 10])

Module and attribute names follow torchvision (``conv1``, ``bn1``, ``downsample``,
``denselayer1``, ``norm``...), so a torchvision ResNet or DenseNet state_dict loads into the
cifarzoo model once its stem conv is 3x3 and its classifier matches ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttnFactory",
    "BasicBlock",
    "Bottleneck",
    "DenseBlock",
    "DenseLayer",
    "SEBlock",
    "Transition",
    "_DenseLayer",
    "_Transition",
    "conv1x1",
    "conv3x3",
]

#: Builds a channel-attention module for a given channel count (e.g. :class:`SEBlock`).
AttnFactory = Callable[[int], nn.Module]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows it)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class SEBlock(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018): global average pool, FC, ReLU, FC, sigmoid, scale.

    The two FC layers are 1x1 convolutions on the pooled map, which keeps channels_last tensors
    in their layout. The hidden width is ``channels // reduction`` (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels <= 0 or reduction <= 0:
            raise ValueError(
                f"SEBlock needs positive channels and reduction, got {channels=} and {reduction=}"
            )
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: Tensor) -> Tensor:
        """The per-channel gate values in (0, 1), shape ``(N, C, 1, 1)``."""
        s = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(self.relu(self.fc1(s))))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


def _shortcut(
    in_channels: int, out_channels: int, stride: int, downsample: nn.Module | None, residual: bool
) -> nn.Module | None:
    """A block's shortcut module: ``downsample`` if given, else a 1x1 conv + BN when the shape
    changes; ``None`` for the identity shortcut and for a block without shortcut."""
    if not residual:
        if downsample is not None:
            raise ValueError(
                "a block with residual=False has no shortcut, so it takes no downsample module"
            )
        return None
    if downsample is not None:
        return downsample
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class _ResidualBlock(nn.Module):
    """A residual branch (built by :meth:`_build_branch`), optional channel attention on it, and
    the shortcut; the arguments are :class:`BasicBlock`'s."""

    expansion: int = 1
    relu: nn.ReLU  # set by _build_branch, in the place torchvision's blocks hold it

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attn_layer: AttnFactory | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self._build_branch(in_channels, channels, stride)
        self.se = attn_layer(out_channels) if attn_layer is not None else None
        self.residual = residual
        self.downsample = _shortcut(in_channels, out_channels, stride, downsample, residual)

    def _build_branch(self, in_channels: int, channels: int, stride: int) -> None:
        raise NotImplementedError

    def _branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        shortcut: Tensor = x if self.downsample is None else self.downsample(x)
        out: Tensor = self._branch(x)
        if self.se is not None:
            out = self.se(out)
        out = self.relu(out + shortcut if self.residual else out)
        return out


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions with a residual connection (He et al. 2016), expansion 1.

    Args:
        in_channels: input channels.
        channels: output channels.
        stride: stride of the first convolution.
        downsample: module applied to the shortcut; by default a 1x1 conv + BN is created when the
            shape changes, ``None`` otherwise. Pass ``nn.Identity()`` to force a plain shortcut.
        attn_layer: optional channel-attention factory (e.g. :class:`SEBlock`) applied to the
            residual branch before the addition, which turns a ResNet into an SE-ResNet.
        residual: ``False`` drops the shortcut (and its downsample): the block of a *plain*
            network, as in He et al. 2016's plain-vs-residual comparison.
    """

    expansion: int = 1

    def _build_branch(self, in_channels: int, channels: int, stride: int) -> None:
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels * self.expansion)
        self.bn2 = nn.BatchNorm2d(channels * self.expansion)

    def _branch(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return out


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's ResNet v1.5), 1x1 expand by 4.

    Arguments as :class:`BasicBlock`; ``channels`` is the bottleneck width and the block outputs
    ``channels * 4``.
    """

    expansion: int = 4

    def _build_branch(self, in_channels: int, channels: int, stride: int) -> None:
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, channels * self.expansion)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)

    def _branch(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 conv to ``bn_size * growth_rate``, BN-ReLU-3x3 conv to
    ``growth_rate``, optional dropout; returns its input concatenated with the new features.

    The output has ``in_channels + growth_rate`` channels. ``drop_rate`` (torchvision's name) is
    the dropout on the new features, which :class:`~cifarzoo.models.DenseNet` calls
    ``proj_drop_rate``.
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_channels, bn_size * growth_rate)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(bn_size * growth_rate, growth_rate)
        self.drop_rate = float(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        if self.drop_rate > 0:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return torch.cat([x, new], 1)


class DenseBlock(nn.Sequential):
    """``num_layers`` :class:`DenseLayer` s; outputs ``in_channels + num_layers * growth_rate``."""

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers <= 0:
            raise ValueError(f"DenseBlock needs at least one layer, got {num_layers=}")
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv to ``out_channels`` (the compression), then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = conv1x1(in_channels, out_channels)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


#: Alias with the name used by torchvision and the original lab code.
_DenseLayer = DenseLayer
#: Alias with the name used by torchvision and the original lab code.
_Transition = Transition
