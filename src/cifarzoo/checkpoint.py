"""Atomic file writing, training checkpoints and safetensors weights with sha256 sidecars."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

__all__ = [
    "CHECKPOINT_NAME",
    "ChecksumError",
    "atomic_write",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "save_json",
    "save_weights",
    "sha256_file",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "cifarzoo.checkpoint/1"


class ChecksumError(ValueError):
    """A weights file does not match its ``.sha256`` sidecar."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file in the same folder, fsync, then ``os.replace`` it onto ``path``.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Atomically write ``obj`` as indented JSON (NaN/inf are written as null)."""
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"
    with atomic_write(path, "w") as f:
        f.write(text)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically ``torch.save`` a training state (adds a format tag)."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: torch.device | str | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only`` unpickling)."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a cifarzoo training checkpoint")
    return state


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(
    state_dict: dict[str, Tensor],
    path: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
) -> str:
    """Atomically write ``state_dict`` as safetensors plus ``PATH.sha256``; returns the digest.

    The sidecar uses the ``sha256sum`` format (``<hex>  <name>``), so ``sha256sum -c`` works.
    """
    from safetensors.torch import save

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    data = save(tensors, metadata=metadata)
    with atomic_write(path) as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    with atomic_write(path.with_name(path.name + ".sha256"), "w") as f:
        f.write(f"{digest}  {path.name}\n")
    return digest


def load_weights(
    path: str | os.PathLike[str], *, verify: bool = True, device: torch.device | str = "cpu"
) -> dict[str, Tensor]:
    """Read a safetensors (or ``torch.save``d state dict) file, checking ``PATH.sha256`` if present.

    Raises:
        ChecksumError: the sidecar exists and its digest differs from the file's.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if verify and sidecar.is_file():
        expected = sidecar.read_text().split()[0].lower() if sidecar.read_text().strip() else ""
        actual = sha256_file(path)
        if expected != actual:
            raise ChecksumError(
                f"{path}: sha256 {actual} does not match {sidecar.name} ({expected or 'empty'}); "
                "the file is corrupt or was changed after it was written"
            )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(device))
    obj = torch.load(path, map_location=device, weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a training checkpoint
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return obj
