"""Evaluation: accuracy, loss, per-class accuracy, confusion matrix and calibration error."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, NUM_CLASSES
from .data import CIFAR10Data, Split
from .devices import autocast, resolve_device
from .formats import percent
from .heap import kept_heap
from .loader import DeviceLoader, no_classifier_error

__all__ = [
    "ECE_BINS",
    "EVAL_BATCH_ACCELERATOR",
    "EVAL_BATCH_CPU",
    "EvalResult",
    "eval_batch_size",
    "eval_channels_last",
    "evaluate",
    "model_mean_std",
    "predict_logits",
    "tta_views",
]

ECE_BINS = 15

EvalData = CIFAR10Data | Split | tuple[Tensor, Tensor] | DeviceLoader


def tta_views(flip: bool, translate: bool) -> str:
    """The test-time views averaged besides the image: ``"flip"``, ``"translate"``,
    ``"flip + translate"``, or ``""`` for none."""
    return " + ".join(name for name, on in (("flip", flip), ("translate", translate)) if on)


def model_mean_std(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalization of a model: its ``pretrained_cfg`` mean/std, else CIFAR-10's."""
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and "mean" in cfg and "std" in cfg:
        return tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
    return CIFAR10_MEAN, CIFAR10_STD


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate` measured. ``confusion_matrix[i][j]``: true class i predicted as j."""

    accuracy: float
    loss: float
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]
    ece: float
    num_samples: int
    classes: tuple[str, ...] = CIFAR10_CLASSES
    tta_flip: bool = False
    tta_translate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: with ``evaluate(..., single_pass=True)`` and a test-time augmentation, the result of
    #: ``model(x)`` alone, measured from the same forward passes (not in :meth:`to_dict`)
    single_pass: EvalResult | None = None

    @property
    def one_pass(self) -> EvalResult | None:
        """What ``model(x)`` alone gives: this result when it was measured without test-time
        augmentation, else :attr:`single_pass` (``None`` when it was not asked for)."""
        return self if not (self.tta_flip or self.tta_translate) else self.single_pass

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "ece": self.ece,
            "num_samples": self.num_samples,
            "tta_flip": self.tta_flip,
            "tta_translate": self.tta_translate,
            "classes": list(self.classes),
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy, strict=True)),
            "confusion_matrix": self.confusion_matrix,
            **self.extra,
        }

    def table(self) -> str:
        """A plain-text table: overall accuracy and one row per class."""
        width = max(len(c) for c in self.classes)
        lines = [f"{'class':<{width}}  accuracy", f"{'-' * width}  --------"]
        for name, acc in zip(self.classes, self.per_class_accuracy, strict=True):
            lines.append(f"{name:<{width}}  {100 * acc:7.2f}%")
        lines.append(f"{'-' * width}  --------")
        lines.append(f"{'all':<{width}}  {100 * self.accuracy:7.2f}%")
        tta = tta_views(self.tta_flip, self.tta_translate)
        lines.append(
            f"loss {self.loss:.4f}  ECE {percent(self.ece)}  n={self.num_samples:,}"
            + (f"  ({tta} TTA)" if tta else "")
        )
        return "\n".join(lines)


class _Accumulator:
    """Sums that add up across batches and ranks: confusion, loss, calibration bins."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        # rows: count, sum of confidences, number correct
        self.bins = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=device)
        self.num_classes = num_classes

    def check_width(self, logits: Tensor) -> None:
        """Refuse logits that are not ``[batch, num_classes]`` (a shape check: no sync)."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"the model gives logits of shape {list(logits.shape)}, but {self.num_classes} "
                "classes were expected; pass num_classes= to match the model's outputs"
            )

    def update(self, logits: Tensor, labels: Tensor) -> None:
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        probs = logits.softmax(1)
        conf, pred = probs.max(1)
        k = self.num_classes
        self.confusion += torch.bincount(labels * k + pred, minlength=k * k).view(k, k)
        b = (conf * ECE_BINS).ceil().long().clamp(1, ECE_BINS) - 1
        self.bins[0] += torch.bincount(b, minlength=ECE_BINS)
        self.bins[1] += torch.bincount(b, weights=conf.double(), minlength=ECE_BINS)
        self.bins[2] += torch.bincount(b, weights=(pred == labels).double(), minlength=ECE_BINS)

    def all_reduce(self) -> None:
        import torch.distributed as dist

        for t in (self.confusion, self.loss_sum, self.bins):
            dist.all_reduce(t)

    def result(self, classes: Sequence[str], tta_flip: bool, tta_translate: bool) -> EvalResult:
        conf = self.confusion.cpu()
        n = float(conf.sum())
        if n == 0:
            raise ValueError("cannot evaluate on an empty split")
        per_class_n = conf.sum(1)
        per_class = (conf.diag() / per_class_n.clamp(min=1)).tolist()
        bins = self.bins.cpu()
        ece = float(((bins[2] - bins[1]).abs()).sum() / n)
        names = (
            tuple(classes)
            if len(classes) == self.num_classes
            else tuple(str(i) for i in range(self.num_classes))
        )
        return EvalResult(
            accuracy=float(conf.diag().sum() / n),
            loss=float(self.loss_sum.cpu()) / n,
            per_class_accuracy=[float(v) for v in per_class],
            confusion_matrix=[[int(v) for v in row] for row in conf.long().tolist()],
            ece=ece,
            num_samples=int(n),
            classes=names,
            tta_flip=tta_flip,
            tta_translate=tta_translate,
        )


def _tta_logits(model: nn.Module, x: Tensor, flip: bool, translate: bool) -> tuple[Tensor, Tensor]:
    """The logits averaged over the test-time views, and those of ``x`` alone (one of them)."""

    def mirrored(images: Tensor, plain: Tensor | None = None) -> Tensor:
        logits: Tensor = model(images).float() if plain is None else plain
        return (logits + model(images.flip(3)).float()) / 2 if flip else logits

    plain: Tensor = model(x).float()
    logits = mirrored(x, plain)
    if not translate:
        return logits, plain
    # As in airbench: the image counts half, two copies shifted one pixel diagonally (reflect
    # padding) a quarter each -- shifts the training crops produce, so the model knows them.
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    layout = torch.contiguous_format if x.is_contiguous() else torch.channels_last
    shifted = [padded[..., i : i + h, i : i + w].contiguous(memory_format=layout) for i in (0, 2)]
    return logits / 2 + (mirrored(shifted[0]) + mirrored(shifted[1])) / 4, plain


#: Images per evaluation step when none is given, on a CPU and on an accelerator.
EVAL_BATCH_CPU, EVAL_BATCH_ACCELERATOR = 100, 1000


def eval_batch_size(device: torch.device) -> int:
    """Images per evaluation step when none is given: :data:`EVAL_BATCH_ACCELERATOR` on an
    accelerator, :data:`EVAL_BATCH_CPU` on a CPU, where a smaller batch's activations stay in
    cache (about 2x faster for resnet20)."""
    return EVAL_BATCH_CPU if device.type == "cpu" else EVAL_BATCH_ACCELERATOR


def eval_channels_last(device: torch.device) -> bool:
    """Whether evaluation batches are ``channels_last``: on an accelerator (faster), not on a
    CPU, where plain NCHW batches are what timm's loaders give (its convolutions round the
    other layout's sums differently) and are faster too."""
    return device.type != "cpu"


def _batches(
    data: EvalData,
    model: nn.Module,
    batch_size: int | None,
    device: torch.device,
    rank: int,
    world_size: int,
    num_classes: int | None,
) -> tuple[Iterator[tuple[Tensor, Tensor]], Sequence[str]]:
    classes: Sequence[str] = CIFAR10_CLASSES
    if isinstance(data, DeviceLoader):
        if data.soft_labels:
            raise ValueError(
                "evaluation needs class-index labels [N], but the DeviceLoader holds class "
                "probabilities [N, C]; build it from the hard labels"
            )
        if num_classes == 0:
            raise no_classifier_error("the labels", data.label_classes)
        if num_classes is not None and data.label_classes > num_classes:
            raise ValueError(
                f"the labels go up to class {data.label_classes - 1}, but the model has "
                f"{num_classes} classes (0..{num_classes - 1}); fix the labels or pass the "
                "right num_classes"
            )
        return iter(data.epoch_batches(0)), classes
    if isinstance(data, CIFAR10Data):
        classes = data.classes
        split = data.test
        images, labels = split.images, split.labels
    elif isinstance(data, Split):
        images, labels = data.images, data.labels
    else:
        images, labels = data
    mean, std = model_mean_std(model)
    loader = DeviceLoader(
        images,
        labels,
        batch_size=(eval_batch_size(device) if batch_size is None else batch_size) * world_size,
        train=False,
        mean=mean,
        std=std,
        device=device,
        channels_last=eval_channels_last(device),
        rank=rank,
        world_size=world_size,
        num_classes=num_classes,
    )
    return iter(loader.epoch_batches(0)), classes


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return resolve_device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return resolve_device(None)


def _predictions(
    model: nn.Module,
    batches: Iterator[tuple[Tensor, Tensor]],
    device: torch.device,
    amp: bool,
    tta_flip: bool,
    tta_translate: bool,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """``(logits, logits without test-time augmentation, labels)`` per non-empty batch, in eval
    mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            if len(y) == 0:
                continue
            with autocast(device, amp):
                yield *_tta_logits(model, x, tta_flip, tta_translate), y
    finally:
        model.train(was_training)


def _num_images(data: EvalData, world_size: int) -> int | None:
    """How many images one rank evaluates (about), for a progress bar's total."""
    if isinstance(data, DeviceLoader):
        return None
    labels = (
        data.test.labels
        if isinstance(data, CIFAR10Data)
        else (data.labels if isinstance(data, Split) else data[1])
    )
    return -(-len(labels) // world_size)


def _progress_bar(desc: str | None, total: int | None) -> Any:
    """A tqdm bar of images (``None`` without a description)."""
    if desc is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: EvalData,
    *,
    tta_flip: bool = False,
    tta_translate: bool = False,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    distributed: bool | None = None,
    single_pass: bool = False,
    progress: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``data`` (a split, ``(images, labels)``, or a :class:`CIFAR10Data`,
    whose ``test`` split is used).

    Args:
        tta_flip: average the logits of each image and its horizontal mirror.
        tta_translate: also average over copies shifted one pixel diagonally both ways (the
            image weighs 1/2, each shift 1/4; with ``tta_flip``, their mirrors too).
        batch_size: images per forward pass (default :func:`eval_batch_size`: 1000 on an
            accelerator, 100 on a CPU).
        amp: bf16 autocast.
        num_classes: the model's number of outputs (default: its ``num_classes`` attribute, else
            10); labels outside ``0..num_classes - 1`` are refused with a ``ValueError``.
        distributed: shard over the initialized process group and all-reduce the sums
            (default: when a process group of more than one rank is initialized).
        single_pass: with a test-time augmentation, also measure ``model(x)`` alone from the
            same forward passes (the averaged views include the image itself), as the result's
            ``single_pass``: equal to a second ``evaluate`` without augmentation, at no cost.
        progress: show a progress bar (tqdm, on stderr) of the images evaluated, with this
            description; on the first rank only.

    The loss is the plain cross-entropy (no label smoothing). The expected calibration error
    uses 15 equal-width confidence bins. The model's train/eval mode is restored afterwards. On a
    CPU, freed memory is kept for the next batch (:func:`~cifarzoo.heap.kept_heap`).
    """
    import torch.distributed as dist

    if distributed is None:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    dev = _model_device(model, device)
    if num_classes is None:
        num_classes = int(getattr(model, "num_classes", NUM_CLASSES))
    batches, default_classes = _batches(data, model, batch_size, dev, rank, world, num_classes)
    acc = _Accumulator(num_classes, dev)
    plain_acc = (
        _Accumulator(num_classes, dev) if single_pass and (tta_flip or tta_translate) else None
    )
    predictions = _predictions(model, batches, dev, amp, tta_flip, tta_translate)
    bar = _progress_bar(progress if rank == 0 else None, _num_images(data, world))
    with kept_heap(dev.type == "cpu"):
        for i, (logits, plain, y) in enumerate(predictions):
            if i == 0:  # the labels were checked when the batches were made; now the model's width
                acc.check_width(logits)
            acc.update(logits, y)
            if plain_acc is not None:
                plain_acc.update(plain, y)
            if bar is not None:
                bar.update(len(y))
    if bar is not None:
        bar.close()
    names = classes if classes is not None else default_classes
    if distributed:
        acc.all_reduce()
    if plain_acc is None:
        return acc.result(names, tta_flip, tta_translate)
    if distributed:
        plain_acc.all_reduce()
    single = plain_acc.result(names, False, False)
    return dataclasses.replace(acc.result(names, tta_flip, tta_translate), single_pass=single)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    data: EvalData,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    tta_flip: bool = False,
    tta_translate: bool = False,
) -> Tensor:
    """The model's float32 logits ``[N, num_classes]`` for every image of ``data``, in order
    (on the model's device), with the same test-time augmentation options as :func:`evaluate`.

    A :class:`~cifarzoo.data.CIFAR10Data` means its ``test`` split; a
    :class:`~cifarzoo.data.DeviceLoader` is read in its unshuffled order only.
    """
    if isinstance(data, DeviceLoader) and data.shuffle:
        raise ValueError("predict_logits needs an unshuffled DeviceLoader (train=False)")
    dev = _model_device(model, device)
    batches, _ = _batches(data, model, batch_size, dev, 0, 1, None)
    with kept_heap(dev.type == "cpu"):
        predictions = _predictions(model, batches, dev, amp, tta_flip, tta_translate)
        out = [logits for logits, _, _ in predictions]
    return torch.cat(out)
