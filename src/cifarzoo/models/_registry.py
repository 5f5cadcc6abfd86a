"""Registration of cifarzoo models with timm, cifarzoo's own model lookup, and the checks
cifarzoo adds around timm's pretrained-weights loading.

Every factory is exposed twice: under its plain name in cifarzoo (``cifarzoo.resnet18``) and in
timm's registry under ``cifar_<name>`` (``timm.create_model('cifar_resnet18')``). The prefix is
required: timm already owns ``resnet18``, ``densenet121`` and ``seresnet18`` (ImageNet models).

Weights are safetensors only. timm resolves the source and does the download and caching; before
it reads any weights, :func:`build` refuses what cifarzoo can tell is wrong (no weights, a
missing or pickle file, a sha256 mismatch, also for a file from the Hub, which is fetched into
the cache and checked first) with an error that says how to fix it, and it turns the Hub's
errors (offline, empty cache, missing repository or revision, gated repository) into the same
kind of error.
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

from ..checkpoint import (
    ChecksumError,
    PretrainedWeightsError,
    read_sha256_sidecar,
    sha256_file,
    verify_sha256,
)
from ..constants import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE, NUM_CLASSES
from ._base import CifarModel

__all__ = [
    "DEFAULT_TAG",
    "HF_WEIGHTS_FILE",
    "PACKAGED_WEIGHTS_DIR",
    "SHA256_NOTE",
    "TIMM_PREFIX",
    "ChecksumError",
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
#: The timm config of a Hub repository or Hub-format folder.
HF_CONFIG_FILE = "config.json"

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SOURCE_KEYS = ("file", "url", "hf_hub_id", "hf_hub_filename", "state_dict")
_MODEL_SOURCES = {"hf-hub": "hf-hub", "hf_hub": "hf-hub", "local-dir": "local-dir"}

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
    pool_size: Callable[[str], tuple[int, int]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """``{'cifar_<arch>[.tag]': cfg}`` for ``generate_default_cfgs``: :func:`cifar_cfg` with
    ``overrides``, wired to the architecture's weights when ``<weights_dir>/<arch>.json`` exists.
    ``pool_size(arch)`` is the size of the architecture's unpooled features at 32x32 (timm's
    ``pool_size``).

    Shipped weights (``"file"`` in the JSON) are loaded from the package folder with no network;
    published ones (``"hf_hub_id"``, pinned as ``org/name@<commit>``) through timm's Hub loader.
    The JSON's ``sha256`` goes into the cfg's ``notes`` and is checked before loading.
    """
    folder = Path(weights_dir or PACKAGED_WEIGHTS_DIR)
    cfgs: dict[str, Any] = {}
    for arch in archs:
        arch_overrides = {**overrides, "pool_size": pool_size(arch) if pool_size else None}
        meta = read_weights_meta(arch, folder)
        source: dict[str, Any] = {}
        if meta is not None:
            if meta.get("file"):
                source["file"] = str(folder / str(meta["file"]))
            if meta.get("hf_hub_id"):
                source["hf_hub_id"] = str(meta["hf_hub_id"])
                source["hf_hub_filename"] = HF_WEIGHTS_FILE
        if meta is None or not source:
            cfgs[TIMM_PREFIX + arch] = cifar_cfg(**arch_overrides)
            continue
        if meta.get("sha256"):
            source["notes"] = (SHA256_NOTE + str(meta["sha256"]).lower(),)
        tag = str(meta.get("tag") or DEFAULT_TAG)
        cfgs[f"{TIMM_PREFIX}{arch}.{tag}"] = cifar_cfg(**{**arch_overrides, **source})
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

    ``weights=PATH`` loads local weights: a ``.safetensors`` file, a run folder holding
    ``model.safetensors`` (both checked against a ``.sha256`` sidecar if there is one), or a
    Hub-format folder (``config.json`` + ``model.safetensors``), which is read as timm reads
    ``local-dir:PATH``: its config is the pretrained_cfg, and the sha256 recorded there is checked.
    With weights to load, the source is checked first (see :func:`_check_source`); loading is
    strict, except that a ``num_classes`` other than the weights' drops their classifier.
    """
    weights = kwargs.pop("weights", None)
    if weights is not None:
        _use_local_weights(Path(weights), variant, kwargs)
        pretrained = True
    if not pretrained:
        return _named(build_model_with_cfg(model_cls, variant, False, **kwargs), variant)

    cache_dir = kwargs.get("cache_dir")
    cfg = _resolve_cfg(
        variant, kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    )
    name = _cfg_name(cfg, variant)
    load_from = _check_source(cfg, name)
    if load_from == "hf-hub":
        _fetch_and_verify_hub_file(cfg, name, cache_dir)
    try:
        model = build_model_with_cfg(model_cls, variant, True, pretrained_cfg=cfg, **kwargs)
    except PretrainedWeightsError:
        raise
    except Exception as err:
        raise _explain_load_error(err, cfg, name, load_from, cache_dir) from err
    return _named(model, variant)


