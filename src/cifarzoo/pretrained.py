"""cifarzoo's pretrained weights as the rest of the package names them: the folder of the weights
shipped in the package and the metadata JSON beside each, the tag of cifarzoo's own weights,
the files of a Hugging Face Hub repository or Hub-format folder, how a pretrained_cfg records
the weights' sha256, and :class:`PretrainedWeightsError`.

Loading the weights is :mod:`cifarzoo.models`' job (through timm); this module imports neither
torch nor timm, so that writing weights (:mod:`cifarzoo.checkpoint`) and reading run folders
(:mod:`cifarzoo.runs`) share its names without importing the models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TAG",
    "HF_CONFIG_FILE",
    "HF_WEIGHTS_FILE",
    "PACKAGED_WEIGHTS_DIR",
    "SHA256_NOTE",
    "PretrainedWeightsError",
    "read_weights_meta",
]

#: The folder of the weights shipped inside the package (``cifarzoo/weights``, where the package
#: is installed): ``<arch>.safetensors`` + ``<arch>.json``.
#:
#: :meta hide-value:
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Tag of cifarzoo's own CIFAR-10 weights (``cifar_resnet20.c10``), unless their JSON names another.
DEFAULT_TAG = "c10"
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


def read_weights_meta(
    arch: str, weights_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """The metadata JSON of an architecture's shipped or published weights
    (``<weights_dir>/<arch>.json``, ``arch`` as :func:`cifarzoo.list_models` names it), or
    ``None`` if it has none."""
    path = Path(weights_dir or PACKAGED_WEIGHTS_DIR) / f"{arch}.json"
    if not path.is_file():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta
