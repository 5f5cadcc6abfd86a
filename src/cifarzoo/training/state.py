"""The training checkpoint: :class:`TrainState`, how it is read, and the checks before a resume.

On disk a checkpoint is the dict that :func:`~cifarzoo.checkpoint.save_checkpoint` writes, with
the keys ``model``, ``optimizer``, ``scheduler``, ``ema``, ``epoch``, ``step``, ``partial``,
``rng``, ``loader``, ``history``, ``config`` (the recipe), ``options``, ``model_name``,
``model_args`` (the model's constructor arguments, ``None`` when not given), ``world_size``,
``data`` and ``threads`` (torch's CPU threads). Checkpoints written before the
recipe and the run options were separated store ``tta_flip``, ``amp``, ``channels_last`` and
``compile`` in ``config`` and have no ``options``; they are read the same way.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import load_checkpoint
from ..devices import earlier_auto_amp
from .history import History
from .inputs import DataMismatchError, data_differences
from .options import RECORDED_OPTIONS, RunOptions, amp_name
from .recipe import Recipe, RecipeMismatchError, recipe_differences

__all__ = [
    "EpochProgress",
    "ModelArgsMismatchError",
    "TrainState",
    "model_name",
    "read_checkpoint",
    "rng_state",
    "set_rng_state",
]

_REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "step", "config", "history")
#: How torch.load words a damaged archive (its zip reader; with mmap, a file that is no zip
#: archive); any other RuntimeError (out of memory on the map_location device, say) is not the
#: file's fault.
_ZIP_READER_ERRORS = ("PytorchStreamReader", "inline_container", "mmap can only be used with")


class ModelArgsMismatchError(ValueError):
    """``resume=True`` with a model built with other constructor arguments than the
    checkpoint's (``recorded``; ``given`` are the ones passed now)."""

    def __init__(self, path: Path, recorded: dict[str, Any], given: dict[str, Any]) -> None:
        self.path, self.recorded, self.given = path, recorded, given
        super().__init__(
            f"cannot resume {path}: its model was built with {recorded or 'no arguments'}, this "
            f"one with {given or 'none'}. Build the model with the checkpoint's arguments and "
            "pass them as model_args, or start a new run in another checkpoint_dir (CLI: --out)"
        )


@dataclass
class EpochProgress:
    """How far an interrupted epoch got: its per-step losses so far, the correct predictions
    and images seen, and the seconds it trained (a checkpoint written on Ctrl-C or SIGTERM)."""

    losses: Tensor
    correct: int
    seen: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "correct": self.correct,
            "seen": self.seen,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochProgress:
        return cls(d["losses"], int(d["correct"]), int(d["seen"]), float(d["seconds"]))


