"""Registration of cifarzoo models with timm, cifarzoo's model names as a view of timm's
registry, and building a model through timm with its pretrained weights.

Every factory is exposed twice: under its plain name in cifarzoo (``cifarzoo.resnet18``) and in
timm's registry under ``cifar_<name>`` (``timm.create_model('cifar_resnet18')``). The prefix is
required: timm already owns ``resnet18``, ``densenet121`` and ``seresnet18`` (ImageNet models).
timm's registry is the only one: cifarzoo's names are its ``cifar_*`` models without the prefix
(:func:`list_models`), and their weights its pretrained_cfgs.

Weights are safetensors only. timm resolves the source and loads it; before it does,
:func:`build` checks the file that source stands for (:mod:`._loading`: present,
safetensors, its sha256), and it explains the errors users hit while loading.
"""

from __future__ import annotations

import difflib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import timm
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ..pretrained import (
    HF_CONFIG_FILE,
    HF_WEIGHTS_FILE,
    PretrainedWeightsError,
    list_weights,
)
from ._base import CifarModel
from ._cfgs import TIMM_PREFIX, cifar_cfg, strip_prefix, weight_cfgs
from ._loading import (
    checked_weights_file,
    explain_load_error,
    hub_file,
    resolve_cfg,
    use_local_weights,
)
from ._weights import DEFAULT_WEIGHTS, Weights, get_weights

# The model modules declare their cfgs with weight_cfgs (or cifar_cfg) next to @register.
__all__ = [
    "TIMM_PREFIX",
    "build",
    "cifar_cfg",
    "create_model",
    "list_models",
    "model_arg_names",
    "register",
    "weight_cfgs",
]

_MODEL_SOURCES = {"hf-hub": "hf-hub", "hf_hub": "hf-hub", "local-dir": "local-dir"}

ModelT = TypeVar("ModelT", bound=nn.Module)
Factory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=Factory)


