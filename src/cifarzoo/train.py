"""Training: :func:`fit`, its :class:`TrainConfig` recipe and the :class:`History` it returns.

One process, or several under ``torchrun`` (DistributedDataParallel, detected from the
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` environment variables). Checkpoints are written atomically
every epoch and on Ctrl-C; ``resume=True`` continues bit-identically on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import pickle
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, NoReturn

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, save_json
from .data import CIFAR10Data, DeviceLoader, PadMode, Split, check_labels
from .metrics import EvalResult, _autocast, evaluate, model_mean_std, predict_logits, resolve_device
from .optim import MuonSGD, muon_param_groups, param_groups

__all__ = [
    "AMP_MODES",
    "DataMismatchError",
    "History",
    "LRSchedule",
    "ModelEma",
    "NonFiniteLossError",
    "RecipeMismatchError",
    "Teacher",
    "TrainConfig",
    "data_fingerprint",
    "fit",
    "frozen_norm_statistics",
    "param_groups",
    "read_checkpoint",
    "recipe_of",
    "sam_ascent",
]

ScheduleKind = Literal["onecycle", "cosine", "constant"]

#: Command-line spellings of ``fit(amp=...)``: ``auto`` is bf16 autocast on CUDA only.
AMP_MODES: dict[str, bool | None] = {"auto": None, "bf16": True, "off": False}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; training stopped, the checkpoint is kept."""


class RecipeMismatchError(ValueError):
    """``resume=True`` with a recipe other than the checkpoint's.

    ``differences`` maps each differing :class:`TrainConfig` field to
    ``(checkpoint value, requested value)``.
    """

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]) -> None:
        self.path = path
        self.differences = differences
        details = ", ".join(
            f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in differences.items()
        )
        wanted = ", ".join(f"{k}={a!r}" for k, (a, _) in differences.items())
        super().__init__(
            f"cannot resume {path}: the recipe differs ({details}). Resume with the checkpoint's "
            f"values ({wanted}), or start a new run in another checkpoint_dir (CLI: --out)"
        )


class DataMismatchError(ValueError):
    """``resume=True`` with other training or evaluation data than the checkpoint was trained on.

    ``differences`` lists what differs, in words.
    """

    def __init__(self, path: Path, differences: list[str]) -> None:
        self.path = path
        self.differences = differences
        super().__init__(
            f"cannot resume {path}: the data differs from the checkpoint's "
            f"({'; '.join(differences)}). Resume with the same data (CLI: the same --data, "
            "--val-size and --train-subset; --seed also picks the split), or start a new run in "
            "another checkpoint_dir (CLI: --out)"
        )


# --------------------------------------------------------------------------------------------
# Recipe
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run (everything that changes the result; stored in checkpoints).

    The defaults are the ResNet-20 recipe for 30 CPU epochs (see the README): SGD with Nesterov
    momentum, batch 128, peak lr 0.1 reached after a 2-epoch linear warm-up then linear decay to
    0 (``onecycle``), weight decay 5e-4 on conv/linear weights only, label smoothing 0.1, random
    crops (reflect padding 4) and flips, EMA of the weights (0.999), flip TTA at evaluation.
    ``alternate_flip`` mirrors each image in every other epoch instead of at random (airbench).
    With a teacher (``fit(teacher=...)``), the training targets become
    ``(1 - distill_weight) * one_hot(label) + distill_weight * softmax(teacher_logits / T)``
    with ``T = distill_temperature`` (knowledge distillation with soft targets).
    ``sam_rho > 0`` turns on sharpness-aware minimization (SAM, Foret et al. 2021): each step
    takes its gradient at the weights moved ``sam_rho`` along the normalized gradient, which
    costs a second forward and backward pass per step. ``muon_lr > 0`` trains the convolution
    filters with Muon (:class:`~cifarzoo.optim.MuonSGD`) at that peak learning rate, following the
    same schedule; the other parameters keep SGD with ``lr``.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: ScheduleKind = "onecycle"
    warmup_epochs: float = 2.0
    ema_decay: float = 0.999
    crop_padding: int = 4
    pad_mode: PadMode = "reflect"
    flip: bool = True
    alternate_flip: bool = False
    cutout: int = 0
    tta_flip: bool = True
    tta_translate: bool = False
    amp: bool | None = None
    channels_last: bool = True
    compile: bool = False
    grad_clip: float | None = None
    sam_rho: float = 0.0
    muon_lr: float = 0.0
    sync_bn: bool = False
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1", self.epochs),
            (self.batch_size >= 1, "batch_size must be >= 1", self.batch_size),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be > 0", self.lr),
            (self.momentum >= 0, "momentum must be >= 0", self.momentum),
            (self.weight_decay >= 0, "weight_decay must be >= 0", self.weight_decay),
            (
                0 <= self.label_smoothing <= 1,
                "label_smoothing must be in [0, 1]",
                self.label_smoothing,
            ),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0", self.warmup_epochs),
            (
                0 <= self.ema_decay < 1,
                "ema_decay must be in [0, 1) (0 turns EMA off)",
                self.ema_decay,
            ),
            (self.crop_padding >= 0, "crop_padding must be >= 0 (0 = no crops)", self.crop_padding),
            (self.cutout >= 0, "cutout must be >= 0 (0 = off)", self.cutout),
            (
                self.grad_clip is None or self.grad_clip > 0,
                "grad_clip must be > 0 (or None for no clipping)",
                self.grad_clip,
            ),
            (self.sam_rho >= 0, "sam_rho must be >= 0 (0 turns SAM off)", self.sam_rho),
            (
                self.muon_lr >= 0 and math.isfinite(self.muon_lr),
                "muon_lr must be >= 0 (0 turns Muon off)",
                self.muon_lr,
            ),
            (
                0 <= self.distill_weight <= 1,
                "distill_weight must be in [0, 1]",
                self.distill_weight,
            ),
            (
                self.distill_temperature > 0,
                "distill_temperature must be > 0",
                self.distill_temperature,
            ),
        ]
        for ok, rule, value in checks:
            if not ok:
                raise ValueError(f"{rule}, got {value!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(
                f"schedule must be 'onecycle', 'cosine' or 'constant', got {self.schedule!r}"
            )
        if self.pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"pad_mode must be 'reflect' or 'zeros', got {self.pad_mode!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_D = TrainConfig()


