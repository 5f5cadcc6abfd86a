"""Processes under ``torchrun``: the rank layout, the device of each, the process group."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..devices import resolve_device

__all__ = ["DistEnv", "process_group", "training_device"]


@dataclass(frozen=True)
class DistEnv:
    """Rank layout read from the ``torchrun`` environment variables.

    Only torchrun's: timm's ``world_info_from_env`` also reads SLURM's and MPI's, so one
    process started in a SLURM allocation of several tasks would wait for ranks that never
    start."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        return cls(
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def training_device(device: torch.device | str | None, env: DistEnv) -> torch.device:
    """The device this process trains on: ``device``, else CUDA if available
    (``cuda:LOCAL_RANK`` under torchrun); a CUDA device gets an index and becomes current."""
    if device is None and env.distributed and torch.cuda.is_available():
        dev = torch.device("cuda", env.local_rank)
    else:
        dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        index = env.local_rank if env.distributed else torch.cuda.current_device()
        dev = torch.device("cuda", index)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


@contextlib.contextmanager
def process_group(env: DistEnv, device: torch.device) -> Iterator[None]:
    """The default process group, created (and destroyed after) when ``env`` is distributed
    and none exists yet."""
    import torch.distributed as dist

    created = env.distributed and not dist.is_initialized()
    if created:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()