def register(fn: FactoryT) -> FactoryT:
    """Register a factory with timm as ``cifar_<name>``: cifarzoo lists it as ``<name>``.

    The factory's module must define ``default_cfgs`` (from ``generate_default_cfgs``) with a
    ``cifar_<name>`` entry above the decorated function: timm reads it at registration.
    """
    timm_name = TIMM_PREFIX + fn.__name__

    @functools.wraps(fn)
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return fn(pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name
    # timm lists the entrypoint in the module's __all__, so the module must really have it.
    setattr(sys.modules[fn.__module__], timm_name, entrypoint)
    register_model(entrypoint)
    return fn


def build(
    model_cls: Callable[..., ModelT],
    variant: str,
    pretrained: bool = False,
    *,
    feature_points: int,
    default_feature_cfg: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelT:
    """Build ``model_cls`` through timm, which resolves the pretrained_cfg of ``variant``
    (``cifar_<name>[.tag]``), passes ``num_classes``/``in_chans`` and loads the weights.

    ``feature_points``: how many feature points the model has; timm's ``features_only`` wrapper
    returns all of them by default (timm's own default assumes five). ``default_feature_cfg``:
    the model's other settings of that wrapper. A ``feature_cfg`` in ``kwargs`` overrides both,
    key by key.

    ``weights="DEFAULT"`` (torchvision's spelling) or a :class:`~cifarzoo.models.Weights`
    loads published weights, as ``pretrained=True`` does. ``weights=PATH`` loads local
    weights: a ``.safetensors`` file, a run folder holding
    ``model.safetensors`` (both checked against a ``.sha256`` sidecar if there is one), or a
    Hub-format folder (``config.json`` + ``model.safetensors``), which is read as timm reads
    ``local-dir:PATH``: its config is the pretrained_cfg, and the sha256 recorded there is checked.
    With weights to load, their file is checked first (see
    :func:`~cifarzoo.models._loading.checked_weights_file`); loading is strict, except that a
    ``num_classes`` other than the weights' drops their classifier.
    """
    every_point = dict(out_indices=tuple(range(feature_points)))
    kwargs["feature_cfg"] = {
        **every_point,
        **(default_feature_cfg or {}),
        **(kwargs.get("feature_cfg") or {}),
    }
    weights = kwargs.pop("weights", None)
    if weights == DEFAULT_WEIGHTS or isinstance(weights, Weights):
        kwargs["pretrained_cfg"] = _published_tag(weights, variant)
        pretrained = True
    elif weights is not None:
        use_local_weights(Path(weights), variant, kwargs)
        pretrained = True
    if not pretrained:
        return _named(build_model_with_cfg(model_cls, variant, False, **kwargs), variant)

    cfg = resolve_cfg(
        variant, kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    )
    arch = str(cfg.get("architecture") or variant)
    name = f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch
    reference = cfg.get("file")
    path = checked_weights_file(cfg, name, kwargs.get("cache_dir"))
    try:
        model = build_model_with_cfg(model_cls, variant, True, pretrained_cfg=cfg, **kwargs)
    except Exception as err:
        explained = explain_load_error(err, path, name)
        if explained is None:
            raise
        raise explained from err
    built_cfg = getattr(model, "pretrained_cfg", None)
    if reference is not None and isinstance(built_cfg, dict):
        built_cfg["file"] = reference  # the package's reference, not this machine's path
    return _named(model, variant)


def _published_tag(weights: str | Weights, variant: str) -> str | None:
    """The registry tag of ``weights="DEFAULT"`` or of a :class:`Weights` (which must be
    ``variant``'s)."""
    if not isinstance(weights, Weights):
        return get_weights(variant).name.partition(".")[2] or None
    if weights.arch != strip_prefix(variant.partition(".")[0]):
        raise PretrainedWeightsError(
            f"weights={weights.name!r} are {weights.arch}'s, not {strip_prefix(variant)}'s; "
            f"load them with cifarzoo.{weights.arch}(weights=...)"
        )
    return weights.name.partition(".")[2] or None


def _named(model: ModelT, variant: str) -> ModelT:
    """Let the model's errors name it as registered (``cifar_seresnet20``), not by its class."""
    if isinstance(model, CifarModel):
        model.arch_name = variant.partition(".")[0]
    return model


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Names of cifarzoo models (without the ``cifar_`` prefix) matching a glob ``pattern``,
    sorted naturally (``resnet20`` before ``resnet110``): timm's ``cifar_*`` models.

    With ``pretrained=True`` only models with published weights are listed.
    """
    names = timm.list_models(
        TIMM_PREFIX + strip_prefix(pattern), pretrained=pretrained, include_tags=False
    )
    return [strip_prefix(name) for name in names]


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Create a cifarzoo model by name, with or without the ``cifar_`` prefix and with an
    optional weights tag (``resnet20.tag``). Keyword arguments go to the model (``num_classes``,
    ``in_chans``, ``drop_rate``...), to timm (``pretrained_cfg_overlay``, ``cache_dir``...) and
    to cifarzoo: ``weights=PATH`` loads a local safetensors file or Hub-format folder,
    ``weights="DEFAULT"`` the published weights.

    ``hf-hub:ORG/NAME[@revision]`` and ``local-dir:FOLDER`` name a Hub repository or Hub-format
    folder, as in ``timm.create_model``: their ``config.json`` gives the architecture, which must
    be a cifarzoo one, and with ``pretrained=True`` their ``model.safetensors`` is loaded.
    """
    source, sep, ident = name.partition(":")
    if sep and source.lower() in _MODEL_SOURCES:
        return _create_from_source(_MODEL_SOURCES[source.lower()], ident, pretrained, kwargs)
    arch, _, tag = strip_prefix(name).partition(".")
    if not timm.is_model(TIMM_PREFIX + arch):
        close = difflib.get_close_matches(arch, list_models(), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown cifarzoo model {name!r}.{hint} "
            "See cifarzoo.list_models() (or `cifarzoo list`) for all names."
        )
    if tag:
        _check_tag(arch, tag)
    timm_name = TIMM_PREFIX + arch + (f".{tag}" if tag else "")
    return timm.create_model(timm_name, pretrained=pretrained, **kwargs)


def model_arg_names(name: str) -> list[str]:
    """The constructor arguments of the model ``name`` (its class's keyword arguments, e.g.
    ``conv_init`` or ``zero_init_residual``), which :func:`create_model` passes on, sorted."""
    import inspect

    import torch

    with torch.device("meta"):  # no memory, no initialisation
        probe = create_model(strip_prefix(name).partition(".")[0])
    parameters = inspect.signature(type(probe).__init__).parameters
    return sorted(k for k in parameters if k != "self")


def _check_tag(arch: str, tag: str) -> None:
    """Refuse a weights tag ``arch`` has no weights of, naming the tags it has."""
    tags = [entry.tag for entry in list_weights(arch=arch) if entry.loads]
    if tag in tags:
        return
    if not tags:
        raise ValueError(
            f"{arch} has no pretrained weights, so no weights tagged {tag!r}: create it as "
            f"{arch!r} (`cifarzoo list --pretrained` lists the models with weights)."
        )
    listed = ", ".join(
        f"{t} (the default: {arch})" if i == 0 else f"{t} ({arch}.{t})" for i, t in enumerate(tags)
    )
    raise ValueError(f"{arch} has no weights tagged {tag!r}; its weights: {listed}.")


def _create_from_source(
    source: str, ident: str, pretrained: bool, kwargs: dict[str, Any]
) -> nn.Module:
    """``create_model`` for ``hf-hub:``/``local-dir:`` names: read the config first, so that a
    missing one (an empty cache offline, a wrong folder) or a non-cifarzoo architecture gets a
    clear error, then let timm build from the same (now cached) config."""
    name = f"{source}:{ident}"
    for key in ("weights", "pretrained_cfg"):
        if kwargs.get(key) is not None:
            raise ValueError(
                f"{name!r} names its weights and config itself; drop {key}= (or create the "
                "model by its architecture name to pass one)."
            )
    if not ident:
        raise ValueError(f"{name!r} has nothing after {source + ':'!r}")
    if source == "local-dir":
        config_path = Path(ident) / HF_CONFIG_FILE
        if not config_path.is_file():
            raise PretrainedWeightsError(
                f"{name}: no {HF_CONFIG_FILE} in {ident}. A Hub-format folder holds "
                f"{HF_CONFIG_FILE} and {HF_WEIGHTS_FILE}; `cifarzoo publish --dry-run --out "
                "FOLDER` builds one. For a bare safetensors file or a `cifarzoo train` run "
                "folder, use create_model(ARCH, weights=PATH)."
            )
    else:
        config_path = hub_file(ident, HF_CONFIG_FILE, name, kwargs.get("cache_dir"))
    try:
        config = json.loads(config_path.read_text())
        arch = str(config["architecture"])
    except (ValueError, KeyError, TypeError) as err:
        raise PretrainedWeightsError(
            f"{name}: {config_path} is not a timm model config ({type(err).__name__}: {err})."
        ) from err
    if not (arch.startswith(TIMM_PREFIX) and timm.is_model(arch)):
        raise PretrainedWeightsError(
            f"{name}: its {HF_CONFIG_FILE} names the architecture {arch!r}, which is not a "
            "cifarzoo model (cifar_*). Load it with timm.create_model if it is a timm model."
        )
    return timm.create_model(name, pretrained=pretrained, **kwargs)