@dataclass
class LRSchedule:
    """Per-step multiplier of the peak learning rate: linear warm-up, then ``kind`` down to 0.

    ``onecycle``: linear decay (a triangle); ``cosine``: half cosine; ``constant``: flat.
    """

    kind: ScheduleKind
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:  # the first step already has a positive rate
            return (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "onecycle":
            return 1.0 - t
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0


@torch.no_grad()
def sam_ascent(model: nn.Module, rho: float) -> list[tuple[Tensor, Tensor]]:
    """Move every parameter that has a gradient by ``rho * grad / ||grad||`` (the global norm
    over all of them): SAM's step to the worst nearby weights. Returns ``(param, move)`` pairs so
    that the caller can step back."""
    params: list[Tensor] = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return []
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = rho / (norm + 1e-12)
    moves = [g * scale for g in grads]
    torch._foreach_add_(params, moves)
    return list(zip(params, moves, strict=True))


@contextlib.contextmanager
def frozen_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norms keep their running statistics during a forward pass in training mode (SAM's
    second pass must not count the batch twice); they still normalize with the batch's own."""
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    saved = [
        (m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
        for m in norms
    ]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class ModelEma:
    """Exponential moving average of a model's parameters and float buffers.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early
    averages are not dominated by the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_f, new_f = [], []
        for e, m in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if e.dtype.is_floating_point:
                ema_f.append(e)
                new_f.append(m.detach())
            else:
                e.copy_(m)
        if ema_f:
            torch._foreach_lerp_(ema_f, new_f, 1.0 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch curves of a run (plus the per-step training loss), saved as JSON.

    ``eval_*`` are measured on ``eval_split`` (``"val"`` when the data has one, else ``"test"``),
    with the EMA weights when EMA is on; ``None`` when there was nothing to evaluate.
    ``lr`` is the learning rate of each epoch's first step. ``train_loss`` includes label smoothing
    (and is measured against the soft targets when distilling); ``train_acc`` counts the
    predictions that match the label, or the soft target's most likely class.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    eval_loss: list[float | None] = field(default_factory=list)
    eval_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    eval_split: str = "val"

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})

    def save(self, path: str | os.PathLike[str]) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    """Rank layout read from the ``torchrun`` environment variables."""

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


def _init_distributed(env: DistEnv, device: torch.device) -> bool:
    """Initialize the default process group if needed; returns whether this call created it."""
    import torch.distributed as dist

    if not env.distributed or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return True


#: Training steps between loss checks: each check waits for the device, which costs nothing on
#: the CPU but stalls a GPU's queue.
_SYNC_EVERY_CPU = 1
_SYNC_EVERY_ACCELERATOR = 25


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------


class _StopRequest:
    """SIGINT sets a flag checked between steps (a second Ctrl-C interrupts immediately)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopRequest:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------

#: Images and labels: tensors, or numpy arrays (taken without a copy).
ImagesLabels = tuple[Tensor | npt.NDArray[Any], Tensor | npt.NDArray[Any]]
TrainData = CIFAR10Data | Split | ImagesLabels
#: A teacher for distillation: a model, an ensemble of models, or logits for the training images.
Teacher = nn.Module | Sequence[nn.Module] | Tensor
EvalData = Split | ImagesLabels


def _split_data(
    data: TrainData, eval_data: EvalData | None
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None, str]:
    if isinstance(data, CIFAR10Data):
        train: tuple[Tensor, Tensor] = (data.train.images, data.train.labels)
        if eval_data is None:
            ev = data.eval_split
            return train, (ev.images, ev.labels), data.eval_split_name
    elif isinstance(data, Split):
        train = (data.images, data.labels)
    else:
        train = _as_tensors(data, "data")
    if eval_data is None:
        return train, None, "none"
    if isinstance(eval_data, Split):
        return train, (eval_data.images, eval_data.labels), "eval"
    return train, _as_tensors(eval_data, "eval_data"), "eval"


def _as_tensors(pair: Any, what: str) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` as tensors; numpy arrays (what ``pickle``/``np.load`` give) are
    taken as they are, without a copy."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(
            f"{what} must be a CIFAR10Data, a Split or a pair (images, labels), got "
            f"{type(pair).__name__}"
        )
    tensors = []
    for value, name in zip(pair, ("images", "labels"), strict=True):
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{what}: {name} must be a torch.Tensor or numpy array (uint8 images "
                f"[N, 3, 32, 32] or NHWC, int64 labels [N]), got {type(value).__name__}"
            )
        tensors.append(value)
    return tensors[0], tensors[1]


def _digest(images: Tensor, labels: Tensor) -> str:
    # Per-image pixel sums (exact, whatever the layout) and the labels: any other split, subset
    # or copy changes them. numpy sums uint8 in buffered chunks: ~0.1 s and no int64 copy of
    # the images (torch's sum(dtype=int64) would make one, over 1 GB for 50,000 images).
    pixels = images.detach().cpu().numpy()
    sums = pixels.sum(axis=tuple(range(1, pixels.ndim)), dtype=np.int64)
    canonical = labels.detach().float() if labels.dtype.is_floating_point else labels.long()
    h = hashlib.sha256(canonical.cpu().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(sums).tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(
    train: tuple[Tensor, Tensor], evaluation: tuple[Tensor, Tensor] | None, eval_split: str
) -> dict[str, Any]:
    """What identifies the data of a run (stored in checkpoints, checked on resume): the number
    of training and evaluation images, the evaluation split's name, and a short hash of each
    split's labels and per-image pixel sums."""
    return {
        "train_images": len(train[1]),
        "train_digest": _digest(*train),
        "eval_split": eval_split,
        "eval_images": None if evaluation is None else len(evaluation[1]),
        "eval_digest": None if evaluation is None else _digest(*evaluation),
    }


def _data_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    diffs = []
    if saved.get("train_images") != now["train_images"]:
        diffs.append(
            f"training images: checkpoint {saved.get('train_images')!r} vs now "
            f"{now['train_images']:,}"
        )
    elif saved.get("train_digest") != now["train_digest"]:
        diffs.append(
            "the training images or labels differ (the same number: another data folder, "
            "split seed or subset)"
        )

    def split(fp: dict[str, Any]) -> str:
        n = fp.get("eval_images")
        return f"{fp.get('eval_split')} ({'no' if n is None else f'{n:,}'} images)"

    if (saved.get("eval_split"), saved.get("eval_images")) != (
        now["eval_split"],
        now["eval_images"],
    ):
        diffs.append(f"evaluation split: checkpoint {split(saved)} vs now {split(now)}")
    elif saved.get("eval_digest") != now["eval_digest"]:
        diffs.append("the evaluation images or labels differ (the same number)")
    return diffs


def _first_line(e: BaseException) -> str:
    """The informative line of an exception's message: torch.load's run to many lines and
    suggest ``weights_only=False``, which is not the fix for a damaged file."""
    text = str(e)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


_CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "step", "config", "history")
#: How torch.load words a damaged archive (its zip reader; with mmap, a file that is no zip
#: archive); any other RuntimeError (out of memory on the map_location device, say) is not the
#: file's fault.
_ZIP_READER_ERRORS = ("PytorchStreamReader", "inline_container", "mmap can only be used with")


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
    """Load a training checkpoint to resume from. A file that is not one (truncated, corrupt,
    another format, keys missing) is a ``ValueError`` that names the file and what to do; other
    errors (``OSError`` such as a missing permission, out of memory) pass through unchanged.
    ``mmap=True`` maps the tensors instead of reading them (for a look at the recipe)."""
    path = Path(path)
    try:
        state = load_checkpoint(path, map_location=map_location, mmap=mmap)
        missing = [k for k in _CHECKPOINT_KEYS if k not in state]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
    except Exception as e:
        if not _is_format_error(e):
            raise
        raise ValueError(
            f"cannot resume from {path}: it is not a readable cifarzoo training checkpoint "
            f"({type(e).__name__}: {_first_line(e)}). Delete it (or use another checkpoint_dir "
            "/ --out) to start a new run, or train without resume=True / --resume to start over "
            "in place (the new run overwrites it after its first epoch)"
        ) from e
    return state


def recipe_of(state: dict[str, Any]) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a checkpoint, a field newer than the checkpoint
    counting as its default value."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in state["config"].items() if k in names}
    return {**_D.to_dict(), **saved}


def _model_name(model: nn.Module) -> str:
    """How a checkpoint names its model: the timm architecture (``cifar_lenet``), else the
    class name."""
    cfg = getattr(model, "pretrained_cfg", None)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    return str(arch or type(model).__name__)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class _Progress:
    """A tqdm bar per epoch (or nothing when quiet)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, leave=True, dynamic_ncols=True, unit="step"
            )

    def update(self, n: int, **postfix: str) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self, **postfix: str) -> None:
        """Close the bar (later calls do nothing)."""
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix)
            self.bar.close()
            self.bar = None


def fit(
    model: nn.Module,
    data: TrainData,
    *,
    epochs: int = _D.epochs,
    batch_size: int = _D.batch_size,
    lr: float = _D.lr,
    momentum: float = _D.momentum,
    nesterov: bool = _D.nesterov,
    weight_decay: float = _D.weight_decay,
    label_smoothing: float = _D.label_smoothing,
    schedule: ScheduleKind = _D.schedule,
    warmup_epochs: float = _D.warmup_epochs,
    ema_decay: float = _D.ema_decay,
    crop_padding: int = _D.crop_padding,
    pad_mode: PadMode = _D.pad_mode,
    flip: bool = _D.flip,
    alternate_flip: bool = _D.alternate_flip,
    cutout: int = _D.cutout,
    tta_flip: bool = _D.tta_flip,
    tta_translate: bool = _D.tta_translate,
    amp: bool | None = _D.amp,
    channels_last: bool = _D.channels_last,
    compile: bool = _D.compile,
    grad_clip: float | None = _D.grad_clip,
    sam_rho: float = _D.sam_rho,
    muon_lr: float = _D.muon_lr,
    sync_bn: bool = _D.sync_bn,
    distill_weight: float = _D.distill_weight,
    distill_temperature: float = _D.distill_temperature,
    seed: int = _D.seed,
    config: TrainConfig | None = None,
    teacher: Teacher | None = None,
    eval_data: EvalData | None = None,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    quiet: bool = False,
    eval_every: int = 1,
) -> History:
    """Train ``model`` on CIFAR-10-style data and return its :class:`History`.

    Args:
        model: any classifier ``nn.Module`` (images normalized with its ``pretrained_cfg``
            mean/std when it has one, else CIFAR-10's).
        data: a :class:`~cifarzoo.data.CIFAR10Data` (trains on ``train``, evaluates on ``val``
            if present, else ``test``), a :class:`~cifarzoo.data.Split`, or ``(images, labels)``
            with uint8 images ``[N, 3, 32, 32]`` (or NHWC), tensors or numpy arrays.
        epochs ... seed: the recipe, see :class:`TrainConfig`. ``batch_size`` is global: under
            ``torchrun`` each of the N processes takes ``batch_size // N`` per step.
        config: a whole :class:`TrainConfig`; when given, it replaces the keyword recipe.
        teacher: distill from this model (its flip-TTA logits on the training images, computed
            once before training), from a list of models (an ensemble: their averaged
            probabilities), or from precomputed logits ``[N_train, C]``. Needs
            ``distill_weight > 0``, which in turn needs a teacher.
        eval_data: evaluate on this instead of the split chosen from ``data``.
        device: ``"cuda"``, ``"cpu"``...; default CUDA if available (``cuda:LOCAL_RANK`` under
            torchrun). ``amp=None`` means bf16 autocast on CUDA and fp32 elsewhere.
        checkpoint_dir: write ``checkpoint.pt`` here after every epoch (atomically) and on Ctrl-C.
        resume: continue from ``checkpoint_dir/checkpoint.pt`` when it exists. The recipe must
            be the checkpoint's (:class:`RecipeMismatchError` otherwise) and so must the data:
            checkpoints record the number of training and evaluation images and a hash of each
            split (:func:`data_fingerprint`); other data raises :class:`DataMismatchError`.
            Checkpoints written before the fingerprint existed resume without that check.
        quiet: no progress bars.
        eval_every: evaluate every this many epochs (and always after the last).

    When training completes, ``model`` holds the EMA weights if EMA is on (the weights that
    ``History.eval_*`` measured); the raw weights stay in the checkpoint (``"model"``).

    Raises:
        NonFiniteLossError: the loss (or the weights) became NaN/inf; the last good checkpoint
            is kept (also when Ctrl-C comes after such a step: nothing is saved then).
        KeyboardInterrupt: after Ctrl-C, once a checkpoint was written (if ``checkpoint_dir``).
        ValueError: bad input, e.g. labels outside ``0..num_classes - 1`` or a checkpoint that
            cannot be read (the message names the file and what to do).
    """
    cfg = (
        config
        if config is not None
        else TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            label_smoothing=label_smoothing,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            ema_decay=ema_decay,
            crop_padding=crop_padding,
            pad_mode=pad_mode,
            flip=flip,
            alternate_flip=alternate_flip,
            cutout=cutout,
            tta_flip=tta_flip,
            tta_translate=tta_translate,
            amp=amp,
            channels_last=channels_last,
            compile=compile,
            grad_clip=grad_clip,
            sam_rho=sam_rho,
            muon_lr=muon_lr,
            sync_bn=sync_bn,
            distill_weight=distill_weight,
            distill_temperature=distill_temperature,
            seed=seed,
        )
    )
    if (teacher is None) != (cfg.distill_weight == 0):
        raise ValueError(
            "distillation needs both a teacher and distill_weight > 0: got "
            f"teacher={'None' if teacher is None else type(teacher).__name__} and "
            f"distill_weight={cfg.distill_weight}"
        )
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be a positive integer (epochs), got {eval_every!r}")
    env = DistEnv.from_env()
    if device is None and env.distributed and torch.cuda.is_available():
        dev = torch.device("cuda", env.local_rank)
    else:
        dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        index = env.local_rank if env.distributed else torch.cuda.current_device()
        dev = torch.device("cuda", index)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    created_group = _init_distributed(env, dev)
    try:
        return _Trainer(
            model,
            data,
            cfg,
            eval_data,
            dev,
            env,
            checkpoint_dir,
            resume,
            quiet,
            eval_every,
            teacher,
        ).run()
    finally:
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


class _Trainer:
    def __init__(
        self,
        model: nn.Module,
        data: TrainData,
        cfg: TrainConfig,
        eval_data: EvalData | None,
        device: torch.device,
        env: DistEnv,
        checkpoint_dir: str | os.PathLike[str] | None,
        resume: bool,
        quiet: bool,
        eval_every: int,
        teacher: Teacher | None = None,
    ) -> None:
        self.cfg, self.device, self.env = cfg, device, env
        self.quiet = quiet or not env.is_main
        self.eval_every = eval_every
        self.ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        self.resume = resume
        self.amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
        self.sync_every = _SYNC_EVERY_CPU if device.type == "cpu" else _SYNC_EVERY_ACCELERATOR
        train, ev, self.eval_split = _split_data(data, eval_data)
        declared = getattr(model, "num_classes", None)
        num_classes = declared if isinstance(declared, int) else None
        # The labels are checked once, here; the loaders below only refuse negative ones.
        check_labels(train[1], num_classes, "training labels")
        if ev is not None:
            check_labels(ev[1], num_classes, f"{self.eval_split} labels")
        mean, std = model_mean_std(model)
        targets = train[1]
        if teacher is not None:
            targets = self._soft_targets(teacher, train, device, num_classes)
        self.loader = DeviceLoader(
            train[0],
            targets,
            batch_size=cfg.batch_size,
            train=True,
            drop_last=True,
            crop_padding=cfg.crop_padding,
            pad_mode=cfg.pad_mode,
            flip=cfg.flip,
            alternate_flip=cfg.alternate_flip,
            cutout=cfg.cutout,
            mean=mean,
            std=std,
            device=device,
            channels_last=cfg.channels_last,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
        )
        if len(self.loader) == 0:
            raise ValueError(
                f"batch_size {cfg.batch_size} is larger than the training set "
                f"({self.loader.num_images} images)"
            )
        self.eval_loader = (
            None
            if ev is None
            else DeviceLoader(
                ev[0],
                ev[1],
                batch_size=1000 * env.world_size,
                train=False,
                mean=mean,
                std=std,
                device=device,
                channels_last=cfg.channels_last,
                rank=env.rank,
                world_size=env.world_size,
            )
        )
        self.fingerprint = (
            data_fingerprint(train, ev, self.eval_split) if self.ckpt_path is not None else None
        )
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and env.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        self.model = model
        self.steps = len(self.loader)
        total = cfg.epochs * self.steps
        warmup = min(total // 2, round(cfg.warmup_epochs * self.steps))
        self.opt: torch.optim.Optimizer
        if cfg.muon_lr > 0:
            self.opt = MuonSGD(
                muon_param_groups(
                    model, lr=cfg.lr, muon_lr=cfg.muon_lr, weight_decay=cfg.weight_decay
                ),
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov,
            )
        else:
            self.opt = torch.optim.SGD(
                param_groups(model, cfg.weight_decay),
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov,
            )
        self.schedule = LRSchedule(cfg.schedule, warmup, total)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.schedule)
        self.ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        train_model: nn.Module = model
        if env.distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            train_model = torch.compile(train_model)  # type: ignore[assignment]
        self.train_model = train_model
        self.history = History(eval_split=self.eval_split)
        self._outputs_checked = False

    def _soft_targets(
        self,
        teacher: Teacher,
        train: tuple[Tensor, Tensor],
        device: torch.device,
        num_classes: int | None,
    ) -> Tensor:
        labels = train[1].to(device, torch.int64)
        if isinstance(teacher, Tensor):
            logits = teacher.to(device, torch.float32)
        else:
            members = [teacher] if isinstance(teacher, nn.Module) else list(teacher)
            self._log(
                f"computing the predictions of {len(members)} teacher model(s) on "
                f"{len(labels)} training images"
            )
            log_probs = [
                torch.log_softmax(
                    predict_logits(m.to(device), train, tta_flip=True, device=device, amp=self.amp),
                    dim=1,
                )
                for m in members
            ]
            # the log of the members' mean probability: softmax(logits) is that mean
            logits = torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(members))
        if num_classes is not None:
            wanted = f"the model's {num_classes}"
            fits = logits.dim() == 2 and logits.shape[1] == num_classes
        else:  # the model does not say: every label needs a column
            needed = int(labels.max()) + 1 if len(labels) else 0
            wanted = f"at least {needed} (the largest label + 1)"
            fits = logits.dim() == 2 and logits.shape[1] >= needed
        if not fits or len(logits) != len(labels):
            raise ValueError(
                f"teacher logits must be [{len(labels)}, num_classes] (one row per training "
                f"image, num_classes {wanted}), got {list(logits.shape)}; use a teacher of the "
                "same classes"
            )
        probs = torch.softmax(logits / self.cfg.distill_temperature, dim=1)
        one_hot = F.one_hot(labels, probs.shape[1]).float()
        return torch.lerp(one_hot, probs, self.cfg.distill_weight)

    # -- checkpoints --------------------------------------------------------------------------

    def _state(self, epoch: int, step: int, partial: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": epoch,
            "step": step,
            "partial": partial,
            "rng": _rng_state(self.device),
            "loader": self.loader.state_dict(),
            "history": self.history.to_dict(),
            "config": self.cfg.to_dict(),
            "model_name": _model_name(self.model),
            "world_size": self.env.world_size,
            "data": self.fingerprint,
        }

    def _save(self, epoch: int, step: int, partial: dict[str, Any] | None = None) -> None:
        if self.ckpt_path is None:
            return
        if self.env.is_main:
            save_checkpoint(self._state(epoch, step, partial), self.ckpt_path)
        if self.env.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _load(self) -> tuple[int, int, dict[str, Any] | None]:
        assert self.ckpt_path is not None
        state = read_checkpoint(self.ckpt_path, map_location=self.device)
        saved = recipe_of(state)
        diff = {
            k: (saved.get(k), v)
            for k, v in self.cfg.to_dict().items()
            if saved.get(k) != v and not (isinstance(v, tuple) and list(v) == saved.get(k))
        }
        if diff:
            raise RecipeMismatchError(self.ckpt_path, diff)
        saved_data = state.get("data")
        if saved_data is None:  # written before cifarzoo recorded it: nothing to compare
            self._log(
                f"note: {self.ckpt_path} does not record its data (an older checkpoint); make "
                "sure this run uses the same data and split"
            )
        elif self.fingerprint is not None:
            differences = _data_differences(saved_data, self.fingerprint)
            if differences:
                raise DataMismatchError(self.ckpt_path, differences)
        if state.get("world_size", 1) != self.env.world_size:
            warnings.warn(
                f"resuming a {state.get('world_size', 1)}-process run with "
                f"{self.env.world_size} processes; results will not be bit-identical",
                stacklevel=3,
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(self._other_model(state, e)) from e
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"], self.device)
        self.loader.load_state_dict(state["loader"])
        self.history = History.from_dict(state["history"])
        return int(state["epoch"]), int(state["step"]), state["partial"]

    def _other_model(self, state: dict[str, Any], e: RuntimeError) -> str:
        saved = state.get("model_name")
        if saved is None:  # a checkpoint older than the name: torch's first line says why
            what = f"another model ({str(e).strip().splitlines()[0]})"
        else:
            what = f"{saved}, not {_model_name(self.model)}"
        return (
            f"cannot resume {self.ckpt_path}: it holds the weights of {what}. Resume with the "
            "model that wrote it, or start a new run in another checkpoint_dir (CLI: --out)"
        )

    # -- loop ---------------------------------------------------------------------------------

    def _log(self, msg: str) -> None:
        if not self.quiet:
            from tqdm.auto import tqdm

            tqdm.write(msg)

    def _run(self) -> History:
        cfg = self.cfg
        start_epoch, start_step, partial = 0, 0, None
        if self.resume and self.ckpt_path is not None and self.ckpt_path.is_file():
            start_epoch, start_step, partial = self._load()
            self._log(
                f"resuming from {self.ckpt_path} at epoch {start_epoch + 1}, step {start_step}"
            )
        elif self.resume:
            self._log(f"no checkpoint at {self.ckpt_path}; starting a new run")
        with _StopRequest(enabled=not self.env.distributed) as stop:
            for epoch in range(start_epoch, cfg.epochs):
                self._run_epoch(
                    epoch,
                    start_step if epoch == start_epoch else 0,
                    partial if epoch == start_epoch else None,
                    stop,
                )
        if self.ema is not None:  # leave the model with the weights that were evaluated
            self.model.load_state_dict(self.ema.module.state_dict())
        return self.history

    def run(self) -> History:
        """Train with the global RNG seeded from ``cfg.seed`` (or restored from the checkpoint),
        then give the caller's RNG state back."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed)
            return self._run()

    def _sharpness_aware_gradient(self, x: Tensor, y: Tensor) -> None:
        """Replace the gradients with those at the SAM ascent point; the weights are unchanged."""
        moves = sam_ascent(self.model, self.cfg.sam_rho)
        self.opt.zero_grad(set_to_none=True)
        with frozen_norm_statistics(self.model), _autocast(self.device, self.amp):
            out = self.train_model(x)
        self.criterion(out.float(), y).backward()
        with torch.no_grad():
            for p, move in moves:
                p.sub_(move)

    def _check_outputs(self, out: Tensor) -> None:
        """Refuse logits that the labels do not fit (only shapes: no device sync). Run on the
        first batch: the model's output width does not change."""
        loader = self.loader
        classes = out.shape[1] if out.dim() == 2 else None
        fits = classes is not None and (
            classes == loader.label_classes
            if loader.soft_labels
            else classes >= loader.label_classes
        )
        if not fits:
            need = (
                f"exactly {loader.label_classes} (one per column of the soft labels)"
                if loader.soft_labels
                else f"at least {loader.label_classes} (the largest label is "
                f"{loader.label_classes - 1})"
            )
            raise ValueError(
                f"the model's output has shape {list(out.shape)}, but the training labels need "
                f"[batch, classes] logits with {need} classes; build the model with the right "
                "num_classes or fix the labels"
            )

    def _train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One optimizer step on the batch ``(x, y)``; returns its (detached) loss and logits."""
        cfg = self.cfg
        with _autocast(self.device, self.amp):
            out = self.train_model(x)
        if not self._outputs_checked:
            self._check_outputs(out)
            self._outputs_checked = True
        loss = self.criterion(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.sam_rho > 0:
            self._sharpness_aware_gradient(x, y)
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach(), out.detach()

    def _run_epoch(
        self,
        epoch: int,
        start: int,
        partial: dict[str, Any] | None,
        stop: _StopRequest,
    ) -> None:
        cfg, dev = self.cfg, self.device
        t0 = time.perf_counter()
        seconds = float(partial["seconds"]) if partial else 0.0
        losses = torch.zeros(self.steps, dtype=torch.float32, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        if partial:
            losses[:start] = partial["losses"].to(dev)
            correct += int(partial["correct"])
            seen = int(partial["seen"])
        self.model.train()
        bar = _Progress(not self.quiet, self.steps, start, f"epoch {epoch + 1}/{cfg.epochs}")
        try:
            done = last_sync = start
            for step, (x, y) in enumerate(self.loader.epoch_batches(epoch, start), start=start):
                loss, out = self._train_step(x, y)
                losses[step] = loss
                hard = y.argmax(1) if y.dim() == 2 else y
                correct += (out.argmax(1) == hard).sum()
                seen += len(y)
                done = step + 1
                if done - last_sync >= self.sync_every or done == self.steps:
                    value = float(loss)
                    if not math.isfinite(value):
                        self._non_finite(epoch, step, value)
                    bar.update(
                        done - last_sync,
                        loss=f"{value:.3f}",
                        acc=f"{100 * int(correct) / max(1, seen):.1f}%",
                        lr=f"{self.sched.get_last_lr()[0]:.3g}",
                    )
                    last_sync = done
                if stop.requested:
                    self._interrupt(
                        epoch, done, losses, correct, seen, seconds + time.perf_counter() - t0
                    )
            train_loss, train_acc, step_losses = self._epoch_totals(epoch, losses, correct, seen)
            result = self._evaluate_epoch(epoch)
            seconds += time.perf_counter() - t0
            self._record(epoch, train_loss, train_acc, result, seconds, step_losses)
            post = {"loss": f"{train_loss:.3f}", "acc": f"{100 * train_acc:.1f}%"}
            if result is not None:
                post[f"{self.eval_split}_acc"] = f"{100 * result.accuracy:.2f}%"
            bar.close(**post)
        except KeyboardInterrupt:
            bar.close()
            if not stop.requested:
                self._log(
                    "interrupted; the last checkpoint is kept"
                    + (f" at {self.ckpt_path}" if self.ckpt_path else "")
                )
            raise
        finally:
            bar.close()
        self._check_weights(epoch, self.steps - 1)
        self._save(epoch + 1, 0)
        if stop.requested:
            self._log(
                "interrupted at the end of an epoch; checkpoint saved"
                + (f" to {self.ckpt_path}" if self.ckpt_path else "")
            )
            raise KeyboardInterrupt

    def _epoch_totals(
        self, epoch: int, losses: Tensor, correct: Tensor, seen: int
    ) -> tuple[float, float, list[float]]:
        """Mean loss, accuracy and per-step losses of the epoch (over all ranks); stops on a
        loss that is not finite."""
        dev = self.device
        loss_sum = losses.double().sum()
        sums = torch.stack(
            [loss_sum, correct.double(), torch.tensor(float(seen), device=dev, dtype=torch.float64)]
        )
        if self.env.distributed:
            import torch.distributed as dist

            dist.all_reduce(sums)
            dist.all_reduce(losses)
            losses /= self.env.world_size
            sums[0] /= self.env.world_size
        step_losses = losses.cpu().tolist()
        bad = [i for i, v in enumerate(step_losses) if not math.isfinite(v)]
        if bad:
            self._non_finite(epoch, bad[0], step_losses[bad[0]])
        return (float(sums[0]) / self.steps, float(sums[1]) / max(1.0, float(sums[2])), step_losses)

    def _evaluate_epoch(self, epoch: int) -> EvalResult | None:
        last = epoch + 1 == self.cfg.epochs
        if self.eval_loader is None or not ((epoch + 1) % self.eval_every == 0 or last):
            return None
        return evaluate(
            self.ema.module if self.ema is not None else self.model,
            self.eval_loader,
            tta_flip=self.cfg.tta_flip,
            tta_translate=self.cfg.tta_translate,
            amp=self.amp,
            device=self.device,
            distributed=self.env.distributed,
        )

    def _record(
        self,
        epoch: int,
        train_loss: float,
        train_acc: float,
        result: EvalResult | None,
        seconds: float,
        step_losses: list[float],
    ) -> None:
        h = self.history
        h.epoch.append(epoch + 1)
        h.train_loss.append(train_loss)
        h.train_acc.append(train_acc)
        h.eval_loss.append(result.loss if result else None)
        h.eval_acc.append(result.accuracy if result else None)
        h.lr.append(self.cfg.lr * self.schedule(epoch * self.steps))
        h.seconds.append(seconds)
        h.step_loss.extend(step_losses)

    def _check_weights(self, epoch: int, step: int) -> None:
        """Stop (keeping the last checkpoint) if the weights are no longer finite: the last
        step's update can break them after its loss was checked."""
        params = [p.detach() for p in self.model.parameters()]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            self._non_finite(epoch, step, float("nan"), what="weights")

    def _interrupt(
        self, epoch: int, step: int, losses: Tensor, correct: Tensor, seen: int, seconds: float
    ) -> None:
        # The loss is only synced every few steps on a GPU: a NaN since the last sync must not
        # overwrite the last good checkpoint.
        pending = losses[:step]
        if not bool(torch.isfinite(pending).all()):
            bad = int(torch.nonzero(~torch.isfinite(pending))[0])
            self._non_finite(epoch, bad, float(pending[bad]), interrupted=True)
        self._check_weights(epoch, step - 1)
        partial = {
            "losses": pending.cpu(),
            "correct": int(correct),
            "seen": seen,
            "seconds": seconds,
        }
        self._save(epoch, step, partial)
        where = f"; checkpoint saved to {self.ckpt_path}" if self.ckpt_path else ""
        self._log(
            f"interrupted at epoch {epoch + 1}, step {step}{where}; "
            "resume with resume=True (CLI: --resume)"
        )
        raise KeyboardInterrupt

    def _non_finite(
        self, epoch: int, step: int, value: float, *, what: str = "loss", interrupted: bool = False
    ) -> NoReturn:
        kept = (
            f"the last good checkpoint is kept at {self.ckpt_path}"
            if self.ckpt_path and self.ckpt_path.is_file()
            else "no checkpoint was written"
        )
        became = f"training loss became {value}" if what == "loss" else "the weights became NaN/inf"
        saved = (
            " (interrupted, but nothing was saved: the state is not finite)" if interrupted else ""
        )
        raise NonFiniteLossError(
            f"{became} at epoch {epoch + 1}, step {step + 1} "
            f"(lr {self.sched.get_last_lr()[0]:.3g}){saved}; training stopped and {kept}. "
            "Lower the learning rate, enable grad_clip, or check the data."
        )


def iter_epochs(history: History) -> Iterator[dict[str, Any]]:
    """The history as one dict per epoch (handy for logging or pandas)."""
    for i, e in enumerate(history.epoch):
        yield {
            "epoch": e,
            "train_loss": history.train_loss[i],
            "train_acc": history.train_acc[i],
            "eval_loss": history.eval_loss[i],
            "eval_acc": history.eval_acc[i],
            "lr": history.lr[i],
            "seconds": history.seconds[i],
        }
