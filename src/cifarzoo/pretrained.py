"""cifarzoo's pretrained weights as the rest of the package names them: the folder of the weights
shipped in the package and the metadata JSON beside each, the tag of cifarzoo's own weights,
the files of a Hugging Face Hub repository or Hub-format folder, how a pretrained_cfg records
the weights' sha256, and :class:`PretrainedWeightsError`.

Loading the weights is :mod:`cifarzoo.models`' job (through timm); this module imports neither
torch nor timm, so that writing weights (:mod:`cifarzoo.checkpoint`) and reading run folders
(:mod:`cifarzoo.runs`) share its names without importing the models.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_TAG",
    "HF_CONFIG_FILE",
    "HF_WEIGHTS_FILE",
    "PACKAGED_WEIGHTS_DIR",
    "SHA256_NOTE",
    "TAG_RECIPES",
    "WEIGHTS_FILE_SUFFIXES",
    "ChecksumError",
    "PretrainedWeightsError",
    "WeightsEntry",
    "list_weights",
    "read_training_record",
    "read_weights_meta",
    "shipped_weights",
    "weights_name",
    "weights_tags",
]

#: The folder of the weights shipped inside the package (``cifarzoo/weights``, where the package
#: is installed): ``<arch>.<tag>.safetensors`` + ``<arch>.<tag>.json`` (:func:`weights_name`).
#:
#: :meta hide-value:
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Tag of cifarzoo's own CIFAR-10 weights (``cifar_resnet20.c10``); an architecture's weights of
#: this tag are its default ones (timm's first pretrained tag) when they load, else those of the
#: first tag in alphabetical order whose weights load (:func:`list_weights`).
DEFAULT_TAG = "c10"
#: What the recipe of each tag's weights is, in words (the model table's note): the recipes
#: themselves, and how they differ, are in the weights' metadata.
TAG_RECIPES = {
    DEFAULT_TAG: "cifarzoo's own recipe, tuned for each architecture",
    "lab": "the lab's recipe, one for all the networks of its four-network comparison",
}
#: A pretrained_cfg's expected weights digest is kept in its ``notes`` as ``"sha256:<hex>"``:
#: ``PretrainedCfg`` takes no custom fields, and ``notes`` travels with ``model.pretrained_cfg``
#: and with a Hub folder's ``config.json``.
SHA256_NOTE = "sha256:"
#: The only weights file cifarzoo loads from a Hub repository or a Hub-format folder.
HF_WEIGHTS_FILE = "model.safetensors"
#: The timm config of a Hub repository or Hub-format folder.
HF_CONFIG_FILE = "config.json"


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be found, read or trusted. The message says how to fix it."""


class ChecksumError(PretrainedWeightsError, ValueError):
    """A weights file (or its training record) does not match its expected sha256, or its
    ``.sha256`` sidecar is not one."""


#: The files of one architecture's weights of one tag, after :func:`weights_name`: the weights,
#: their metadata (sha256, accuracies, recipe) and the training run's record (per-epoch history
#: and gradient norms, named with its sha256 in the metadata's ``record``).
WEIGHTS_FILE_SUFFIXES = (".safetensors", ".json", ".record.json")


def weights_name(arch: str, tag: str) -> str:
    """The file name, without extension, of an architecture's weights of one tag
    (``resnet20.c10``: ``resnet20.c10.json`` and ``resnet20.c10.safetensors``), which is timm's
    pretrained name without its ``cifar_`` prefix."""
    return f"{arch}.{tag}"


@dataclass(frozen=True)
class WeightsEntry:
    """One architecture's weights of one tag, as their metadata JSON
    (``<arch>.<tag>.json``) describes them."""

    arch: str
    tag: str
    meta: dict[str, Any]
    #: The architecture's default weights: timm's default pretrained tag, loaded by
    #: ``create_model(arch, pretrained=True)`` (see :func:`list_weights`).
    default: bool

    @property
    def name(self) -> str:
        """``ARCH.TAG`` (:func:`weights_name`)."""
        return weights_name(self.arch, self.tag)

    @property
    def loaded_as(self) -> str:
        """The name that loads these weights: ``ARCH`` for the architecture's default ones,
        ``ARCH.TAG`` for the others."""
        return self.arch if self.default else self.name

    @property
    def source(self) -> Literal["package", "hub", "unpublished"]:
        """Where the weights load from: a file shipped beside the metadata, a Hub repository,
        or nowhere (recorded, not published)."""
        return _source(self.meta)

    @property
    def loads(self) -> bool:
        """Whether the weights load (shipped, or published on the Hub)."""
        return self.source != "unpublished"

    @property
    def shipped(self) -> bool:
        """Whether the weights file ships beside the metadata."""
        return self.source == "package"


