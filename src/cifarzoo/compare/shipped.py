"""The weights shipped with cifarzoo that a comparison evaluates instead of training
(``compare --pretrained``): which weights each name means, and each one's report from the
training record shipped beside it plus an evaluation on the data at hand."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..data import CIFAR10Data
from ..models import TIMM_PREFIX, create_model, list_models
from ..pretrained import (
    DEFAULT_TAG,
    list_weights,
    read_training_record,
    read_weights_meta,
    weights_name,
)
from ..runs import recorded_model_args, recorded_split
from .evaluation import Evaluation
from .results import ModelReport
from .reused import trained_elsewhere

__all__ = ["ShippedWeights", "choose_weights", "read_shipped"]


@dataclasses.dataclass(frozen=True)
class ShippedWeights:
    """One architecture's shipped weights of one tag, and the name the report shows."""

    arch: str
    tag: str
    name: str

    @property
    def timm_name(self) -> str:
        """The pretrained name timm knows them by (``cifar_lenet.lab``)."""
        return TIMM_PREFIX + weights_name(self.arch, self.tag)


def choose_weights(
    names: Sequence[str], weights_dir: str | os.PathLike[str] | None = None
) -> list[ShippedWeights]:
    """The shipped weights ``names`` mean: ``ARCH.TAG`` those weights; a bare ``ARCH`` the
    tag that every bare name has weights of (:data:`~cifarzoo.pretrained.DEFAULT_TAG` if they
    all have it, else the first such tag in alphabetical order), or its default weights when
    they share none. So ``lenet resnet18 densenet121 seresnet18`` are the ``lab`` weights of
    all four. Each model is shown under its architecture's name, with its tag where two
    weights of one architecture are compared. ``weights_dir``: where the weights' metadata
    is (default: the package's weights).

    Raises:
        ValueError: an unknown architecture, one without shipped weights, an unknown tag, or
            the same weights named twice.
    """
    tags: dict[str, list[str]] = {arch: [] for arch in list_models()}
    for entry in list_weights(weights_dir):  # each architecture's default first
        if entry.shipped and entry.arch in tags:
            tags[entry.arch].append(entry.tag)
    wanted = [_split(name, tags) for name in names]
    shared = _shared_tag([set(tags[arch]) for arch, tag in wanted if tag is None])
    chosen = [(arch, tag or shared or tags[arch][0]) for arch, tag in wanted]
    for pair in chosen:
        if chosen.count(pair) > 1:
            raise ValueError(f"{weights_name(*pair)} is named twice; name each weights once")
    archs = [arch for arch, _ in chosen]
    return [
        ShippedWeights(arch, tag, arch if archs.count(arch) == 1 else weights_name(arch, tag))
        for arch, tag in chosen
    ]


def _split(name: str, tags: Mapping[str, list[str]]) -> tuple[str, str | None]:
    """``(arch, tag)`` of a name (``tag`` ``None`` when not given), checked against the
    architectures and the ``tags`` of their shipped weights."""
    arch, _, tag = name.removeprefix(TIMM_PREFIX).partition(".")
    if arch not in tags:
        close = difflib.get_close_matches(arch, list(tags), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; `cifarzoo list` names every model")
    if not tags[arch]:
        shipped = [weights_name(a, t) for a, arch_tags in tags.items() for t in arch_tags]
        raise ValueError(
            f"{arch} has no shipped weights to compare; weights ship for: {', '.join(shipped)}"
        )
    if tag and tag not in tags[arch]:
        raise ValueError(
            f"{arch} has no shipped weights tagged {tag!r}; it has: "
            + ", ".join(weights_name(arch, t) for t in tags[arch])
        )
    return arch, tag or None


def _shared_tag(tag_sets: Sequence[set[str]]) -> str | None:
    """The tag of the weights that every bare name has: the default one first."""
    common = set.intersection(*tag_sets) if tag_sets else set()
    if DEFAULT_TAG in common:
        return DEFAULT_TAG
    return min(common) if common else None


def read_shipped(weights: ShippedWeights, measure: Evaluation) -> ModelReport:
    """A :class:`ModelReport` of shipped weights: the curves and gradient norms of the training
    record shipped beside them (none when they have none) and ``measure`` of the weights
    (loaded checked against their sha256) on its data, with their run's validation split. The
    validation accuracy is the record's last epoch's when it measured these same images (the
    data is the one the weights name), else measured here."""
    meta = read_weights_meta(weights.arch, tag=weights.tag)
    assert meta is not None  # choose_weights checked that they exist
    metrics = dict(meta.get("metrics") or {})
    model = create_model(weights_name(weights.arch, weights.tag), pretrained=True).eval()
    record = read_training_record(weights.arch, tag=weights.tag) or {}
    history = dict(record.get("history") or {})
    split = recorded_split(measure.data, metrics)
    if _records_val(history, split, metrics):
        split = dataclasses.replace(split, val=None)
    measured = dataclasses.replace(measure, data=split).splits(
        model.to(measure.device), weights.name
    )
    return trained_elsewhere(
        weights.name,
        model,
        history,
        record.get("grad_flow"),
        source="pretrained",
        model_args=recorded_model_args(metrics),
        weights=_describe(weights, meta, metrics, has_record=bool(record)),
        **measured,
    )


def _records_val(history: Mapping[str, Any], data: CIFAR10Data, metrics: Mapping[str, Any]) -> bool:
    """Whether the training record's last epoch measured the validation split ``data`` holds
    (the same data, by name, and a validation accuracy after the last epoch)."""
    measured = history.get("eval_acc") or []
    return (
        data.val is not None
        and data.name == metrics.get("data")
        and history.get("eval_split", "val") == "val"
        and bool(measured)
        and measured[-1] is not None
    )


def _describe(
    weights: ShippedWeights, meta: dict[str, Any], metrics: dict[str, Any], *, has_record: bool
) -> dict[str, Any]:
    """What the report says of the weights: their names and file, how they were trained and
    what their metadata records of them (one forward pass, fp32, on the data named)."""
    return {
        "name": weights.timm_name,
        "tag": weights.tag,
        "file": meta.get("file"),
        "sha256": meta.get("sha256"),
        "dtype": meta.get("weights_dtype", "float32"),
        "training_record": has_record,
        "data": metrics.get("data"),
        "train_images": metrics.get("train_images"),
        "epochs": metrics.get("epochs"),
        "hardware": metrics.get("hardware"),
        "train_seconds": metrics.get("seconds"),
        "recipe": metrics.get("recipe"),
        "recorded_test_accuracy": metrics.get("test_accuracy"),
        "recorded_val_accuracy": metrics.get("val_accuracy"),
    }
