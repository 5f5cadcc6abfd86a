"""Registration of cifarzoo models with timm, cifarzoo's own model lookup, and the checks
cifarzoo adds around timm's pretrained-weights loading.

Every factory is exposed twice: under its plain name in cifarzoo (``cifarzoo.resnet18``) and in
timm's registry under ``cifar_<name>`` (``timm.create_model('cifar_resnet18')``). The prefix is
required: timm already owns ``resnet18``, ``densenet121`` and ``seresnet18`` (ImageNet models).

Weights are safetensors only. timm resolves the source and does the download and caching; before
that, :func:`build` refuses what cifarzoo can tell is wrong (no weights, a missing or pickle file,
a sha256 mismatch) with an error that says how to fix it, and it turns the Hub's errors (offline,
empty cache, missing repository) into the same kind of error.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import timm
from timm.models import build_model_with_cfg, register_model, resolve_pretrained_cfg
from torch import nn

from ..checkpoint import sha256_file
from ..constants import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE, NUM_CLASSES

__all__ = [
    "DEFAULT_TAG",
    "HF_WEIGHTS_FILE",
    "PACKAGED_WEIGHTS_DIR",
    "SHA256_NOTE",
    "TIMM_PREFIX",
    "PretrainedWeightsError",
    "build",
    "cfg_sha256",
    "cifar_cfg",
    "create_model",
    "list_models",
    "read_sha256_sidecar",
    "read_weights_meta",
    "register",
    "sha256_file",
    "verify_sha256",
    "weight_cfgs",
]

TIMM_PREFIX = "cifar_"
#: The folder of the weights shipped inside the package: ``<arch>.safetensors`` + ``<arch>.json``.
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Tag of cifarzoo's own CIFAR-10 weights (``cifar_resnet20.c10``), unless their JSON names another.
DEFAULT_TAG = "c10"
#: A pretrained_cfg's expected weights digest is kept in its ``notes`` as ``"sha256:<hex>"``:
#: ``PretrainedCfg`` takes no custom fields, and ``notes`` travels with ``model.pretrained_cfg``
#: and with a Hub folder's ``config.json``.
SHA256_NOTE = "sha256:"
#: The only weights file cifarzoo loads from a Hub repository or a Hub-format folder.
HF_WEIGHTS_FILE = "model.safetensors"

_SOURCE_KEYS = ("file", "url", "hf_hub_id", "hf_hub_filename", "state_dict")
_HEX64 = re.compile(r"[0-9a-f]{64}")

ModelT = TypeVar("ModelT", bound=nn.Module)
Factory = Callable[..., nn.Module]
FactoryT = TypeVar("FactoryT", bound=Factory)

_FACTORIES: dict[str, Factory] = {}


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
        "license": "apache-2.0",
    }
    cfg.update(overrides)
    return cfg


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be found, read or trusted. The message says how to fix it."""


def read_sha256_sidecar(path: str | os.PathLike[str]) -> str | None:
    """The digest in ``PATH.sha256`` (``sha256sum`` format, ``<hex>  <name>``, as written by
    ``cifarzoo train``), or ``None`` when there is no sidecar."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text().strip()
    digest = text.split()[0].lower() if text else ""
    if not _HEX64.fullmatch(digest):
        raise PretrainedWeightsError(
            f"{sidecar} does not hold a sha256 digest (expected '<64 hex digits>  {path.name}', "
            f"got {text[:80]!r}). Recreate it with `sha256sum {path.name} > {sidecar.name}` if "
            "you trust the file."
        )
    return digest


def verify_sha256(path: str | os.PathLike[str], expected: str | None = None) -> str:
    """Check ``path`` against its ``PATH.sha256`` sidecar (if any) and ``expected`` (if given);
    return the file's digest. Raises :class:`PretrainedWeightsError` on a mismatch."""
    path = Path(path)
    actual = sha256_file(path)
    checks = [(read_sha256_sidecar(path), f"its sidecar {path.name}.sha256")]
    if expected:
        checks.append((expected.lower(), "the sha256 recorded in the model's pretrained_cfg"))
    for want, where in checks:
        if want is not None and want != actual:
            raise PretrainedWeightsError(
                f"sha256 mismatch for {path}: the file hashes to {actual}, but {where} says "
                f"{want}. The file is corrupt, truncated or not the weights it claims to be; "
                "download or copy it again (or delete the cached copy so it is fetched anew)."
            )
    return actual


