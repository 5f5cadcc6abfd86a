"""What :func:`~cifarzoo.training.fit` trains and evaluates on, and the fingerprint of that
data that a checkpoint records (a resume on other data is refused)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ..data import CIFAR10Data, DeviceLoader, Split

__all__ = [
    "DataMismatchError",
    "EvalData",
    "ImagesLabels",
    "TrainData",
    "check_outputs",
    "data_differences",
    "data_fingerprint",
    "split_data",
]

#: Images and labels: tensors, or numpy arrays (taken without a copy).
ImagesLabels = tuple[Tensor | npt.NDArray[Any], Tensor | npt.NDArray[Any]]
TrainData = CIFAR10Data | Split | ImagesLabels
EvalData = Split | ImagesLabels


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


def split_data(
    data: TrainData, eval_data: EvalData | None
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None, str]:
    """``(train, evaluation, name of the evaluation split)``: a CIFAR10Data evaluates on its
    ``val`` split when it has one, else ``test``; ``eval_data`` replaces that."""
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


def data_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
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


def check_outputs(out: Tensor, loader: DeviceLoader) -> None:
    """Refuse logits that the loader's labels do not fit (only shapes: no device sync). Run on
    the first batch: the model's output width does not change."""
    classes = out.shape[1] if out.dim() == 2 else None
    fits = classes is not None and (
        classes == loader.label_classes if loader.soft_labels else classes >= loader.label_classes
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
