"""The private timm APIs cifarzoo relies on, in one place.

timm (up to 1.0.31 at least) has no public equivalent of these four:

- ``timm.models._builder._resolve_pretrained_source``: which source ``load_pretrained`` picks
  from a pretrained_cfg (:func:`pretrained_source`); cifarzoo checks that file before timm
  reads it, so both must pick the same one.
- ``timm.models._hub.load_model_config_from_path``: a Hub-format folder's ``config.json`` read
  as ``timm.create_model('local-dir:FOLDER')`` reads it (:func:`local_dir_config`).
- ``timm.models._features.feature_take_indices``: the feature points that
  ``forward_intermediates`` and ``prune_intermediate_layers`` take, as timm's models count them.
- ``timm.models._manipulate.MATCH_PREV_GROUP``: the ``group_matcher`` suffix that puts a layer
  in the group before it (layer-wise learning rate decay).

tests/test_timm_compat.py checks each against the installed timm (signature and behaviour) and
names the timm function that changed; this module is then the one to mend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timm.models._builder import _resolve_pretrained_source
from timm.models._features import feature_take_indices
from timm.models._hub import load_model_config_from_path
from timm.models._manipulate import MATCH_PREV_GROUP

__all__ = ["MATCH_PREV_GROUP", "feature_take_indices", "local_dir_config", "pretrained_source"]


def pretrained_source(cfg: dict[str, Any]) -> tuple[str, Any]:
    """Where timm will load the weights of the pretrained_cfg ``cfg`` from: ``(load_from,
    location)``, ``load_from`` being ``"state_dict"``, ``"file"``, ``"local-dir"`` (the folder),
    ``"hf-hub"`` (the repository, or ``(repository, filename)`` with ``hf_hub_filename``),
    ``"url"``, or ``""`` when the cfg names no weights."""
    load_from, location = _resolve_pretrained_source(cfg)
    return str(load_from), location


def local_dir_config(folder: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """``(pretrained_cfg, architecture, model_args)`` of the Hub-format folder ``folder``, from
    its ``config.json`` as ``timm.create_model('local-dir:FOLDER')`` reads it: the cfg's
    ``file`` is the folder and its ``source`` ``"local-dir"``.

    Raises:
        FileNotFoundError: the folder has no ``config.json``.
        ValueError, KeyError, TypeError, AttributeError: it is not a timm model config.
    """
    cfg, arch, model_args = load_model_config_from_path(folder)
    return dict(cfg), str(arch), dict(model_args or {})