@dataclass
class TrainState:
    """Everything a resume restores, typed; ``epoch``/``step`` is where training continues
    (``progress`` holds the epoch's figures so far when ``step > 0``)."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    ema: dict[str, Any] | None
    epoch: int
    step: int
    progress: EpochProgress | None
    rng: dict[str, Any]
    loader: dict[str, Any]
    history: History
    recipe: Recipe
    options: dict[str, Any]
    model_name: str | None
    world_size: int
    data: dict[str, Any] | None
    #: torch's CPU threads (``torch.get_num_threads()``); ``None`` in older checkpoints.
    threads: int | None = None
    #: The model's constructor arguments; ``None`` when not given (and in older checkpoints).
    model_args: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The dict written to disk (see the module's description)."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "ema": self.ema,
            "epoch": self.epoch,
            "step": self.step,
            "partial": None if self.progress is None else self.progress.to_dict(),
            "rng": self.rng,
            "loader": self.loader,
            "history": self.history.to_dict(),
            "config": self.recipe.to_dict(),
            "options": dict(self.options),
            "model_name": self.model_name,
            "model_args": self.model_args,
            "world_size": self.world_size,
            "data": self.data,
            "threads": self.threads,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """A state from a checkpoint dict, also one in the format before ``options``."""
        config = d["config"]
        options = d.get("options")
        if options is None:  # the older format: the run options were part of "config"
            options = {k: config[k] for k in RECORDED_OPTIONS if k in config}
        partial = d.get("partial")
        return cls(
            model=d["model"],
            optimizer=d["optimizer"],
            scheduler=d["scheduler"],
            ema=d.get("ema"),
            epoch=int(d["epoch"]),
            step=int(d["step"]),
            progress=None if partial is None else EpochProgress.from_dict(partial),
            rng=d.get("rng", {}),
            loader=d.get("loader", {}),
            history=History.from_dict(d["history"]),
            recipe=Recipe.from_dict(config),
            options=dict(options),
            model_name=d.get("model_name"),
            world_size=int(d.get("world_size", 1)),
            data=d.get("data"),
            threads=d.get("threads"),
            model_args=d.get("model_args"),
        )

    @classmethod
    def read(
        cls,
        path: str | os.PathLike[str],
        map_location: torch.device | str | None = "cpu",
        *,
        mmap: bool = False,
    ) -> TrainState:
        """:func:`read_checkpoint`, typed."""
        return cls.from_dict(read_checkpoint(path, map_location, mmap=mmap))

    def check_resumable(
        self,
        path: Path,
        recipe: Recipe,
        options: RunOptions,
        *,
        data: dict[str, Any] | None,
        world_size: int,
        device_type: str,
        threads: int | None = None,
        model_args: dict[str, Any] | None = None,
        log: Any = print,
    ) -> None:
        """Refuse another recipe (:class:`RecipeMismatchError`), a model built with other
        arguments (:class:`ModelArgsMismatchError`, when both the checkpoint and ``model_args``
        name them) or other data (:class:`DataMismatchError`, when both the checkpoint and
        ``data`` have a fingerprint); warn when the result will not be bit-identical (other
        process count, bf16 setting or, on the CPU, number of ``threads``)."""
        differences = recipe_differences(self.recipe, recipe)
        if differences:
            raise RecipeMismatchError(path, differences)
        if None not in (self.model_args, model_args) and self.model_args != model_args:
            raise ModelArgsMismatchError(path, dict(self.model_args or {}), dict(model_args or {}))
        if self.data is None:  # written before cifarzoo recorded it: nothing to compare
            log(
                f"note: {path} does not record its data (an older checkpoint); make sure this "
                "run uses the same data and split"
            )
        elif data is not None:
            found = data_differences(self.data, data)
            if found:
                raise DataMismatchError(path, found)
        if self.world_size != world_size:
            warnings.warn(
                f"resuming a {self.world_size}-process run with {world_size} processes; "
                "results will not be bit-identical",
                stacklevel=4,
            )
        if "amp" in self.options:
            saved_amp = self.options["amp"]
            ran_bf16 = earlier_auto_amp(device_type) if saved_amp is None else bool(saved_amp)
            if ran_bf16 != options.resolved_amp(device_type):
                warnings.warn(
                    f"resuming a run trained with amp={amp_name(ran_bf16)} with "
                    f"amp={amp_name(options.amp)}; results will not be bit-identical",
                    stacklevel=4,
                )
        if device_type == "cpu" and None not in (self.threads, threads) and self.threads != threads:
            warnings.warn(
                f"resuming a run trained with {self.threads} CPU threads with {threads}; results "
                f"will not be bit-identical (torch.set_num_threads({self.threads}), CLI: "
                f"--threads {self.threads}, keeps them so)",
                stacklevel=4,
            )


def _first_line(e: BaseException) -> str:
    """The informative line of an exception's message: torch.load's run to many lines and
    suggest ``weights_only=False``, which is not the fix for a damaged file."""
    text = str(e)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _is_format_error(e: Exception) -> bool:
    if isinstance(e, pickle.UnpicklingError | EOFError | ValueError | KeyError):
        return True
    return isinstance(e, RuntimeError) and any(m in str(e) for m in _ZIP_READER_ERRORS)


def read_checkpoint(
    path: str | os.PathLike[str],
    map_location: torch.device | str | None = "cpu",
    *,
    mmap: bool = False,
) -> dict[str, Any]:
    """Load a training checkpoint to resume from, as the dict on disk. A file that is not one
    (truncated, corrupt, another format, keys missing) is a ``ValueError`` that names the file
    and what to do; other errors (``OSError`` such as a missing permission, out of memory) pass
    through unchanged. ``mmap=True`` maps the tensors instead of reading them (for a look at
    the recipe)."""
    path = Path(path)
    try:
        state = load_checkpoint(path, map_location=map_location, mmap=mmap)
        missing = [k for k in _REQUIRED_KEYS if k not in state]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
    except Exception as e:
        if not _is_format_error(e):
            raise
        raise ValueError(
            f"cannot resume from {path}: it is not a readable cifarzoo training checkpoint "
            f"({type(e).__name__}: {_first_line(e)}). To start over in place, train with "
            "overwrite=True (CLI: --overwrite) instead of resume=True (--resume); or start a new "
            "run in another checkpoint_dir (CLI: --out)"
        ) from e
    return state


def model_name(model: nn.Module) -> str:
    """How a checkpoint names its model: the timm architecture (``cifar_lenet``), else the
    class name."""
    cfg = getattr(model, "pretrained_cfg", None)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    return str(arch or type(model).__name__)


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
