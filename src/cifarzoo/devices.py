"""Where models run and in what precision: the device choice and the bf16 autocast rule, which
training, evaluation and the command line all follow."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["autocast", "earlier_auto_amp", "fast_bf16", "resolve_amp", "resolve_device"]


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``cuda`` when available, else ``cpu``.

    Raises:
        ValueError: a device that is no ``cpu``, ``cuda[:N]`` or ``mps``, or one this machine
            does not have (the message names ``cpu``).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:  # torch's message lists its twenty device types
        raise ValueError(_device_choices(device)) from None
    if dev.type == "cuda":
        _check_cuda(dev)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {str(device)!r}: this machine has no Apple GPU (mps); use the CPU with "
            "device='cpu' (CLI: --device cpu)"
        )
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(_device_choices(device))
    return dev


def _device_choices(device: torch.device | str) -> str:
    return (
        f"device {str(device)!r}: cifarzoo runs models on 'cpu', 'cuda' or 'cuda:N' (and 'mps' "
        "on Apple machines); pick one of them, e.g. device='cpu' (CLI: --device cpu)"
    )


def _check_cuda(dev: torch.device) -> None:
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ValueError(
            f"device {str(dev)!r}: no CUDA GPU is available on this machine; use the CPU with "
            "device='cpu' (CLI: --device cpu), or leave the device unset to use a GPU only "
            "when there is one"
        )
    if dev.index is not None and dev.index >= available:
        raise ValueError(
            f"device {str(dev)!r}: this machine has {available} CUDA GPU(s), cuda:0 to "
            f"cuda:{available - 1}; pick one of them or use device='cpu' (CLI: --device cpu)"
        )


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is faster than fp32 on ``device``: on CUDA, and on CPUs with bf16
    matrix instructions (Intel AMX, or AVX512-BF16 as on AMD Zen 4 and later), which oneDNN's
    convolutions use. Without them a CPU emulates bf16 and is slower in it than in fp32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    cpu: Any = torch.cpu  # the capability probes are not in torch's type stubs
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def earlier_auto_amp(device_type: str) -> bool:
    """What ``amp=None`` ("auto") meant before :func:`fast_bf16`, for checkpoints and run folders
    that recorded it unresolved: bf16 on CUDA only."""
    return device_type == "cuda"


def resolve_amp(amp: bool | None, device: torch.device) -> bool:
    """``amp`` when given, else bf16 autocast exactly where it is fast (:func:`fast_bf16`)."""
    return amp if amp is not None else fast_bf16(device)


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when ``amp``, else nothing."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
