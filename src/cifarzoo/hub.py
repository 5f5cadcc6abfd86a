"""Publishing weights to the Hugging Face Hub: the model card, timm's ``config.json``, the Hub
repository folder (checked by loading it back through timm) and the upload (the ``cifarzoo
publish`` command is :mod:`cifarzoo.cli.publish`).

The weights come from a training run or are the ones shipped in the package, each read and
checked as a :class:`~cifarzoo.hub_source.HubSource` (:func:`~cifarzoo.hub_source.run_source`,
:func:`~cifarzoo.hub_source.shipped_source`). Loading goes through timm
(``timm.create_model('hf-hub:ORG/NAME', pretrained=True)``,
``timm.create_model('local-dir:FOLDER')``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.models import model_entrypoint
from torch import nn

from .checkpoint import atomic_dir, json_text, verify_sha256
from .constants import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGE_SIZE,
    NUM_CLASSES,
    WEIGHTS_LICENSE,
)
from .data import OFFICIAL_NAME
from .formats import duration, percent
from .hub_source import HubFile, HubSource, per_class_accuracy, run_source
from .pretrained import HF_CONFIG_FILE, SHA256_NOTE
from .runs import WEIGHTS_FILE, RecordedAccuracy, one_line, recorded_accuracy, recorded_model_args

__all__ = [
    "OFFICIAL_DATASET_ID",
    "OFFICIAL_DATA_NAME",
    "PublishResult",
    "build_hub_folder",
    "build_model_card",
    "publish",
]

#: The data name of the official CIFAR-10 release (:data:`cifarzoo.data.OFFICIAL_NAME`), and its
#: Hub dataset id.
OFFICIAL_DATA_NAME = OFFICIAL_NAME
OFFICIAL_DATASET_ID = "cifar10"


def _hub_config(source: HubSource, model: nn.Module) -> dict[str, Any]:
    """timm's ``config.json`` for the source's model: what ``hf-hub:``/``local-dir:`` read."""
    # where the weights loaded from, and what describes the registry's weights, not these
    skip = {"file", "url", "hf_hub_id", "hf_hub_filename", "source", "state_dict", "architecture",
            "tag", "notes", "label_names", "description"}  # fmt: skip
    cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k not in skip}  # type: ignore[arg-type]
    cfg["num_classes"] = source.num_classes
    cfg["notes"] = [SHA256_NOTE + source.sha256]
    config: dict[str, Any] = {
        "architecture": source.timm_name,
        "num_classes": source.num_classes,
        "num_features": int(getattr(model, "num_features", 0)),
    }
    classes = source.metrics.get("classes")
    if classes is None and source.num_classes == NUM_CLASSES:
        classes = list(CIFAR10_CLASSES)
    if classes is not None:
        config["label_names"] = list(classes)
    model_args = recorded_model_args(source.metrics)
    if model_args:
        config["model_args"] = model_args
    config["pretrained_cfg"] = json.loads(json.dumps(cfg))  # tuples -> lists
    return config


def build_model_card(source: HubSource, repo_id: str) -> Any:
    """The Hub model card (``huggingface_hub.ModelCard``) of a run's weights or the shipped ones
    (a :class:`~cifarzoo.hub_source.HubSource`): ``model-index`` results for test and validation
    accuracy on the data set named exactly as measured (one forward pass; a test-time
    augmentation's figures beside them, named so), the epochs, training time and hardware, the
    recipe, per-class accuracy, the curves and the files.

    Only weights measured on data named exactly ``"CIFAR-10"`` (the name of the official
    release, which :func:`~cifarzoo.data.load_cifar10` recognises by its md5 sums) link the
    Hub's CIFAR-10 dataset; for any other data the results carry an id made from its name, and
    the card says that the data is not the official release.
    """
    from huggingface_hub import ModelCard

    lines = _card_summary(source, repo_id) + _card_details(source)
    data = _card_data(source, repo_id).to_yaml()
    return ModelCard(f"---\n{data}\n---\n\n" + "\n".join(lines))


def _card_data(source: HubSource, repo_id: str) -> Any:
    """The card's metadata (``huggingface_hub.ModelCardData``), with its ``model-index``."""
    from huggingface_hub import EvalResult, ModelCardData

    data = one_line(source.metrics["data"])
    official = data == OFFICIAL_DATA_NAME
    dataset_type = (
        OFFICIAL_DATASET_ID if official else re.sub(r"[^a-z0-9]+", "-", data.lower()).strip("-")
    )

    def result(split: str, name: str, value: float) -> EvalResult:
        return EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_type or "unnamed-data",
            dataset_name=data,
            dataset_split=split,
            metric_type="accuracy",
            metric_name=name,
            metric_value=round(100 * float(value), 2),
        )

    results = [
        result(split, name, value)
        for split, name, value in _card_accuracies(recorded_accuracy(source.metrics))
        if value is not None
    ]
    return ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="timm",
        license=WEIGHTS_LICENSE,
        pipeline_tag="image-classification",
        tags=["image-classification", "timm", "cifarzoo", "cifar10"],
        datasets=[OFFICIAL_DATASET_ID] if official else None,
        metrics=["accuracy"],
        eval_results=results,
    )


