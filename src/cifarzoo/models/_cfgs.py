"""The timm pretrained_cfgs of cifarzoo models: their names in timm's registry, where their
weights are (the package's weights folder, or a pinned Hugging Face Hub repository), and what
the weights are (their class names and a one-line description)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..constants import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGE_SIZE,
    NUM_CLASSES,
    WEIGHTS_LICENSE,
)
from ..formats import percent
from ..pretrained import (
    HF_WEIGHTS_FILE,
    PACKAGED_WEIGHTS_DIR,
    SHA256_NOTE,
    list_weights,
)

#: timm already owns ``resnet18``, ``densenet121`` and ``seresnet18`` (ImageNet models), so
#: cifarzoo's models are registered with timm as ``cifar_<name>``.
TIMM_PREFIX = "cifar_"
#: How a pretrained_cfg's ``file`` names weights shipped in the package: their file name after
#: this prefix. It is resolved against the installed package when the weights are loaded
#: (:func:`packaged_weights_path`), so that no cfg holds a path of the machine it was built on.
PACKAGED_FILE_PREFIX = "cifarzoo:weights/"


def strip_prefix(name: str) -> str:
    """``name`` without timm's ``cifar_`` prefix."""
    return name.removeprefix(TIMM_PREFIX)


def packaged_weights_path(file: str) -> Path | None:
    """The installed file that a ``cifarzoo:weights/NAME`` reference names; ``None`` for any
    other ``file``."""
    if not file.startswith(PACKAGED_FILE_PREFIX):
        return None
    return PACKAGED_WEIGHTS_DIR / file.removeprefix(PACKAGED_FILE_PREFIX)


def _describe(arch: str, metrics: dict[str, Any]) -> str:
    """One line on what the weights are, from their metadata's ``metrics`` (in any layout
    cifarzoo has written: :func:`~cifarzoo.runs.recorded_accuracy`)."""
    # imported here: the models register their cfgs while cifarzoo.runs may still be importing
    from ..runs.recorded import recorded_accuracy

    text = f"cifarzoo {arch} trained on {metrics.get('data') or 'CIFAR-10'}"
    if metrics.get("epochs"):
        text += f" for {metrics['epochs']:g} epochs"
    accuracy = recorded_accuracy(metrics).test
    if accuracy is not None:
        text += f": {percent(accuracy)} test accuracy (one forward pass)"
    return text


def cifar_cfg(**overrides: Any) -> dict[str, Any]:
    """A timm pretrained_cfg for a CIFAR-10 model: 32x32 input, no resize or crop, CIFAR-10
    statistics. timm's defaults are ImageNet's, so every field a transform reads is set here."""
    cfg: dict[str, Any] = {
        "num_classes": NUM_CLASSES,
        "input_size": (3, IMAGE_SIZE, IMAGE_SIZE),
        "pool_size": None,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bilinear",
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "license": WEIGHTS_LICENSE,
    }
    cfg.update(overrides)
    return cfg


def cfg_sha256(cfg: dict[str, Any]) -> str | None:
    """The expected weights sha256 recorded in a pretrained_cfg's ``notes``, if any."""
    for note in cfg.get("notes") or ():
        if isinstance(note, str) and note.startswith(SHA256_NOTE):
            return note[len(SHA256_NOTE) :].strip().lower()
    return None


def weight_cfgs(
    archs: Iterable[str],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    pool_size: Callable[[str], tuple[int, int]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """``{'cifar_<arch>[.tag]': cfg}`` for ``generate_default_cfgs``: :func:`cifar_cfg` with
    ``overrides``, wired to each of the architecture's weights (``<weights_dir>/<arch>.<tag>.json``,
    the default tag first: timm's default pretrained tag).
    ``pool_size(arch)`` is the size of the architecture's unpooled features at 32x32 (timm's
    ``pool_size``).

    Shipped weights (``"file"`` in the JSON) are loaded from the package folder with no network;
    published ones (``"hf_hub_id"``, pinned as ``org/name@<commit>``) through timm's Hub loader.
    The JSON's ``sha256`` goes into the cfg's ``notes`` and is checked before loading. A cfg
    with weights names their classes (``label_names``, CIFAR-10's) and describes them
    (``description``). The package's own files are named by reference
    (:data:`PACKAGED_FILE_PREFIX`), another folder's by their path.
    """
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    in_package = folder.resolve() == PACKAGED_WEIGHTS_DIR
    cfgs: dict[str, Any] = {}
    for arch in archs:
        arch_overrides = {**overrides, "pool_size": pool_size(arch) if pool_size else None}
        tagged = {}
        for entry in list_weights(folder, arch=arch):  # the default first: timm's default
            source = _weights_source(entry.meta, folder, in_package)
            if source:
                source["label_names"] = CIFAR10_CLASSES
                source["description"] = _describe(arch, entry.meta.get("metrics") or {})
                tagged[TIMM_PREFIX + entry.name] = cifar_cfg(**{**arch_overrides, **source})
        cfgs.update(tagged or {TIMM_PREFIX + arch: cifar_cfg(**arch_overrides)})
    return cfgs


def _weights_source(meta: dict[str, Any], folder: Path, in_package: bool) -> dict[str, Any]:
    """Where a weights metadata JSON says its weights load from, with their sha256 (in
    ``notes``); empty for weights that do not load (recorded, not published)."""
    source: dict[str, Any] = {}
    if meta.get("file"):
        name = str(meta["file"])
        source["file"] = PACKAGED_FILE_PREFIX + name if in_package else str(folder / name)
    if meta.get("hf_hub_id"):
        source["hf_hub_id"] = str(meta["hf_hub_id"])
        source["hf_hub_filename"] = HF_WEIGHTS_FILE
    if source and meta.get("sha256"):
        source["notes"] = (SHA256_NOTE + str(meta["sha256"]).lower(),)
    return source
