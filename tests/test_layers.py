"""Building blocks: channel arithmetic, shapes and the composability example."""

from __future__ import annotations

import doctest

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cifarzoo import layers
from cifarzoo.layers import (
    BasicBlock,
    Bottleneck,
    DenseBlock,
    DenseLayer,
    SEBlock,
    Transition,
    _DenseLayer,
    _Transition,
    conv1x1,
    conv3x3,
)

channels = st.integers(1, 48)


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(layers, raise_on_error=False, verbose=False)
    assert result.attempted >= 3
    assert result.failed == 0


def test_aliases() -> None:
    assert _DenseLayer is DenseLayer
    assert _Transition is Transition


@settings(max_examples=20, deadline=None)
@given(cin=channels, cout=channels, stride=st.sampled_from([1, 2]), size=st.sampled_from([4, 7, 8]))
def test_convs(cin: int, cout: int, stride: int, size: int) -> None:
    x = torch.randn(1, cin, size, size)
    c3, c1 = conv3x3(cin, cout, stride), conv1x1(cin, cout, stride)
    assert c3.bias is None and c1.bias is None
    expected = (1, cout, (size - 1) // stride + 1, (size - 1) // stride + 1)
    assert c3(x).shape == expected
    assert c1(x).shape == expected


@settings(max_examples=25, deadline=None)
@given(
    block=st.sampled_from([BasicBlock, Bottleneck]),
    cin=channels,
    width=st.integers(1, 16),
    stride=st.sampled_from([1, 2]),
    se=st.booleans(),
)
def test_residual_blocks(
    block: type[BasicBlock | Bottleneck], cin: int, width: int, stride: int, se: bool
) -> None:
    module = block(cin, width, stride, attn_layer=SEBlock if se else None)
    out = module(torch.randn(2, cin, 8, 8))
    assert out.shape == (2, width * block.expansion, 8 // stride, 8 // stride)
    assert (out >= 0).all()  # ends with ReLU
    needs_projection = stride != 1 or cin != width * block.expansion
    assert (module.downsample is not None) == needs_projection
    assert (module.se is not None) == se


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_block_without_residual_has_no_shortcut(block: type[BasicBlock | Bottleneck]) -> None:
    plain = block(8, 16, stride=2, residual=False)
    assert plain.downsample is None and not plain.residual
    assert plain(torch.randn(2, 8, 8, 8)).shape == (2, 16 * block.expansion, 4, 4)
    with pytest.raises(ValueError, match="no shortcut"):
        block(8, 8, downsample=nn.Identity(), residual=False)


def test_block_without_projection_adds_identity() -> None:
    block = BasicBlock(8, 8).eval()
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.rand(1, 8, 4, 4)  # non-negative, so ReLU(x) == x
    torch.testing.assert_close(block(x), x)


@settings(max_examples=20, deadline=None)
@given(c=st.integers(1, 64), reduction=st.sampled_from([1, 4, 16]))
def test_se_block(c: int, reduction: int) -> None:
    se = SEBlock(c, reduction)
    assert se.fc1.out_channels == max(1, c // reduction)
    x = torch.randn(3, c, 5, 5)
    gate = se.gate(x)
    assert gate.shape == (3, c, 1, 1)
    assert ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(se(x), x * gate)


@settings(max_examples=20, deadline=None)
@given(
    num_layers=st.integers(1, 4),
    cin=channels,
    growth=st.integers(1, 12),
    bn_size=st.integers(1, 4),
)
def test_dense_block_channel_arithmetic(
    num_layers: int, cin: int, growth: int, bn_size: int
) -> None:
    block = DenseBlock(num_layers, cin, growth, bn_size)
    assert block.out_channels == cin + num_layers * growth
    x = torch.randn(2, cin, 6, 6)
    out = block(x)
    assert out.shape == (2, block.out_channels, 6, 6)
    torch.testing.assert_close(out[:, :cin], x)  # dense connectivity keeps the input
    assert [n for n, _ in block.named_children()] == [
        f"denselayer{i + 1}" for i in range(num_layers)
    ]


def test_dense_layer_structure() -> None:
    layer = DenseLayer(24, 12, bn_size=4, drop_rate=0.2)
    assert layer.conv1.out_channels == 48 and layer.conv2.out_channels == 12
    assert layer(torch.randn(1, 24, 8, 8)).shape == (1, 36, 8, 8)
    with pytest.raises(ValueError, match="drop_rate"):
        DenseLayer(4, 4, drop_rate=1.5)


@settings(max_examples=15, deadline=None)
@given(cin=channels, cout=channels, size=st.sampled_from([4, 8, 16]))
def test_transition(cin: int, cout: int, size: int) -> None:
    out = Transition(cin, cout)(torch.randn(1, cin, size, size))
    assert out.shape == (1, cout, size // 2, size // 2)
    assert [n for n, _ in Transition(cin, cout).named_children()] == [
        "norm",
        "relu",
        "conv",
        "pool",
    ]


def test_bad_block_arguments() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        DenseBlock(0, 8, 4)
    with pytest.raises(ValueError, match="positive channels"):
        SEBlock(0)