def cfg_sha256(cfg: dict[str, Any]) -> str | None:
    """The expected weights sha256 recorded in a pretrained_cfg's ``notes``, if any."""
    for note in cfg.get("notes") or ():
        if isinstance(note, str) and note.startswith(SHA256_NOTE):
            return note[len(SHA256_NOTE) :].strip().lower()
    return None


def read_weights_meta(
    arch: str, weights_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """The metadata JSON of an architecture's shipped or published weights
    (``<weights_dir>/<arch>.json``), or ``None`` if it has none."""
    path = Path(weights_dir or PACKAGED_WEIGHTS_DIR) / f"{_strip_prefix(arch)}.json"
    if not path.is_file():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def weight_cfgs(
    archs: Iterable[str],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """``{'cifar_<arch>[.tag]': cfg}`` for ``generate_default_cfgs``: :func:`cifar_cfg` with
    ``overrides``, wired to the architecture's weights when ``<weights_dir>/<arch>.json`` exists.

    Shipped weights (``"file"`` in the JSON) are loaded from the package folder with no network;
    published ones (``"hf_hub_id"``, pinned as ``org/name@<commit>``) through timm's Hub loader.
    The JSON's ``sha256`` goes into the cfg's ``notes`` and is checked before loading.
    """
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    cfgs: dict[str, Any] = {}
    for arch in archs:
        meta = read_weights_meta(arch, folder)
        source: dict[str, Any] = {}
        if meta is not None:
            if meta.get("file"):
                source["file"] = str(folder / str(meta["file"]))
            if meta.get("hf_hub_id"):
                source["hf_hub_id"] = str(meta["hf_hub_id"])
                source["hf_hub_filename"] = HF_WEIGHTS_FILE
        if meta is None or not source:
            cfgs[TIMM_PREFIX + arch] = cifar_cfg(**overrides)
            continue
        if meta.get("sha256"):
            source["notes"] = (SHA256_NOTE + str(meta["sha256"]).lower(),)
        tag = str(meta.get("tag") or DEFAULT_TAG)
        cfgs[f"{TIMM_PREFIX}{arch}.{tag}"] = cifar_cfg(**{**overrides, **source})
    return cfgs


def register(fn: FactoryT) -> FactoryT:
    """Register a factory with timm as ``cifar_<name>`` and with cifarzoo under ``<name>``.

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
    _FACTORIES[fn.__name__] = fn
    return fn


def build(
    model_cls: Callable[..., ModelT], variant: str, pretrained: bool = False, **kwargs: Any
) -> ModelT:
    """Build ``model_cls`` through timm, which resolves the pretrained_cfg of ``variant``
    (``cifar_<name>[.tag]``), passes ``num_classes``/``in_chans`` and loads the weights.

    ``weights=PATH`` (a ``.safetensors`` file, or a folder holding ``model.safetensors``) loads
    local weights: it is short for ``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)``.
    With weights to load, the source is checked first (see :func:`_check_source`); loading is
    strict, except that a ``num_classes`` other than the weights' drops their classifier.
    """
    weights = kwargs.pop("weights", None)
    if weights is not None:
        path = Path(weights)
        if path.is_dir():
            path = path / HF_WEIGHTS_FILE
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
        overlay["file"] = str(path)
        kwargs["pretrained_cfg_overlay"] = overlay
        pretrained = True
    if not pretrained:
        return build_model_with_cfg(model_cls, variant, False, **kwargs)

    cfg = _resolve_cfg(
        variant, kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    )
    name = _cfg_name(cfg, variant)
    load_from = _check_source(cfg, name)
    try:
        model = build_model_with_cfg(model_cls, variant, True, pretrained_cfg=cfg, **kwargs)
    except PretrainedWeightsError:
        raise
    except Exception as err:
        raise _explain_load_error(err, cfg, name, load_from, kwargs.get("cache_dir")) from err
    if load_from == "hf-hub":
        _verify_hub_file(cfg, name, kwargs.get("cache_dir"))
    return model


def _resolve_cfg(
    variant: str, pretrained_cfg: Any, overlay: dict[str, Any] | None
) -> dict[str, Any]:
    """timm's resolution of ``variant``'s pretrained_cfg (registry tag, dict or overlay), except
    that a weights source given in ``overlay`` replaces the registry's sources (timm would still
    prefer a registry ``file`` over an overlaid ``hf_hub_id``) and drops the registry's expected
    sha256: that digest belongs to the registry's weights, not to the user's."""
    overlay = dict(overlay or {})
    if any(overlay.get(k) is not None for k in _SOURCE_KEYS):
        for key in _SOURCE_KEYS:
            overlay.setdefault(key, None)
    resolved = resolve_pretrained_cfg(variant, pretrained_cfg, overlay)
    if any(overlay.get(k) is not None for k in _SOURCE_KEYS) and "notes" not in overlay:
        notes: Any = tuple(n for n in resolved.notes or () if not str(n).startswith(SHA256_NOTE))
        resolved = dataclasses.replace(resolved, notes=notes or None)
    cfg: dict[str, Any] = resolved.to_dict()  # type: ignore[no-untyped-call,unused-ignore]
    # A config.json (hf-hub:, local-dir:) gives lists; timm passes input_size on as img_size.
    for key in ("input_size", "test_input_size", "min_input_size", "mean", "std", "pool_size"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    return cfg


def _cfg_name(cfg: dict[str, Any], variant: str) -> str:
    arch = str(cfg.get("architecture") or variant)
    return f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch


def _how_to_load_local(arch: str) -> str:
    short = _strip_prefix(arch.split(".")[0])
    return (
        f"To use weights you have, pass a local safetensors file: cifarzoo.{short}(weights=PATH), "
        f"cifarzoo.create_model({short!r}, weights=PATH) or timm.create_model("
        f"{arch.split('.')[0]!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)); "
        "or a Hub-format folder: "
        "timm.create_model('local-dir:FOLDER'). `cifarzoo train` writes such a file "
        "(model.safetensors)."
    )


def _check_source(cfg: dict[str, Any], name: str) -> str:
    """Where timm will load ``cfg``'s weights from; refuses what cifarzoo can tell is wrong
    before timm reads anything: no source, a URL (pickle), a missing or non-safetensors file,
    a sha256 mismatch. Also pins the Hub file name to ``model.safetensors`` (timm would
    otherwise fall back to a pickle ``pytorch_model.bin``)."""
    source = cfg.get("source") or ""
    expected = cfg_sha256(cfg)
    if source == "hf-hub" or (
        source != "local-dir"
        and not cfg.get("state_dict")
        and not cfg.get("file")
        and cfg.get("hf_hub_id")
    ):
        cfg.setdefault("hf_hub_filename", HF_WEIGHTS_FILE)
        if not str(cfg["hf_hub_filename"]).endswith(".safetensors"):
            raise PretrainedWeightsError(
                f"{name}: cifarzoo loads safetensors weights only, not {cfg['hf_hub_filename']!r} "
                f"from {cfg['hf_hub_id']}."
            )
        return "hf-hub"
    if source == "local-dir":
        folder = Path(str(cfg.get("file") or ""))
        path = folder / HF_WEIGHTS_FILE
        if not path.is_file():
            raise PretrainedWeightsError(
                f"{name}: no {HF_WEIGHTS_FILE} in the folder {folder}. A Hub-format folder holds "
                f"config.json and {HF_WEIGHTS_FILE} (cifarzoo loads safetensors only, never "
                "pickle files such as pytorch_model.bin); `cifarzoo publish --dry-run` builds one."
            )
        verify_sha256(path, expected)
        return "local-dir"
    if cfg.get("state_dict"):
        return "state_dict"
    if cfg.get("file"):
        path = Path(str(cfg["file"]))
        if not path.is_file():
            packaged = path.parent == PACKAGED_WEIGHTS_DIR
            raise PretrainedWeightsError(
                f"{name}: weights file not found: {path}. "
                + (
                    "The package's shipped weights are missing; reinstall cifarzoo."
                    if packaged
                    else "Check the path (a `cifarzoo train` run writes RUN/model.safetensors)."
                )
            )
        if path.suffix != ".safetensors":
            raise PretrainedWeightsError(
                f"{name}: {path} is not a .safetensors file. cifarzoo loads safetensors weights "
                "only, never pickle checkpoints (.pt/.pth/.bin), which can run code when read. "
                "Convert a checkpoint you trust with: safetensors.torch.save_file("
                "torch.load(PATH, weights_only=True), 'model.safetensors')."
            )
        verify_sha256(path, expected)
        return "file"
    if cfg.get("url"):
        raise PretrainedWeightsError(
            f"{name}: cifarzoo does not load weights from a URL ({cfg['url']}): timm would read "
            "it with pickle. Download the safetensors file and pass it as weights=PATH."
        )
    raise PretrainedWeightsError(
        f"{name} has no published pretrained weights yet "
        "(cifarzoo.list_models(pretrained=True) lists the models that do). "
        + _how_to_load_local(name)
        + " Or use pretrained=False for a randomly initialized model."
    )


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    names = ("EntryNotFoundError", "HfHubHTTPError", "OfflineModeIsEnabled", "HFValidationError")
    found = [getattr(errors, n, None) for n in names]
    return tuple(e for e in found if isinstance(e, type))


def _explain_load_error(
    err: Exception, cfg: dict[str, Any], name: str, load_from: str, cache_dir: Any
) -> Exception:
    """A :class:`PretrainedWeightsError` for the errors users hit; other errors unchanged."""
    if load_from == "hf-hub" and isinstance(err, _hub_errors()):
        from huggingface_hub import constants

        repo = cfg.get("hf_hub_id")
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        cache = cache_dir or constants.HF_HUB_CACHE
        where = f"the cache {cache}"
        offline = (
            " Offline mode is on (HF_HUB_OFFLINE=1), so only the local cache is searched."
            if constants.HF_HUB_OFFLINE
            else ""
        )
        return PretrainedWeightsError(
            f"{name}: could not get {cfg.get('hf_hub_filename', HF_WEIGHTS_FILE)} from the Hugging "
            f"Face Hub repository {repo} ({type(err).__name__}: {first_line}). "
            f"It is not in {where}.{offline} Connect once to download it (it is cached after), "
            "or copy model.safetensors from a machine that has it and load it locally. "
            + _how_to_load_local(name)
        )
    if isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err):
        return PretrainedWeightsError(
            f"{name}: the weights do not fit this model (were they trained for another "
            f"architecture or number of classes?). {err}"
        )
    if load_from in ("file", "local-dir") and type(err).__name__ == "SafetensorError":
        return PretrainedWeightsError(
            f"{name}: {cfg.get('file')} is not a readable safetensors file ({err}). It is "
            "corrupt or not safetensors; copy or export it again."
        )
    return err


def _verify_hub_file(cfg: dict[str, Any], name: str, cache_dir: Any) -> None:
    """Check the file timm just loaded from the Hub cache against the cfg's sha256."""
    expected = cfg_sha256(cfg)
    if not expected:
        return
    from huggingface_hub import try_to_load_from_cache

    repo_id, _, revision = str(cfg["hf_hub_id"]).partition("@")
    path = try_to_load_from_cache(
        repo_id, str(cfg["hf_hub_filename"]), cache_dir=cache_dir, revision=revision or None
    )
    if not isinstance(path, str):
        raise PretrainedWeightsError(
            f"{name}: loaded weights from {cfg['hf_hub_id']} but could not find the cached file "
            "to check its sha256; clear the cache entry and try again."
        )
    try:
        verify_sha256(path, expected)
    except PretrainedWeightsError as err:
        raise PretrainedWeightsError(
            f"{name}: {err} Remove the cached copy (huggingface-cli delete-cache) to fetch it anew."
        ) from None


