"""The weights file behind a pretrained_cfg: found, checked once, and explained when it cannot
be loaded.

timm resolves a pretrained_cfg to one source (a ``state_dict``, a ``file``, a ``local-dir:``
folder, a Hub repository or a URL) and loads it, safetensors first and pickles with
``weights_only``. cifarzoo adds, before timm reads anything: the file that source stands for
(the path itself; the folder's ``model.safetensors``; the Hub file, fetched into huggingface_hub's
cache and the cfg pinned to its commit, so that timm reads the same file), safetensors only
(no pickle, no URL), its sha256 against the file's ``.sha256`` sidecar and the cfg's ``notes``,
and errors that say how to fix what went wrong.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from timm.models import resolve_pretrained_cfg

from ..checkpoint import ChecksumError, verify_sha256
from ..pretrained import (
    HF_CONFIG_FILE,
    HF_WEIGHTS_FILE,
    PACKAGED_WEIGHTS_DIR,
    SHA256_NOTE,
    PretrainedWeightsError,
)
from ..timm_compat import local_dir_config, pretrained_source
from ._cfgs import cfg_sha256, packaged_weights_path, strip_prefix

__all__ = [
    "checked_weights_file",
    "explain_hub_error",
    "explain_load_error",
    "hub_file",
    "resolve_cfg",
    "use_local_weights",
]

_SOURCE_KEYS = ("file", "url", "hf_hub_id", "hf_hub_filename", "state_dict")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def use_local_weights(path: Path, variant: str, kwargs: dict[str, Any]) -> None:
    """Turn ``weights=PATH`` into timm arguments in ``kwargs``: a ``file`` overlay, or for a
    Hub-format folder its config as the pretrained_cfg (as ``local-dir:PATH`` does)."""
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if path.is_dir() and (path / HF_CONFIG_FILE).is_file():
        kwargs["pretrained_cfg"] = _hub_folder_cfg(path, variant, kwargs)
        for key in (*_SOURCE_KEYS, "source"):
            overlay.pop(key, None)  # weights= names the source
    else:
        overlay["file"] = str(path / HF_WEIGHTS_FILE if path.is_dir() else path)
    kwargs["pretrained_cfg_overlay"] = overlay


def _hub_folder_cfg(folder: Path, variant: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The pretrained_cfg of a Hub-format folder, parsed by timm's ``local-dir:`` reader; its
    ``model_args`` become defaults in ``kwargs``, as ``timm.create_model`` makes them."""
    try:
        cfg, arch, model_args = local_dir_config(folder)
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
    for key, value in model_args.items():
        kwargs.setdefault(key, value)
    return cfg