def _named(model: ModelT, variant: str) -> ModelT:
    """Let the model's errors name it as registered (``cifar_seresnet20``), not by its class."""
    if isinstance(model, CifarModel):
        model.arch_name = variant.partition(".")[0]
    return model


def _use_local_weights(path: Path, variant: str, kwargs: dict[str, Any]) -> None:
    """Turn ``weights=PATH`` into timm arguments in ``kwargs``: a ``file`` overlay, or for a
    Hub-format folder its config as the pretrained_cfg (as ``local-dir:PATH`` does)."""
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if path.is_dir() and (path / HF_CONFIG_FILE).is_file():
        kwargs["pretrained_cfg"] = _hub_folder_cfg(path, variant, kwargs)
        for key in (*_SOURCE_KEYS, "source"):
            overlay.pop(key, None)  # weights= names the source
    else:
        if path.is_dir():
            path = path / HF_WEIGHTS_FILE
        overlay["file"] = str(path)
    kwargs["pretrained_cfg_overlay"] = overlay


def _hub_folder_cfg(folder: Path, variant: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The pretrained_cfg of a Hub-format folder, parsed by timm's ``local-dir:`` reader; its
    ``model_args`` become defaults in ``kwargs``, as ``timm.create_model`` makes them."""
    from timm.models._hub import load_model_config_from_path

    try:
        cfg, arch, model_args = load_model_config_from_path(folder)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise PretrainedWeightsError(
            f"{folder / HF_CONFIG_FILE} is not a timm model config ({type(err).__name__}: {err}). "
            "`cifarzoo publish --dry-run --out FOLDER` builds a valid Hub-format folder."
        ) from err
    base = variant.split(".")[0]
    if arch != base:
        raise PretrainedWeightsError(
            f"{folder} holds weights for {arch} (its {HF_CONFIG_FILE} says so), not {base}. "
            f"Load it as the model it is: cifarzoo.create_model('local-dir:{folder}', "
            "pretrained=True)."
        )
    for key, value in (model_args or {}).items():
        kwargs.setdefault(key, value)
    result: dict[str, Any] = cfg
    return result


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
    if ":" in arch:  # hf-hub:ORG/NAME, local-dir:FOLDER: the architecture is not known
        return (
            "To use weights you have, pass a local safetensors file with the model's "
            "architecture (`cifarzoo list`): cifarzoo.create_model(ARCH, weights=PATH), e.g. "
            "cifarzoo.create_model('resnet20', weights='model.safetensors'); or a Hub-format "
            "folder (config.json + model.safetensors): cifarzoo.create_model("
            "'local-dir:FOLDER', pretrained=True). `cifarzoo train` writes such a file "
            "(model.safetensors)."
        )
    short = _strip_prefix(arch.split(".")[0])
    return (
        f"To use weights you have, pass a local safetensors file: cifarzoo.{short}(weights=PATH), "
        f"cifarzoo.create_model({short!r}, weights=PATH) or timm.create_model("
        f"{arch.split('.')[0]!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)); "
        f"or a Hub-format folder (config.json + model.safetensors): cifarzoo.{short}("
        "weights=FOLDER) or timm.create_model('local-dir:FOLDER', pretrained=True). "
        "`cifarzoo train` writes such a file (model.safetensors)."
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


def _fetch_and_verify_hub_file(cfg: dict[str, Any], name: str, cache_dir: Any) -> None:
    """Download (or find in the cache) the cfg's Hub weights file and check it against the cfg's
    sha256 before timm loads it. The cfg's ``hf_hub_id`` is then pinned to the commit the file
    came from, so that timm's own download reads the file checked here even if the branch moves
    in between."""
    from huggingface_hub import hf_hub_download

    repo_id, _, revision = str(cfg["hf_hub_id"]).partition("@")
    filename = str(cfg["hf_hub_filename"])
    try:
        path = Path(
            str(hf_hub_download(repo_id, filename, revision=revision or None, cache_dir=cache_dir))
        )
    except _hub_errors() as err:
        raise _explain_hub_error(err, name, str(cfg["hf_hub_id"]), filename, cache_dir) from err
    try:
        verify_sha256(path, cfg_sha256(cfg))
    except ChecksumError as err:
        raise ChecksumError(
            f"{name}: {err} Remove the cached copy ({path}; `hf cache rm model/{repo_id}` removes "
            "the repository's) so that it is fetched anew."
        ) from None
    commit = _snapshot_commit(path, filename)
    if commit is not None:
        cfg["hf_hub_id"] = f"{repo_id}@{commit}"


def _snapshot_commit(path: Path, filename: str) -> str | None:
    """The commit of a file in huggingface_hub's cache, which keeps it at
    ``.../snapshots/<commit>/<filename>``; ``None`` for a path laid out otherwise."""
    snapshot = path
    for _ in Path(filename).parts:
        snapshot = snapshot.parent
    if snapshot.parent.name == "snapshots" and _COMMIT.fullmatch(snapshot.name):
        return snapshot.name
    return None


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    names = ("EntryNotFoundError", "HfHubHTTPError", "OfflineModeIsEnabled", "HFValidationError")
    found = [getattr(errors, n, None) for n in names]
    return tuple(e for e in found if isinstance(e, type))


def _explain_hub_error(
    err: BaseException, name: str, repo: str, filename: str, cache_dir: Any
) -> PretrainedWeightsError:
    """What a huggingface_hub error means for ``repo`` (``org/name[@revision]``), and the fix."""
    from huggingface_hub import constants, errors

    repo_id, _, revision = repo.partition("@")
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    what = (
        f"{name}: could not get {filename} from the Hugging Face Hub repository {repo} "
        f"({type(err).__name__}: {first_line})."
    )
    login = "log in with `hf auth login` (or set HF_TOKEN)"
    if isinstance(err, errors.GatedRepoError):
        fix = (
            f"The repository is gated: accept its access conditions at "
            f"https://huggingface.co/{repo_id} and {login}."
        )
    elif isinstance(err, errors.RepositoryNotFoundError):
        fix = (
            f"There is no repository {repo_id!r} on the Hub, or it is private: check the "
            f"repository id (ORG/NAME), or {login} with an account that can read it."
        )
    elif isinstance(err, errors.RevisionNotFoundError):
        fix = (
            f"The repository {repo_id} has no revision {revision or 'main'!r}: check the commit "
            "or branch after '@' (`cifarzoo publish` prints the pinned ORG/NAME@<commit>)."
        )
    elif isinstance(err, errors.HFValidationError):
        fix = f"{repo!r} is not a repository id: write ORG/NAME, optionally with @<commit>."
    elif isinstance(err, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        cache = cache_dir or constants.HF_HUB_CACHE
        offline = (
            " Offline mode is on (HF_HUB_OFFLINE=1), so only the local cache is searched."
            if constants.HF_HUB_OFFLINE
            else " The Hub could not be reached."
        )
        fix = (
            f"It is not in the cache {cache}.{offline} Connect once to download it (it is cached "
            f"after), or copy {HF_WEIGHTS_FILE} from a machine that has it and load it locally. "
            + _how_to_load_local(name)
        )
    elif isinstance(err, errors.EntryNotFoundError):
        fix = (
            f"The repository has no {filename}: a cifarzoo Hub repository holds config.json and "
            f"{HF_WEIGHTS_FILE} (cifarzoo loads safetensors weights only). Check the repository "
            "and revision."
        )
    else:
        fix = (
            "The Hub request failed: check your connection and token (`hf auth whoami`) and try "
            "again; once downloaded, the file is cached and loads offline."
        )
    return PretrainedWeightsError(f"{what} {fix}")


def _explain_load_error(
    err: Exception, cfg: dict[str, Any], name: str, load_from: str, cache_dir: Any
) -> Exception:
    """A :class:`PretrainedWeightsError` for the errors users hit; other errors unchanged."""
    if load_from == "hf-hub" and isinstance(err, _hub_errors()):
        filename = str(cfg.get("hf_hub_filename") or HF_WEIGHTS_FILE)
        return _explain_hub_error(err, name, str(cfg.get("hf_hub_id")), filename, cache_dir)
    if isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err):
        other = _other_model_in_file(cfg, name) if load_from == "file" else None
        if other is not None:
            return PretrainedWeightsError(other)
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


def _other_model_in_file(cfg: dict[str, Any], name: str) -> str | None:
    """The error for a weights file whose metadata names another model, else ``None``."""
    from safetensors import safe_open

    path = str(cfg.get("file"))
    with safe_open(path, "pt") as f:
        saved = (f.metadata() or {}).get("model")
    arch = _strip_prefix(name.split(".")[0])
    if not saved or _strip_prefix(saved.split(".")[0]) == arch:
        return None
    return (
        f"{name}: {path} holds weights of {saved} (its metadata says so), not {arch}. Load it "
        f"as {saved}: cifarzoo.create_model({saved!r}, weights=PATH), or `cifarzoo eval "
        f"{saved} --weights PATH`."
    )


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

    ``hf-hub:ORG/NAME[@revision]`` and ``local-dir:FOLDER`` name a Hub repository or Hub-format
    folder, as in ``timm.create_model``: their ``config.json`` gives the architecture, which must
    be a cifarzoo one, and with ``pretrained=True`` their ``model.safetensors`` is loaded.
    """
    source, sep, ident = name.partition(":")
    if sep and source.lower() in _MODEL_SOURCES:
        return _create_from_source(_MODEL_SOURCES[source.lower()], ident, pretrained, kwargs)
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
        from huggingface_hub import hf_hub_download

        repo_id, _, revision = ident.partition("@")
        cache_dir = kwargs.get("cache_dir")
        try:
            config_path = Path(
                str(
                    hf_hub_download(
                        repo_id, HF_CONFIG_FILE, revision=revision or None, cache_dir=cache_dir
                    )
                )
            )
        except _hub_errors() as err:
            raise _explain_hub_error(err, name, ident, HF_CONFIG_FILE, cache_dir) from err
    try:
        config = json.loads(config_path.read_text())
        arch = str(config["architecture"])
    except (ValueError, KeyError, TypeError) as err:
        raise PretrainedWeightsError(
            f"{name}: {config_path} is not a timm model config ({type(err).__name__}: {err})."
        ) from err
    if not arch.startswith(TIMM_PREFIX) or _strip_prefix(arch) not in _FACTORIES:
        raise PretrainedWeightsError(
            f"{name}: its {HF_CONFIG_FILE} names the architecture {arch!r}, which is not a "
            "cifarzoo model (cifar_*). Load it with timm.create_model if it is a timm model."
        )
    return timm.create_model(name, pretrained=pretrained, **kwargs)
