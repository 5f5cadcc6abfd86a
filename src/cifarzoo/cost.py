"""What a model costs: parameters and multiply-accumulates (the one MAC counter of cifarzoo)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass of ``input_size`` (batch included), in eval mode.

    Measured with :class:`torch.utils.flop_counter.FlopCounterMode` (which counts convolutions and
    matrix products) as FLOPs / 2. Works on a ``meta``-device model, so even big networks are
    counted without memory or compute.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(*input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