def resolve_cfg(
    variant: str, pretrained_cfg: Any, overlay: dict[str, Any] | None
) -> dict[str, Any]:
    """timm's resolution of ``variant``'s pretrained_cfg (registry tag, dict or overlay), except
    that a weights source given in ``overlay`` replaces the registry's sources (timm would still
    prefer a registry ``file`` over an overlaid ``hf_hub_id``) and drops the registry's expected
    sha256: that digest belongs to the registry's weights, not to the user's."""
    overlay = dict(overlay or {})
    own_source = any(overlay.get(k) is not None for k in _SOURCE_KEYS)
    if own_source:
        for key in _SOURCE_KEYS:
            overlay.setdefault(key, None)
    resolved = resolve_pretrained_cfg(variant, pretrained_cfg, overlay)
    if own_source and "notes" not in overlay:
        notes: Any = tuple(n for n in resolved.notes or () if not str(n).startswith(SHA256_NOTE))
        resolved = dataclasses.replace(resolved, notes=notes or None)
    cfg: dict[str, Any] = resolved.to_dict()  # type: ignore[no-untyped-call,unused-ignore]
    # A config.json (hf-hub:, local-dir:) gives lists; timm passes input_size on as img_size.
    for key in ("input_size", "test_input_size", "min_input_size", "mean", "std", "pool_size"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    return cfg


def checked_weights_file(cfg: dict[str, Any], name: str, cache_dir: Any) -> Path | None:
    """The local file timm will load ``cfg``'s weights from (the source timm picks), refused
    unless it is a safetensors file that exists and matches its sha256; ``None`` for a cfg
    that carries a ``state_dict``. A file shipped in the package (``cifarzoo:weights/NAME``) is
    resolved to where the package is installed, in ``cfg['file']``. A Hub file is fetched into
    huggingface_hub's cache, and ``cfg['hf_hub_id']`` pinned to the commit it came from, so that
    timm reads this file."""
    if cfg.get("hf_hub_id"):  # else timm falls back to the repository's pickle file
        cfg["hf_hub_filename"] = cfg.get("hf_hub_filename") or HF_WEIGHTS_FILE
    load_from, location = pretrained_source(cfg)
    if load_from == "state_dict":
        return None
    if load_from == "hf-hub":
        path = _pinned_hub_file(cfg, name, cache_dir)
    elif load_from == "file":
        path = packaged_weights_path(str(location)) or Path(location)
        cfg["file"] = str(path)  # a packaged file's reference, resolved for timm
    elif load_from == "local-dir":
        path = Path(location) / HF_WEIGHTS_FILE
    elif load_from == "url":
        raise PretrainedWeightsError(
            f"{name}: cifarzoo does not load weights from a URL ({location}): timm would read "
            "it with pickle. Download the safetensors file and pass it as weights=PATH."
        )
    else:
        raise PretrainedWeightsError(
            f"{name} has no published pretrained weights yet "
            "(cifarzoo.list_models(pretrained=True) lists the models that do). "
            + how_to_load_local(name)
            + " Or use pretrained=False for a randomly initialized model."
        )
    if path.suffix != ".safetensors":
        raise PretrainedWeightsError(
            f"{name}: {path} is not a .safetensors file. cifarzoo loads safetensors weights "
            "only, never pickle checkpoints (.pt/.pth/.bin), which can run code when read. "
            "Convert a checkpoint you trust with: safetensors.torch.save_file("
            "torch.load(PATH, weights_only=True), 'model.safetensors')."
        )
    if not path.is_file():
        raise PretrainedWeightsError(f"{name}: {_missing(path, load_from)}")
    try:
        verify_sha256(path, cfg_sha256(cfg))
    except ChecksumError as err:
        if load_from != "hf-hub":
            raise
        raise ChecksumError(
            f"{name}: {err} Remove the cached copy ({path}; `hf cache rm model/"
            f"{cfg['hf_hub_id'].partition('@')[0]}` removes the repository's) so that it is "
            "fetched anew."
        ) from None
    return path


def _missing(path: Path, load_from: str) -> str:
    if load_from == "local-dir":
        return (
            f"no {HF_WEIGHTS_FILE} in the folder {path.parent}. A Hub-format folder holds "
            f"{HF_CONFIG_FILE} and {HF_WEIGHTS_FILE} (cifarzoo loads safetensors only, never "
            "pickle files such as pytorch_model.bin); `cifarzoo publish --dry-run` builds one."
        )
    return f"weights file not found: {path}. " + (
        "The package's shipped weights are missing; reinstall cifarzoo."
        if path.parent == PACKAGED_WEIGHTS_DIR
        else "Check the path (a `cifarzoo train` run writes RUN/model.safetensors)."
    )


def _pinned_hub_file(cfg: dict[str, Any], name: str, cache_dir: Any) -> Path:
    """The cfg's Hub weights file in huggingface_hub's cache, ``cfg['hf_hub_id']`` pinned to the
    commit it came from (the cache keeps it at ``.../snapshots/<commit>/<filename>``)."""
    filename = str(cfg["hf_hub_filename"])
    path = hub_file(str(cfg["hf_hub_id"]), filename, name, cache_dir)
    snapshot = path.parents[len(Path(filename).parts) - 1]
    if snapshot.parent.name == "snapshots" and _COMMIT.fullmatch(snapshot.name):
        cfg["hf_hub_id"] = f"{str(cfg['hf_hub_id']).partition('@')[0]}@{snapshot.name}"
    return path


def hub_file(repo: str, filename: str, name: str, cache_dir: Any) -> Path:
    """``filename`` of the Hub repository ``repo`` (``org/name[@revision]``) through
    huggingface_hub (from its cache when offline), with its errors explained."""
    from huggingface_hub import errors, hf_hub_download

    repo_id, _, revision = repo.partition("@")
    try:
        return Path(
            hf_hub_download(repo_id, filename, revision=revision or None, cache_dir=cache_dir)
        )
    except (
        errors.EntryNotFoundError,
        errors.HfHubHTTPError,
        errors.OfflineModeIsEnabled,
        errors.HFValidationError,
    ) as err:
        raise explain_hub_error(err, name, repo, filename, cache_dir) from err


def explain_hub_error(
    err: BaseException, name: str, repo: str, filename: str, cache_dir: Any
) -> PretrainedWeightsError:
    """What a huggingface_hub error means for ``repo`` (``org/name[@revision]``), and the fix."""
    from huggingface_hub import constants, errors

    repo_id, _, revision = repo.partition("@")
    login = "log in with `hf auth login` (or set HF_TOKEN)"
    offline = (
        "Offline mode is on (HF_HUB_OFFLINE=1), so only the local cache is searched."
        if constants.HF_HUB_OFFLINE
        else "The Hub could not be reached."
    )
    # The first class the error is an instance of explains it (subclasses come first).
    fixes: list[tuple[Any, str]] = [
        (
            errors.GatedRepoError,
            f"The repository is gated: accept its access conditions at "
            f"https://huggingface.co/{repo_id} and {login}.",
        ),
        (
            errors.RepositoryNotFoundError,
            f"There is no repository {repo_id!r} on the Hub, or it is private: check the "
            f"repository id (ORG/NAME), or {login} with an account that can read it.",
        ),
        (
            errors.RevisionNotFoundError,
            f"The repository {repo_id} has no revision {revision or 'main'!r}: check the commit "
            "or branch after '@' (`cifarzoo publish` prints the pinned ORG/NAME@<commit>).",
        ),
        (
            errors.HFValidationError,
            f"{repo!r} is not a repository id: write ORG/NAME, optionally with @<commit>.",
        ),
        (
            (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled),
            f"It is not in the cache {cache_dir or constants.HF_HUB_CACHE}. {offline} Connect "
            f"once to download it (it is cached after), or copy {HF_WEIGHTS_FILE} from a "
            "machine that has it and load it locally. " + how_to_load_local(name),
        ),
        (
            errors.EntryNotFoundError,
            f"The repository has no {filename}: a cifarzoo Hub repository holds {HF_CONFIG_FILE} "
            f"and {HF_WEIGHTS_FILE} (cifarzoo loads safetensors weights only). Check the "
            "repository and revision.",
        ),
        (
            BaseException,
            "The Hub request failed: check your connection and token (`hf auth whoami`) and "
            "try again; once downloaded, the file is cached and loads offline.",
        ),
    ]
    fix = next(text for cls, text in fixes if isinstance(err, cls))
    first_line = (str(err).strip().splitlines() or [""])[0]
    return PretrainedWeightsError(
        f"{name}: could not get {filename} from the Hugging Face Hub repository {repo} "
        f"({type(err).__name__}: {first_line}). {fix}"
    )


def explain_load_error(err: Exception, path: Path | None, name: str) -> Exception | None:
    """A :class:`PretrainedWeightsError` for what went wrong when timm read the weights file
    ``path`` into the model ``name``: not safetensors after all, another model's weights, or
    weights of other shapes; ``None`` for other errors."""
    from safetensors import SafetensorError, safe_open

    if path is not None and isinstance(err, SafetensorError):
        return PretrainedWeightsError(
            f"{name}: {path} is not a readable safetensors file ({err}). It is corrupt or not "
            "safetensors; copy or export it again."
        )
    if not (isinstance(err, RuntimeError) and "Error(s) in loading state_dict" in str(err)):
        return None
    saved = None
    if path is not None:
        with safe_open(str(path), "pt") as f:
            saved = (f.metadata() or {}).get("model")
    arch = strip_prefix(name.split(".")[0])
    if saved and strip_prefix(saved.split(".")[0]) != arch:
        return PretrainedWeightsError(
            f"{name}: {path} holds weights of {saved} (its metadata says so), not {arch}. Load "
            f"it as {saved}: cifarzoo.create_model({saved!r}, weights=PATH), or `cifarzoo eval "
            f"{saved} --weights PATH`."
        )
    return PretrainedWeightsError(
        f"{name}: the weights do not fit this model (were they trained for another "
        f"architecture or number of classes?). {err}"
    )


def how_to_load_local(name: str) -> str:
    """How to load weights one has, for the model ``name`` (``cifar_<arch>[.tag]``, or
    ``hf-hub:``/``local-dir:`` with an architecture not known yet)."""
    if ":" in name:
        return (
            "To use weights you have, pass a local safetensors file with the model's "
            "architecture (`cifarzoo list`): cifarzoo.create_model(ARCH, weights=PATH), e.g. "
            "cifarzoo.create_model('resnet20', weights='model.safetensors'); or a Hub-format "
            "folder (config.json + model.safetensors): cifarzoo.create_model("
            "'local-dir:FOLDER', pretrained=True). `cifarzoo train` writes such a file "
            "(model.safetensors)."
        )
    timm_name = name.split(".")[0]
    short = strip_prefix(timm_name)
    return (
        f"To use weights you have, pass a local safetensors file: cifarzoo.{short}(weights=PATH), "
        f"cifarzoo.create_model({short!r}, weights=PATH) or timm.create_model("
        f"{timm_name!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)); "
        f"or a Hub-format folder (config.json + model.safetensors): cifarzoo.{short}("
        "weights=FOLDER) or timm.create_model('local-dir:FOLDER', pretrained=True). "
        "`cifarzoo train` writes such a file (model.safetensors)."
    )
