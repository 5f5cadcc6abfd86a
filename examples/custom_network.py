"""Compose a network from cifarzoo's building blocks, count its cost and train it briefly.

python examples/custom_network.py
"""

from __future__ import annotations

import torch
from _common import FAST, get_data
from torch import nn

from cifarzoo.compare import count_macs, count_params
from cifarzoo.instrument import SEGateRecorder
from cifarzoo.layers import BasicBlock, DenseBlock, SEBlock, Transition, conv3x3
from cifarzoo.training import Recipe, RunOptions, fit


def build() -> nn.Module:
    """A hybrid: an SE-ResNet stage, a downsampling residual block, a dense block."""
    return nn.Sequential(
        conv3x3(3, 32),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        BasicBlock(32, 32, attn_layer=SEBlock),  # SE-ResNet block
        BasicBlock(32, 64, stride=2),  # 16x16, 1x1 shortcut created
        DenseBlock(num_layers=4, in_channels=64, growth_rate=16),  # 64 + 4 * 16 = 128 channels
        Transition(128, 64),  # 8x8, 64 channels
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def main() -> None:
    net = build()
    print(f"{count_params(net):,} parameters, {count_macs(net) / 1e6:.1f} M MACs per image")
    data = get_data(train_images=5_000)
    history = fit(
        net,
        data,
        Recipe(epochs=1, batch_size=64, ema_decay=0.0),
        RunOptions(quiet=FAST, device="cpu" if FAST else None),
    )
    print(f"after 1 epoch: {history.eval_split} accuracy {100 * (history.eval_acc[-1] or 0):.2f}%")
    net.eval()
    with SEGateRecorder(net) as gates, torch.no_grad():
        net(torch.randn(16, 3, 32, 32, device=next(net.parameters()).device))
    for stage, values in gates.by_stage().items():
        print(f"SE block {stage!r}: mean gate {values.mean():.3f}")


if __name__ == "__main__":
    main()