def _card_accuracies(acc: RecordedAccuracy) -> list[tuple[str, str, float | None]]:
    """``(split, metric name, value)`` of the card's results: one forward pass first, then the
    test-time augmentation's figures, named as such."""
    rows = [
        ("test", "Test accuracy, one forward pass (%)", acc.test),
        ("validation", "Validation accuracy, one forward pass (%)", acc.val),
    ]
    if acc.tta is not None:
        rows += [
            ("test", f"Test accuracy, {acc.tta} TTA (%)", acc.tta_test),
            ("validation", f"Validation accuracy, {acc.tta} TTA (%)", acc.tta_val),
        ]
    return rows


def _card_summary(source: HubSource, repo_id: str) -> list[str]:
    """The card's head: what the model is, its accuracy and how to load it."""
    metrics = source.metrics
    data = one_line(metrics["data"])
    doc = model_entrypoint(source.timm_name).__doc__ or source.arch  # the factory's docstring
    summary = doc.strip().splitlines()[0].rstrip(".")
    where = {"test": f"{data}, test split", "validation": "held-out split of the training set"}
    accuracies = [
        f"| {name.removesuffix(' (%)')} ({where[split]}) | {percent(value)} |"
        for split, name, value in _card_accuracies(recorded_accuracy(metrics))
    ]
    return [
        f"# {source.arch} for CIFAR-10 (cifarzoo)",
        "",
        f"`{source.timm_name}` from [cifarzoo](https://pypi.org/project/cifarzoo/): {summary}. "
        f"Built for 32x32 images and trained from scratch on {data}.",
        "",
        *_weights_notes(source),
        *([] if data == OFFICIAL_DATA_NAME else [_data_note(data), ""]),
        "| Metric | Value |",
        "|---|---:|",
        *accuracies,
        f"| Epochs | {metrics['epochs']} |",
        f"| Training time | {duration(float(metrics['seconds']))} |",
        f"| Hardware | {one_line(metrics.get('hardware'))} |",
        "",
        "## Usage",
        "",
        "timm finds the architecture only after `import cifarzoo` (it registers the `cifar_*` "
        "models):",
        "",
        "```python",
        "import cifarzoo  # registers cifar_* models with timm",
        "import timm",
        "",
        f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()',
        "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
        "```",
        "",
        f"Inputs are 32x32 RGB images normalized with CIFAR-10's per-channel mean {CIFAR10_MEAN} "
        f"and std {CIFAR10_STD}; the transform above does it.",
        "",
    ]


def _weights_notes(source: HubSource) -> list[str]:
    """Where shipped weights also load from, and the dtype of weights not stored in float32."""
    lines: list[str] = []
    if source.tag is not None:
        lines += [
            f"These are the weights cifarzoo ships as `{source.timm_name}.{source.tag}`: "
            f'`cifarzoo.create_model("{source.arch}.{source.tag}", pretrained=True)` loads the '
            "same file from the installed package, with no network.",
            "",
        ]
    if source.weights_dtype != "float32":
        lines += [
            f"`{WEIGHTS_FILE}` stores the weights in {source.weights_dtype}; timm and cifarzoo "
            "load them as float32 (the model's parameters are float32).",
            "",
        ]
    return lines


def _card_details(source: HubSource) -> list[str]:
    """The card's sections after the usage: per-class accuracy, recipe, teachers, curves,
    files."""
    lines: list[str] = []
    per_class = per_class_accuracy(source.metrics)
    if per_class:
        tta = recorded_accuracy(source.metrics).per_class_tta
        how = "one forward pass" if tta is None else f"{tta} TTA"
        lines += [f"## Per-class test accuracy ({how})", "", "| Class | Accuracy |", "|---|---:|"]
        lines += [f"| {name} | {percent(acc)} |" for name, acc in per_class]
        lines.append("")
    if source.recipe is not None:
        lines += ["## Training recipe", "", "```json", json.dumps(source.recipe, indent=2), "```"]
        lines.append("")
    teachers = source.metrics.get("teacher")
    if teachers:
        lines += [
            "Distilled: the targets mixed the labels with the averaged predictions of these "
            "trained models on the training images (their training time is not counted above):",
            "",
            *[f"- {one_line(t)}" for t in teachers],
            "",
        ]
    if source.curves:
        lines += ["## Training curves", ""]
        lines += [f"![{Path(name).stem}]({name})" for name in source.curves]
        lines.append("")
    lines += [
        "## Files",
        "",
        f"- `{WEIGHTS_FILE}`: the weights (safetensors, {source.weights_dtype}), sha256 "
        f"`{source.sha256}`",
        "- `config.json`: timm's model config",
        *[f"- `{file.name}`: {file.about}" for file in source.files if file.about],
        "",
    ]
    return lines


def _data_note(data: str) -> str:
    if "jpeg" in data.lower():
        kind = "a JPEG re-encoding of CIFAR-10's images"
    else:
        kind = "a copy of CIFAR-10 other than its official release"
    return (
        f"**Data:** {data} is {kind}, not the official CIFAR-10 files: the accuracies below were "
        "measured on its test split and are not directly comparable with results on the "
        "official CIFAR-10 test set."
    )


