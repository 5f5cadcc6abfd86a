"""What a model costs: parameters, multiply-accumulates (the one MAC counter of cifarzoo) and
the activations a training step keeps for its backward pass."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .constants import IMAGE_SIZE

__all__ = ["count_activation_bytes", "count_macs", "count_params"]

#: One CIFAR-10 image, batch included: what the counts are per image of.
_ONE_IMAGE = (1, 3, IMAGE_SIZE, IMAGE_SIZE)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = _ONE_IMAGE) -> int:
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


def count_activation_bytes(model: nn.Module, input_size: Sequence[int] = _ONE_IMAGE) -> int:
    """Bytes of the tensors that autograd keeps for the backward pass of one training-mode
    forward pass of ``input_size`` (batch included) in float32: the part of a training step's
    memory that grows with the batch (the weights, their gradients, the optimizer state and the
    backward pass's own temporaries come on top), plus BatchNorm's few per-channel statistics.

    Each stored tensor's storage is counted once (views and tensors saved by several operations
    share one), the model's own parameters and buffers not at all. Measured on a ``meta``-device
    copy, so it needs no memory or compute and leaves ``model`` as it was (BatchNorm statistics
    included). Mixed precision changes the figure both ways (bf16 activations, but also bf16
    copies of the weights that autocast keeps), so it is given for float32 only.
    """
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_id(tensor)
        if key not in weights:
            saved[key] = tensor.untyped_storage().nbytes()
        return tensor

    # counted as in training, also when called under no_grad or inference_mode
    with torch.inference_mode(False), torch.enable_grad():
        probe = _meta_copy(model).train()
        weights = {_storage_id(t) for t in itertools.chain(probe.parameters(), probe.buffers())}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            probe(torch.zeros(*input_size, device="meta"))
    return sum(saved.values())


def _storage_id(tensor: torch.Tensor) -> int:
    # meta tensors have no data pointer; the storage object itself tells storages apart
    return int(tensor.untyped_storage()._cdata)


def _meta_copy(model: nn.Module) -> nn.Module:
    """``model`` with every parameter and buffer replaced by a float32 ``meta`` tensor of its
    shape (no data copied) and without its hooks (a recorder hooked into ``model`` must not see
    the copy's forward pass)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        meta = torch.empty_like(p, device="meta", dtype=_float32(p))
        memo[id(p)] = nn.Parameter(meta, requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta", dtype=_float32(b))
    probe = copy.deepcopy(model, memo)
    for module in probe.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    return probe


def _float32(tensor: torch.Tensor) -> torch.dtype:
    return torch.float32 if tensor.is_floating_point() else tensor.dtype