def _strip_prefix(name: str) -> str:
    return name[len(TIMM_PREFIX) :] if name.startswith(TIMM_PREFIX) else name


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Names of cifarzoo models (without the ``cifar_`` prefix) matching a glob ``pattern``.

    With ``pretrained=True`` only models with published weights are listed.
    """
    pattern = _strip_prefix(pattern)
    if pretrained:
        with_weights = {
            _strip_prefix(n).split(".")[0]
            for n in timm.list_models(TIMM_PREFIX + "*", pretrained=True)
        }
        names = [n for n in _FACTORIES if n in with_weights]
    else:
        names = list(_FACTORIES)
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Create a cifarzoo model by name, with or without the ``cifar_`` prefix and with an
    optional weights tag (``resnet20.tag``). Keyword arguments go to the model (``num_classes``,
    ``in_chans``, ``drop_rate``...), to timm (``pretrained_cfg_overlay``, ``cache_dir``...) and
    to cifarzoo: ``weights=PATH`` loads a local safetensors file or Hub-format folder.
    """
    arch, _, tag = _strip_prefix(name).partition(".")
    if arch not in _FACTORIES:
        close = difflib.get_close_matches(arch, list(_FACTORIES), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown cifarzoo model {name!r}.{hint} "
            "See cifarzoo.list_models() (or `cifarzoo list`) for all names."
        )
    timm_name = TIMM_PREFIX + arch + (f".{tag}" if tag else "")
    return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