def build_hub_folder(
    source: str | os.PathLike[str] | HubSource,
    repo_id: str,
    out_dir: str | os.PathLike[str],
    *,
    verify: bool = True,
) -> Path:
    """Build the Hub repository folder of a training run (its folder) or of the shipped
    weights (:func:`~cifarzoo.hub_source.shipped_source`) in ``out_dir`` (which must not exist
    or be empty): ``model.safetensors``, timm's ``config.json``, the model card ``README.md``,
    ``metrics.json``, the training record's ``history.json`` (and ``grad_flow.json``) and the
    curves when there is one.

    The folder is built in a hidden sibling and renamed to ``out_dir`` only when complete, so a
    failure leaves nothing behind. With ``verify`` it is first loaded back through
    ``timm.create_model('local-dir:...')`` and must give the same outputs as the source's
    weights.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ValueError(f"repo_id must be 'org/name', got {repo_id!r}")
    if not isinstance(source, HubSource):
        source = run_source(source)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model = source.load_model()
        shutil.copyfile(source.weights, tmp / WEIGHTS_FILE)
        verify_sha256(tmp / WEIGHTS_FILE, source.sha256)
        (tmp / HF_CONFIG_FILE).write_text(json_text(_hub_config(source, model)))
        for file in source.files:
            _write_file(file, tmp)
        build_model_card(source, repo_id).save(tmp / "README.md")
        if verify:
            import timm

            loaded = timm.create_model(f"local-dir:{tmp}", pretrained=True).eval()
            x = torch.randn(2, *_input_size(model), generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                if not torch.equal(model(x), loaded(x)):
                    raise RuntimeError(f"{out} does not load back to the same model")
    return out


def _write_file(file: HubFile, folder: Path) -> None:
    if isinstance(file.content, Path):
        shutil.copyfile(file.content, folder / file.name)
    else:
        (folder / file.name).write_bytes(file.content)


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = tuple(int(s) for s in cfg.get("input_size", (3, IMAGE_SIZE, IMAGE_SIZE)))
    return (size[0], size[1], size[2])


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` did: where the folder was built (removed after an upload when
    :func:`publish` built it in a temporary folder), and after an upload the pinned revision."""

    folder: Path
    repo_id: str
    commit: str | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned_id(self) -> str | None:
        """``org/name@<commit>``, for ``install_weights(..., hf_hub_id=...)``."""
        return f"{self.repo_id}@{self.commit}" if self.commit else None


def publish(
    source: str | os.PathLike[str] | HubSource,
    repo_id: str,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    private: bool = False,
    commit_message: str | None = None,
) -> PublishResult:
    """Build the Hub folder of a run folder or of a :class:`~cifarzoo.hub_source.HubSource`
    (:func:`build_hub_folder`) and, unless ``dry_run``, create
    the repository if needed and upload it with ``HfApi.upload_folder`` (token from
    ``hf auth login`` or ``HF_TOKEN``).

    Without ``out_dir`` the folder is built in a new temporary folder, removed after the upload
    and on any failure; a dry run keeps it, for inspection. With ``out_dir`` the folder is kept.
    """
    temp_parent: Path | None = None
    if out_dir is None:
        temp_parent = Path(tempfile.mkdtemp(prefix="cifarzoo-hub-"))
        folder = temp_parent / "hub"
    else:
        folder = Path(out_dir)
    keep = False
    try:
        build_hub_folder(source, repo_id, folder)
        if dry_run:
            keep = True
            return PublishResult(folder, repo_id)
        return _upload(folder, repo_id, private, commit_message, kept=temp_parent is None)
    finally:
        if temp_parent is not None and not keep:
            shutil.rmtree(temp_parent, ignore_errors=True)


def _upload(
    folder: Path, repo_id: str, private: bool, commit_message: str | None, *, kept: bool
) -> PublishResult:
    from huggingface_hub import HfApi, constants

    later = (
        f"The folder is built in {folder}; upload it later"
        if kept
        else "The folder was built and checked (pass --out FOLDER to keep it); upload it later"
    )
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError(
            f"cannot upload to {repo_id}: offline mode is on (HF_HUB_OFFLINE=1). {later}, or "
            "rerun without HF_HUB_OFFLINE."
        )
    arch = json.loads((folder / HF_CONFIG_FILE).read_text())["architecture"]
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {arch} weights",
        )
    # huggingface_hub raises its own errors for the Hub's answers, its HTTP client's when there
    # is no connection: either way the upload failed, and the folder is what to keep
    except Exception as err:
        said = (str(err).strip().splitlines() or [""])[0]
        raise RuntimeError(
            f"cannot upload to {repo_id} ({type(err).__name__}: {said}): check the network "
            "connection and the token (`hf auth whoami`; log in with `hf auth login` or set "
            f"HF_TOKEN). {later}."
        ) from err
    return PublishResult(folder, repo_id, commit=info.oid, url=info.commit_url)
