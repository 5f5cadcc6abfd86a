"""The private timm APIs of :mod:`cifarzoo.timm_compat`, checked against the installed timm.

Each check names the timm function it is about, so that a timm release that changes one fails
here with what changed, rather than somewhere in model loading. Real timm, no mocks.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import timm
from timm.models import group_parameters, save_for_hf
from torch import nn

from cifarzoo import timm_compat

#: Every private timm API the adapter uses: (module, name, the parameters cifarzoo passes).
PRIVATE_APIS = [
    ("timm.models._builder", "_resolve_pretrained_source", ["pretrained_cfg"]),
    ("timm.models._hub", "load_model_config_from_path", ["model_path"]),
    ("timm.models._features", "feature_take_indices", ["num_features", "indices"]),
    ("timm.models._manipulate", "MATCH_PREV_GROUP", None),
]


def changed(api: str, what: str) -> str:
    return (
        f"timm {timm.__version__} changed {api}: {what}. cifarzoo.timm_compat relies on it; "
        "mend that module (or pin timm below this version)."
    )


@pytest.mark.parametrize(("module", "name", "params"), PRIVATE_APIS, ids=lambda v: str(v))
def test_private_api_is_there_with_its_parameters(
    module: str, name: str, params: list[str] | None
) -> None:
    api = f"{module}.{name}"
    found = getattr(importlib.import_module(module), name, None)
    assert found is not None, changed(api, "it is gone")
    if params is not None:
        given = list(inspect.signature(found).parameters)[: len(params)]
        assert given == params, changed(api, f"its parameters are {given}, not {params}")


def test_the_adapter_holds_every_private_api() -> None:
    """What the adapter imports from timm's private modules is the list checked above."""
    tree = ast.parse(inspect.getsource(timm_compat))
    imported = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("timm.")
        and any(part.startswith("_") for part in (node.module or "").split("."))
        for alias in node.names
    }
    assert imported == {f"{m}.{n}" for m, n, _ in PRIVATE_APIS}


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"state_dict": {"w": 1}, "file": "a.safetensors"}, ("state_dict", {"w": 1})),
        ({"file": "a.safetensors", "hf_hub_id": "org/name"}, ("file", "a.safetensors")),
        ({"source": "local-dir", "file": "/folder"}, ("local-dir", "/folder")),
        (
            {"hf_hub_id": "org/name@abc", "hf_hub_filename": "model.safetensors"},
            ("hf-hub", ("org/name@abc", "model.safetensors")),
        ),
        ({"hf_hub_id": "org/name", "url": "https://x/w.pth"}, ("hf-hub", "org/name")),
        ({"url": "https://x/w.pth"}, ("url", "https://x/w.pth")),
        ({}, ("", "")),
    ],
)
def test_pretrained_source_picks_as_timm_loads(cfg: dict[str, Any], expected: Any) -> None:
    """The order cifarzoo's file check relies on: a state_dict, then a file, then the Hub,
    then a URL; ``local-dir`` and ``hf-hub`` sources as ``create_model`` sets them."""
    got = timm_compat.pretrained_source(cfg)
    assert got == expected, changed(
        "timm.models._builder._resolve_pretrained_source", f"{cfg} gives {got}, not {expected}"
    )


def test_local_dir_config_reads_a_folder_timm_wrote(tmp_path: Path) -> None:
    """A folder written by timm's public ``save_for_hf`` reads back as ``local-dir:`` does."""
    api = "timm.models._hub.load_model_config_from_path"
    model = timm.create_model("cifar_lenet", num_classes=7)
    save_for_hf(model, str(tmp_path), model_args={"drop_rate": 0.25}, safe_serialization=True)
    cfg, arch, model_args = timm_compat.local_dir_config(tmp_path)
    assert arch == "cifar_lenet", changed(api, f"the architecture read is {arch!r}")
    assert (cfg.get("source"), cfg.get("file")) == ("local-dir", str(tmp_path)), changed(
        api, f"the cfg's source/file are {cfg.get('source')!r}/{cfg.get('file')!r}"
    )
    assert cfg["num_classes"] == 7 and tuple(cfg["input_size"]) == (3, 32, 32), changed(
        api, f"the cfg read is {cfg}"
    )
    assert model_args.get("drop_rate") == 0.25, changed(api, f"model_args are {model_args}")
    with pytest.raises(FileNotFoundError):
        timm_compat.local_dir_config(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("indices", "expected"),
    [(None, ([0, 1, 2, 3], 3)), (2, ([2, 3], 3)), ([0, -1], ([0, 3], 3)), ((1,), ([1], 1))],
)
def test_feature_take_indices_counts_as_timm_models_do(indices: Any, expected: Any) -> None:
    got = timm_compat.feature_take_indices(4, indices)
    assert (list(got[0]), got[1]) == expected, changed(
        "timm.models._features.feature_take_indices", f"(4, {indices}) gives {got}"
    )


def test_match_prev_group_joins_the_group_before() -> None:
    """A layer matched with the suffix ``MATCH_PREV_GROUP`` lands in the group of the layer
    before it (as DenseNet's transitions join their dense block); with another suffix it gets
    its own group."""
    api = "timm.models._manipulate.MATCH_PREV_GROUP"
    model = nn.ModuleDict({"block0": nn.Linear(2, 2), "join": nn.Linear(2, 2)})

    def groups(suffix: Any) -> list[list[str]]:
        matcher = [(r"^block(\d+)", None), (r"^join", suffix)]
        found = group_parameters(model, dict(blocks=matcher))
        return sorted(sorted(names) for names in found.values())

    assert groups(timm_compat.MATCH_PREV_GROUP) == [
        ["block0.bias", "block0.weight", "join.bias", "join.weight"]
    ], changed(api, "a layer with that suffix no longer joins the group before it")
    assert len(groups((5,))) == 2