def _source(meta: dict[str, Any]) -> Literal["package", "hub", "unpublished"]:
    if meta.get("file"):
        return "package"
    return "hub" if meta.get("hf_hub_id") else "unpublished"


def list_weights(
    weights_dir: str | os.PathLike[str] | None = None, *, arch: str | None = None
) -> list[WeightsEntry]:
    """Every weights whose metadata is in ``weights_dir`` (default: the package's), or only
    those of ``arch``: sorted by architecture, each architecture's default weights first, then
    its other tags in alphabetical order. The default is the first weights that load,
    :data:`DEFAULT_TAG` before the others (else the first tag): the order timm's pretrained
    tags get, whose first is the default."""
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(folder.glob(f"{glob.escape(arch) if arch else '*'}.*.json")):
        name_arch, _, tag = path.name.removesuffix(".json").partition(".")
        if tag and "." not in tag:  # not a training record (ARCH.TAG.record.json)
            meta: dict[str, Any] = json.loads(path.read_text())
            found.setdefault(name_arch, []).append((tag, meta))
    entries = []
    for name_arch, tagged in sorted(found.items()):
        tagged.sort(key=lambda item: (item[0] != DEFAULT_TAG, item[0]))
        loading = [tag for tag, meta in tagged if _source(meta) != "unpublished"]
        default = (loading or [tagged[0][0]])[0]
        tagged.sort(key=lambda item: item[0] != default)
        entries += [WeightsEntry(name_arch, tag, meta, tag == default) for tag, meta in tagged]
    return entries


def weights_tags(arch: str, weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The tags of the weights of ``arch`` (as :func:`cifarzoo.list_models` names it) in
    ``weights_dir`` (default: the package's), the default one first (:func:`list_weights`)."""
    return [entry.tag for entry in list_weights(weights_dir, arch=arch)]


def shipped_weights(weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The names (``ARCH.TAG``, :func:`weights_name`) of the weights whose file is in
    ``weights_dir`` (default: the package's), sorted: those whose metadata names a ``file``,
    not those published on the Hub only or recorded unpublished."""
    return sorted(entry.name for entry in list_weights(weights_dir) if entry.shipped)


def read_weights_meta(
    arch: str, weights_dir: str | os.PathLike[str] | None = None, tag: str | None = None
) -> dict[str, Any] | None:
    """The metadata JSON of an architecture's shipped or published weights of ``tag`` (default:
    its default weights; ``<weights_dir>/<arch>.<tag>.json``, ``arch`` as
    :func:`cifarzoo.list_models` names it), or ``None`` if it has none."""
    if tag is None:
        return next((e.meta for e in list_weights(weights_dir, arch=arch) if e.default), None)
    path = Path(weights_dir or PACKAGED_WEIGHTS_DIR) / f"{weights_name(arch, tag)}.json"
    if not path.is_file():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def read_training_record(
    arch: str, *, tag: str | None = None, weights_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """The training record shipped with an architecture's weights of ``tag`` (default: its
    default weights): ``history`` (per-epoch curves, as ``history.json`` of a ``cifarzoo
    train`` run) and ``grad_flow`` (its gradient norms, or ``None``), checked against the sha256
    in their metadata; ``None`` for weights shipped without one.

    Raises:
        PretrainedWeightsError: the record is missing.
        ChecksumError: the record does not match its sha256.
    """
    meta = read_weights_meta(arch, weights_dir, tag)
    entry = (meta or {}).get("record")
    if not entry:
        return None
    path = Path(weights_dir or PACKAGED_WEIGHTS_DIR) / str(entry["file"])
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{path} is missing: the metadata of {arch}'s weights names it. Reinstall cifarzoo."
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != str(entry["sha256"]).lower():
        raise ChecksumError(
            f"{path} does not match the sha256 its weights' metadata records: the file is "
            "damaged or was changed. Reinstall cifarzoo."
        )
    record: dict[str, Any] = json.loads(data)
    return record
