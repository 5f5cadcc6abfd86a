"""Shipped weights (install, registry cfgs, offline loading) and the generated model table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from conftest import load_script
from huggingface_hub import constants
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from timm.models import generate_default_cfgs, get_pretrained_cfg
from torch import nn

import cifarzoo
from cifarzoo import formats, hub, install, runs, table
from cifarzoo.checkpoint import (
    ChecksumError,
    PretrainedWeightsError,
    atomic_write,
    save_json,
    save_weights,
)
from cifarzoo.constants import CIFAR10_CLASSES
from cifarzoo.cost import count_activation_bytes
from cifarzoo.data import NUM_TRAIN
from cifarzoo.metrics import tta_views
from cifarzoo.models._cfgs import cfg_sha256, weight_cfgs
from cifarzoo.pretrained import (
    PACKAGED_WEIGHTS_DIR,
    TAG_RECIPES,
    list_weights,
    read_training_record,
    read_weights_meta,
    shipped_weights,
    weights_tags,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = "CIFAR-10 (JPEG mirror)"
HUB_ID = "cifarzoo-test/resnet20@" + "ab" * 20


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


#: What `cifarzoo train` records: one forward pass as the headline, flip TTA beside it.
SINGLE_PASS_METRICS = {
    "test_accuracy": 0.6301, "val_accuracy": 0.6222, "tta": "flip", "tta_test_accuracy": 0.6512,
    "tta_val_accuracy": 0.6431, "tta_flip": True, "tta_translate": False,
}  # fmt: skip
#: What it recorded before the single-pass headline (with a test-time augmentation on, which
#: these metrics leave to the recipe the tests give them): the TTA figure as test_accuracy.
TTA_HEADLINE_METRICS = {
    "test_accuracy": 0.6512, "val_accuracy": 0.6431, "single_pass_test_accuracy": 0.6301,
    "single_pass_val_accuracy": 0.6222,
}  # fmt: skip


def make_run(
    run_dir: Path, arch: str = "lenet", weights_of: str | None = None, *, old: bool = False
) -> nn.Module:
    """A `cifarzoo train`-style output folder (random-init weights of ``weights_of or arch``);
    ``old``: its metrics.json in the layout of the runs before the single-pass headline."""
    torch.manual_seed(0)
    model = cifarzoo.create_model(weights_of or arch).eval()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (run_dir / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
    metrics = {
        "model": arch,
        **(TTA_HEADLINE_METRICS if old else SINGLE_PASS_METRICS),
        "per_class_accuracy": [0.65] * 10,
        "epochs": 12,
        "train_images": 45_000,
        "seconds": 95.5,
        "data": DATA,
        "hardware": "1x NVIDIA H200",
        "bf16": True,
        "config": {"lr": 0.1},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return model


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """lenet installed into a weights folder in tmp_path, as into the package."""
    run_dir = tmp_path_factory.mktemp("run")
    model = make_run(run_dir)
    weights_dir = tmp_path_factory.mktemp("weights")
    install.install_weights(run_dir, weights_dir=weights_dir)
    return weights_dir, model


@pytest.mark.parametrize(
    ("recorded", "model_args"),
    [
        ({"model_args": {"zero_init_residual": False, "conv_init": "pytorch"}}, None),
        # benchmarks/lab_comparison.py's runs from before the models took conv_init
        (
            {"model_args": {"zero_init_residual": False}, "conv_init": "pytorch-default"},
            {"zero_init_residual": False, "conv_init": "pytorch"},
        ),
        ({"model_args": {}, "conv_init": "model"}, {}),
    ],
)
def test_the_weights_record_the_constructor_arguments_they_were_trained_with(
    tmp_path: Path, recorded: dict[str, object], model_args: dict[str, object] | None
) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, "resnet20")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, **recorded}))
    install.install_weights(run_dir, weights_dir=tmp_path / "weights")
    meta = json.loads((tmp_path / "weights" / "resnet20.c10.json").read_text())
    expected = recorded["model_args"] if model_args is None else model_args
    assert meta["metrics"]["model_args"] == runs.recorded_model_args(meta["metrics"]) == expected


def lenet_cfg(weights_dir: Path) -> dict[str, object]:
    cfgs = weight_cfgs(["lenet"], weights_dir=weights_dir, first_conv="conv1", classifier="fc3")
    assert list(cfgs) == ["cifar_lenet.c10"]
    generate_default_cfgs(cfgs)  # timm accepts them
    cfg: dict[str, object] = cfgs["cifar_lenet.c10"]
    return cfg


def test_install_writes_weights_and_metadata(installed: tuple[Path, nn.Module]) -> None:
    weights_dir, _ = installed
    assert sorted(p.name for p in weights_dir.iterdir()) == [
        "lenet.c10.json",
        "lenet.c10.safetensors",
    ]
    meta = json.loads((weights_dir / "lenet.c10.json").read_text())
    digest = hashlib.sha256((weights_dir / "lenet.c10.safetensors").read_bytes()).hexdigest()
    assert meta["sha256"] == digest
    assert meta["file"] == "lenet.c10.safetensors" and meta["hf_hub_id"] is None
    assert meta["architecture"] == "cifar_lenet" and meta["tag"] == "c10"
    assert meta["num_params"] == 62006
    m = meta["metrics"]
    assert m["model_args"] == {}
    assert (m["test_accuracy"], m["val_accuracy"], m["epochs"]) == (0.6301, 0.6222, 12)
    assert (m["tta"], m["tta_test_accuracy"], m["tta_val_accuracy"]) == ("flip", 0.6512, 0.6431)
    assert m["per_class_accuracy"] == [0.65] * 10
    figures = {k: m[k] for k in SINGLE_PASS_METRICS if not k.startswith("tta_")}
    assert m["seed_runs"] == [
        {"seed": None, **figures, "tta_test_accuracy": 0.6512, "tta_val_accuracy": 0.6431,
         "kept": True}
    ]  # fmt: skip
    assert (m["data"], m["hardware"], m["recipe"]) == (DATA, "1x NVIDIA H200", {"lr": 0.1})
    assert m["bf16"] is True and runs.recorded_bf16(m) is True


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"bf16": False, "recipe": {"amp": True}}, False),  # what evaluation used wins
        ({"recipe": {"amp": True}}, True),  # metadata installed before "bf16" was kept
        ({"recipe": {"amp": False}}, False),
        ({"recipe": {"amp": None}}, None),  # --amp auto: depended on the device
        ({}, None),
    ],
)
def test_recorded_bf16(metrics: dict[str, object], expected: bool | None) -> None:
    assert runs.recorded_bf16(metrics) is expected


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"recipe": {"tta_flip": True, "tta_translate": True}}, (True, True)),
        ({"recipe": {"tta_flip": True}}, (True, False)),  # recorded before translate TTA
        ({"recipe": {"tta_flip": False, "tta_translate": False}}, (False, False)),
        ({"recipe": {"lr": 0.1}}, None),
        ({"recipe": None}, None),
        ({}, None),
        ({"tta_flip": True, "recipe": {"lr": 0.1}}, (True, False)),  # what evaluation used wins
        ({"tta_flip": False, "tta_translate": True, "recipe": {"tta_flip": True}}, (False, True)),
        ({"tta_flip": None, "recipe": {"tta_flip": True}}, (True, False)),
    ],
)
def test_recorded_tta(metrics: dict[str, object], expected: tuple[bool, bool] | None) -> None:
    assert runs.recorded_tta(metrics) == expected


def test_packaged_weights_load_offline(installed: tuple[Path, nn.Module]) -> None:
    weights_dir, original = installed
    cfg = lenet_cfg(weights_dir)
    assert cfg["file"] == str(weights_dir / "lenet.c10.safetensors")
    assert cfg_sha256(cfg) == json.loads((weights_dir / "lenet.c10.json").read_text())["sha256"]
    model = cifarzoo.lenet(pretrained=True, pretrained_cfg=cfg)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), original(x), rtol=0, atol=0)


def test_packaged_weights_checked_against_recorded_sha(
    installed: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / "lenet.c10.json").write_text((installed[0] / "lenet.c10.json").read_text())
    torch.manual_seed(5)
    other = cifarzoo.lenet().state_dict()
    save_file(dict(other), str(weights_dir / "lenet.c10.safetensors"))  # no sidecar: the JSON's sha
    with pytest.raises(PretrainedWeightsError, match="recorded in the model's pretrained_cfg"):
        cifarzoo.lenet(pretrained=True, pretrained_cfg=lenet_cfg(weights_dir))
    # Overlaying one's own file drops the registry's digest: it is not the same file.
    own = tmp_path / "own.safetensors"
    save_file(dict(other), str(own))
    model = cifarzoo.lenet(pretrained=True, pretrained_cfg=lenet_cfg(weights_dir), weights=own)
    assert torch.equal(model.conv1.weight, other["conv1.weight"])
    assert cfg_sha256(model.pretrained_cfg) is None


def test_missing_packaged_file(installed: tuple[Path, nn.Module], tmp_path: Path) -> None:
    (tmp_path / "lenet.c10.json").write_text((installed[0] / "lenet.c10.json").read_text())
    with pytest.raises(PretrainedWeightsError, match="weights file not found"):
        cifarzoo.lenet(pretrained=True, pretrained_cfg=lenet_cfg(tmp_path))


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_failed_install_keeps_the_installed_weights(
    installed: tuple[Path, nn.Module],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    """The source changes after it was checked (truncated or gone when it is copied): the weights
    and JSON installed before stay byte-identical, and no temporary file is left."""
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    before = {}
    for name in ("lenet.c10.json", "lenet.c10.safetensors"):
        before[name] = (installed[0] / name).read_bytes()
        (weights_dir / name).write_bytes(before[name])
    run_dir = tmp_path / "run"
    make_run(run_dir)
    torch.manual_seed(9)  # other weights than the installed ones
    save_file(dict(cifarzoo.lenet().state_dict()), str(run_dir / "model.safetensors"))
    digest = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    (run_dir / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
    load_run_model = runs.RunInfo.load_model

    def then_damage(run: runs.RunInfo) -> nn.Module:
        model = load_run_model(run)
        if damage == "truncate":
            data = run.weights.read_bytes()
            run.weights.write_bytes(data[: len(data) // 2])
        else:
            run.weights.unlink()
        return model

    monkeypatch.setattr(runs.RunInfo, "load_model", then_damage)
    if damage == "truncate":
        with pytest.raises(ChecksumError, match="sha256 mismatch copying"):
            install.install_weights(run_dir, weights_dir=weights_dir)
    else:
        with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
            install.install_weights(run_dir, weights_dir=weights_dir)
    assert sorted(os.listdir(weights_dir)) == sorted(before)
    for name, data in before.items():
        assert (weights_dir / name).read_bytes() == data


def test_install_hub_weights(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, "resnet20")
    with pytest.raises(ValueError, match="must pin a commit"):
        install.install_weights(run_dir, weights_dir=tmp_path / "w", hf_hub_id="org/name")
    with pytest.raises(ValueError, match=r"over the 0\.1 MB limit .*cifarzoo publish"):
        install.install_weights(run_dir, weights_dir=tmp_path / "w", max_mb=0.1)
    install.install_weights(run_dir, weights_dir=tmp_path / "w", hf_hub_id=HUB_ID)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["resnet20.c10.json"]
    cfgs = weight_cfgs(["resnet20", "resnet32"], weights_dir=tmp_path / "w")
    assert set(cfgs) == {"cifar_resnet20.c10", "cifar_resnet32"}
    cfg = cfgs["cifar_resnet20.c10"]
    assert (cfg["hf_hub_id"], cfg["hf_hub_filename"]) == (HUB_ID, "model.safetensors")
    assert "file" not in cfg and "hf_hub_id" not in cfgs["cifar_resnet32"]
    # Not in the (empty) Hub cache, offline: a clear error naming the pinned repository.
    with pytest.raises(PretrainedWeightsError, match=re.escape(HUB_ID)):
        cifarzoo.resnet20(pretrained=True, pretrained_cfg=cfg, cache_dir=tmp_path / "cache")


def test_install_unpublished_records_metrics_only(tmp_path: Path) -> None:
    """Weights trained on all 50k images and not uploaded yet: recorded (no val accuracy), no
    weights file, pretrained=True still refuses, and the weights table leaves them out."""
    run_dir = tmp_path / "run"
    make_run(run_dir, "resnet20")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(val_accuracy=None, train_images=NUM_TRAIN)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="neither packaged nor on the Hub"):
        install.install_weights(run_dir, weights_dir=tmp_path / "w", unpublished=True, package=True)
    with pytest.raises(ValueError, match="no val_accuracy"):  # packaging still needs one
        install.install_weights(run_dir, weights_dir=tmp_path / "w")
    install.install_weights(run_dir, weights_dir=tmp_path / "w", unpublished=True)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["resnet20.c10.json"]
    meta = json.loads((tmp_path / "w" / "resnet20.c10.json").read_text())
    assert meta["file"] is None and meta["hf_hub_id"] is None
    assert meta["metrics"]["val_accuracy"] is None and meta["metrics"]["test_accuracy"] == 0.6301
    cfgs = weight_cfgs(["resnet20"], weights_dir=tmp_path / "w")
    assert set(cfgs) == {"cifar_resnet20"} and cfg_sha256(cfgs["cifar_resnet20"]) is None
    with pytest.raises(PretrainedWeightsError, match="no published pretrained weights"):
        cifarzoo.resnet20(pretrained=True, pretrained_cfg=cfgs["cifar_resnet20"])
    # weights nobody can load are not in the weights table
    (row,) = table.model_table(["resnet20"], weights_dir=tmp_path / "w")
    assert (row.test_accuracy, row.val_accuracy, row.weights) == (None, None, "unpublished")
    assert (row.tta_test_accuracy, row.seeds) == (None, None)
    assert table.render_markdown([row]).startswith("**Architectures**")


def test_install_needs_a_validation_accuracy(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({**metrics, "val_accuracy": None}))
    with pytest.raises(ValueError, match=r"no val_accuracy.*--val-size"):
        install.install_weights(tmp_path / "run", weights_dir=tmp_path / "w")


def test_install_refuses_weights_of_another_model(tmp_path: Path) -> None:
    make_run(tmp_path / "run", "resnet32", weights_of="resnet20")
    with pytest.raises(PretrainedWeightsError, match="do not fit"):
        install.install_weights(tmp_path / "run", weights_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_model_table(installed: tuple[Path, nn.Module]) -> None:
    rows = table.model_table(["lenet", "cifar_resnet20"], weights_dir=installed[0])
    lenet, resnet = rows
    # LeNet by hand: conv 6x28x28x75 + conv 16x10x10x150 + fc 400x120 + 120x84 + 84x10.
    assert (lenet.model, lenet.params, lenet.macs) == ("lenet", 62006, 651720)
    assert (lenet.test_accuracy, lenet.val_accuracy, lenet.epochs) == (0.6301, 0.6222, 12)
    assert (lenet.tta, lenet.tta_test_accuracy, lenet.tta_val_accuracy) == ("flip", 0.6512, 0.6431)
    assert lenet.seeds == "1"
    assert lenet.train_images == 45_000 and resnet.train_images is None
    assert (lenet.data, lenet.weights) == (DATA, "package")
    assert resnet.model == "resnet20" and resnet.params == 272474
    assert 40e6 < resnet.macs < 42e6  # the ~41 M of He et al.'s ResNet-20
    assert resnet.test_accuracy is None and resnet.weights is None

    md = table.render_markdown(rows)
    weights_part, architecture_part = md.split("**Architectures**")
    weights_lines = [line for line in weights_part.splitlines() if line.startswith("|")]
    assert weights_lines[0] == (
        "| Model | Recipe | Test acc. | Val acc. | TTA test / val acc. | Epochs x images "
        "| Train time | Hardware |"
    )  # one data set for all: named once, in a note
    assert len(weights_lines[1].split("|")) == len(weights_lines[0].split("|"))
    # only the rows with weights, numbers never broken across lines; TTA beside, named
    assert weights_lines[2:] == [
        "| lenet | c10 | 63.01% | 62.22% | 65.12%\u00a0/\u00a064.31% (flip) "
        "| 12\u00a0x\u00a045,000 | 96\u00a0s | 1x NVIDIA H200 |"
    ]
    assert f"*Data*: all these weights were trained and are measured on {DATA}." in weights_part
    assert "All these weights ship in the package" in weights_part
    architecture_lines = [line for line in architecture_part.splitlines() if line]
    assert architecture_lines[:2] == [
        "| Model | Params | MACs (32x32) | Training activations (32x32) |",
        "|---|---:|---:|---:|",
    ]
    cells = [line.split(" | ") for line in architecture_lines[2:]]
    assert [c[:3] for c in cells] == [
        ["| lenet", "62.01\u00a0K", "651.72\u00a0K"],
        ["| resnet20", "272.47\u00a0K", "40.81\u00a0M"],
    ]
    for name, cell in zip(("lenet", "resnet20"), cells, strict=True):
        written, unit = cell[3].removesuffix(" |").split("\u00a0")  # the activations, read back
        counted = count_activation_bytes(cifarzoo.create_model(name))
        assert unit == "MiB" and abs(float(written) * 2**20 - counted) <= 0.005 * 2**20
    rst = table.render_rst(rows)
    assert rst.startswith(".. list-table::") and "   :class: weights-table\n" in rst
    assert (
        "   * - lenet\n     - c10\n     - 63.01%\n" in rst
        and "   * - resnet20\n     - 272.47" in rst
    )
    assert table.render_weights_rst(rows[1:]) == "No model has weights that load yet.\n"


def test_weights_of_different_data_name_it_in_a_column(installed: tuple[Path, nn.Module]) -> None:
    (lenet,) = table.model_table(["lenet"], weights_dir=installed[0])
    cpu = "Intel(R) Xeon(R) Processor (2 CPUs, 1 threads)"
    other = dataclasses.replace(
        lenet, model="lenet.other", data="CIFAR-10", hardware=cpu, default=False
    )
    lines = table.render_markdown([lenet, other]).splitlines()
    assert lines[2].endswith("| Train time | Data | Hardware |")
    assert [line.split(" | ")[-2] for line in lines[4:6]] == [DATA, "CIFAR-10"]
    assert lines[5].endswith("| Intel Xeon (2\u00a0CPUs, 1\u00a0thread) |")  # counts unbroken
    assert not any(line.startswith("*Data*") for line in lines)


def test_hardware_cells_are_short() -> None:
    assert formats.hardware_name("Intel(R) Xeon(R) Processor (2 CPUs, 1 threads)") == (
        "Intel Xeon (2 CPUs, 1 thread)"
    )
    core = "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz (12 CPUs, 6 threads)"
    assert formats.hardware_name(core) == "Intel Core i7-8700 (12 CPUs, 6 threads)"
    row = table.model_table(["lenet"])[0]
    md = table.render_markdown([dataclasses.replace(row, hardware=core)])
    # counts stay with their units in a table cell; nothing else is glued
    assert "| Intel Core i7-8700 (12\u00a0CPUs, 6\u00a0threads) |" in md
    assert formats.hardware_name("1x NVIDIA H200") == "1x NVIDIA H200"
    assert formats.hardware_name(None) == "—"


def test_distilled_weights_say_so_in_the_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    teacher = ["resnet20 (model.safetensors, sha256 " + "ab" * 32 + ")"]
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "teacher": teacher}))
    meta_path = install.install_weights(run_dir, weights_dir=tmp_path / "weights")
    assert json.loads(meta_path.read_text())["metrics"]["teacher"] == teacher
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.distilled
    md = table.render_markdown([row])
    assert (
        "| 12\u00a0x\u00a045,000, distilled |" in md
        and "metadata names them).\n\n**Architectures**" in md
    )
    assert "*distilled*: trained on a mix of the labels" in table.render_rst([row])
    plain = dataclasses.replace(row, distilled=False)
    assert "distilled" not in table.render_markdown([plain])


@pytest.mark.parametrize(
    ("tta", "cell"),
    [
        ({"tta_flip": True, "tta_translate": False}, "flip"),
        ({"tta_flip": True, "tta_translate": True}, "flip + translate"),
        ({"tta_flip": False}, "none"),
    ],
)
def test_the_table_says_how_the_accuracy_was_measured(
    tmp_path: Path, tta: dict[str, bool], cell: str
) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, old=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    recipe = {**metrics["config"], **tta}  # an older metrics.json names it "config"
    if cell == "none":  # a run without TTA recorded before the single-pass figures were
        del metrics["single_pass_test_accuracy"], metrics["single_pass_val_accuracy"]
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "recipe": recipe}))
    install.install_weights(run_dir, weights_dir=tmp_path / "weights")
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.tta == cell
    md = table.render_markdown([row])
    if cell == "none":  # the recorded accuracy is one forward pass
        assert "| lenet | c10 | 65.12% | 64.31% | — | 12\u00a0x" in md
    else:  # the main columns are one forward pass, the TTA figures get their own
        assert (
            f"| lenet | c10 | 63.01% | 62.22% | 65.12%\u00a0/\u00a064.31% ({cell}) | 12\u00a0x"
            in md
        )
    assert "*Test acc.* and *Val acc.* are one forward pass" in md
    assert "*TTA test / val acc.* the same weights with the test-time augmentation" in md
    assert "`cifarzoo eval MODEL --pretrained`" in md
    assert "``cifarzoo eval MODEL --pretrained``" in table.render_rst([row])


def test_the_tta_a_run_recorded_beside_its_recipe_reaches_the_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, old=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    tta = {"tta_flip": True, "tta_translate": True}  # as write_run records the evaluation's
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, **tta}))
    meta_path = install.install_weights(run_dir, weights_dir=tmp_path / "weights")
    recorded = json.loads(meta_path.read_text())["metrics"]
    assert (recorded["tta_flip"], recorded["tta_translate"]) == (True, True)
    assert recorded["recipe"] == {"lr": 0.1}  # the recipe records no TTA
    # installed in today's layout: one forward pass as the headline, the old per-class figures
    # (measured with the TTA) under their own name
    assert (recorded["test_accuracy"], recorded["tta_test_accuracy"]) == (0.6301, 0.6512)
    assert "per_class_accuracy" not in recorded and recorded["tta_per_class_accuracy"]
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.tta == "flip + translate" and row.tta_test_accuracy == 0.6512
    assert row.test_accuracy == 0.6301


def test_a_run_without_a_single_pass_accuracy_is_not_installed(tmp_path: Path) -> None:
    """Runs of early versions recorded only their TTA figure: no headline to install."""
    make_run(tmp_path / "run", old=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    del metrics["single_pass_test_accuracy"], metrics["single_pass_val_accuracy"]
    metrics["recipe"] = {"tta_flip": True}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match=r"no single-pass test accuracy .*flip test-time"):
        install.install_weights(tmp_path / "run", weights_dir=tmp_path / "w")


def test_seeds_column_gives_the_spread_of_two_or_more_seeds(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "recipe": {"seed": 1}}))
    meta_path = install.install_weights(run_dir, weights_dir=tmp_path / "weights")
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.seeds == "1"
    meta = json.loads(meta_path.read_text())
    other = {"seed": 0, "test_accuracy": 0.6623, "val_accuracy": 0.65, "kept": False}
    meta["metrics"]["seed_runs"].append(other)  # a single pass, as the metadata records
    meta_path.write_text(json.dumps(meta))
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.seeds == "2 (test 63.01%-66.23%, validation 62.22%-65.00%)"
    note = "lenet trained with 2 seeds (test 63.01%-66.23%, validation 62.22%-65.00%);"
    assert note in table.render_markdown([row])
    # metadata of the layout before the single-pass headline: its seed runs' figures were
    # measured with the TTA, and the cell says so
    old = {"tta_flip": True, "seed_runs": [other, {**other, "test_accuracy": 0.6512}]}
    meta["metrics"] = {**TTA_HEADLINE_METRICS, **old}
    meta_path.write_text(json.dumps(meta))
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.seeds == "2 (test 65.12%-66.23%, validation 65.00%, flip TTA)"
    assert "lenet trained with 2 seeds (test 65.12%-66.23%, validation 65.00%, flip TTA);" in (
        table.render_markdown([row])
    )
    # one seed with a single pass, one without: the TTA figures, and why
    mixed = [{**other, "tta": "flip", "tta_test_accuracy": 0.67, "tta_val_accuracy": 0.66}]
    mixed.append({**mixed[0], "test_accuracy": None, "val_accuracy": None})
    meta["metrics"] = {**metrics, "seed_runs": mixed}
    meta_path.write_text(json.dumps(meta))
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "weights")
    assert row.seeds == (
        "2 (test 67.00%, validation 66.00%, flip TTA; one forward pass not recorded for every seed)"
    )
    assert "*Seeds*" not in table.render_markdown([dataclasses.replace(row, seeds="1")])


def test_update_table_in_readme(installed: tuple[Path, nn.Module], tmp_path: Path) -> None:
    rows = table.model_table(["lenet"], weights_dir=installed[0])
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{table.TABLE_START}\nold\n{table.TABLE_END}\n\nafter\n")
    assert table.update_table_in_file(readme, rows, check=True)
    assert "old" in readme.read_text()  # --check writes nothing
    assert table.update_table_in_file(readme, rows)
    text = readme.read_text()
    assert "old" not in text and "| lenet | 62.01\u00a0K |" in text and text.endswith("after\n")
    assert not table.update_table_in_file(readme, rows, check=True)  # now current
    assert sorted(os.listdir(tmp_path)) == ["README.md"]  # no temporary file left
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        table.update_table_in_file(tmp_path / "bare.md", rows)


def test_scripts(installed: tuple[Path, nn.Module], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir)
    weights_dir = tmp_path / "weights"
    install_script = load_script(ROOT / "scripts" / "install_weights.py")
    assert install_script.main([str(run_dir), "--weights-dir", str(weights_dir)]) == 0
    assert (weights_dir / "lenet.c10.safetensors").is_file()

    table_script = load_script(ROOT / "scripts" / "accuracy_table.py")
    readme = tmp_path / "README.md"
    readme.write_text(f"{table.TABLE_START}\n{table.TABLE_END}\n")
    args = ["--file", str(readme), "--models", "lenet", "--weights-dir", str(weights_dir)]
    assert table_script.main([*args, "--check"]) == 1
    assert table_script.main(args) == 0
    assert table_script.main([*args, "--check"]) == 0
    assert "| lenet | c10 | 63.01% | 62.22% |" in readme.read_text()


def test_scripts_report_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install_script = load_script(ROOT / "scripts" / "install_weights.py")
    assert install_script.main([str(tmp_path / "nope"), "--weights-dir", str(tmp_path / "w")]) == 1
    assert "model.safetensors not found in" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    table_script = load_script(ROOT / "scripts" / "accuracy_table.py")
    (tmp_path / "bare.md").write_text("no markers\n")
    assert table_script.main(["--file", str(tmp_path / "bare.md"), "--models", "lenet"]) == 1
    assert "markers" in capsys.readouterr().err


def test_shipped_weights_are_complete_and_verified() -> None:
    """Every file in the package's weights folder is a pair <arch>.<tag>.json +
    <arch>.<tag>.safetensors (or a Hub-only or not-yet-published JSON), its sha256 matches, and
    timm's cfg of that tag points at it (no cfg for unpublished weights)."""
    for path in sorted(PACKAGED_WEIGHTS_DIR.glob("*.safetensors")):
        assert path.with_suffix(".json").is_file(), f"{path.name} has no metadata JSON"
    records = set(PACKAGED_WEIGHTS_DIR.glob("*.record.json"))
    for meta_path in sorted(set(PACKAGED_WEIGHTS_DIR.glob("*.json")) - records):
        meta = json.loads(meta_path.read_text())
        name = meta_path.stem
        arch, _, tag = name.partition(".")
        if meta.get("record"):
            records.discard(PACKAGED_WEIGHTS_DIR / meta["record"]["file"])
            record = read_training_record(arch, tag=tag)
            assert record is not None and record["history"]["epoch"]
        assert tag in weights_tags(arch), f"{meta_path.name} is not named <arch>.<tag>.json"
        published = bool(meta.get("file") or meta.get("hf_hub_id"))
        assert (f"cifar_{name}" in timm.list_pretrained("cifar_*")) == published
        if not published:
            with pytest.raises(PretrainedWeightsError, match="no published pretrained weights"):
                cifarzoo.create_model(arch, pretrained=True)
            continue
        model = cifarzoo.create_model(name)
        assert cfg_sha256(model.pretrained_cfg) == meta["sha256"]
        if meta.get("file"):
            weights = PACKAGED_WEIGHTS_DIR / meta["file"]
            assert weights.name == f"{name}.safetensors"
            assert hashlib.sha256(weights.read_bytes()).hexdigest() == meta["sha256"]
            assert weights.stat().st_size <= install.MAX_PACKAGED_MB * 2**20
            cifarzoo.create_model(name, pretrained=True)  # loads with no network
        keys = ("test_accuracy", "epochs", "seconds", "train_images", "hardware", "data")
        if meta.get("file") or meta["metrics"].get("train_images", 0) < NUM_TRAIN:
            keys += ("val_accuracy",)  # packaged weights and any run with a held-out split
        for key in keys:
            assert meta["metrics"].get(key) is not None, f"{meta_path.name}: no {key}"
    assert not records, f"training records no metadata names: {records}"


def test_packaged_cfgs_name_the_classes_and_no_path_of_this_machine() -> None:
    """The registry's cfg of shipped weights names CIFAR-10's classes, describes the weights
    from their metadata, and refers to its file inside the package, not by an absolute path."""
    for arch in cifarzoo.list_models(pretrained=True):
        tag = weights_tags(arch)[0]
        meta = json.loads((PACKAGED_WEIGHTS_DIR / f"{arch}.{tag}.json").read_text())
        cfg = get_pretrained_cfg(f"cifar_{arch}").to_dict()
        assert cfg["tag"] == tag
        assert cfg["file"] == f"cifarzoo:weights/{arch}.{tag}.safetensors"
        assert list(cfg["label_names"]) == list(cifarzoo.CIFAR10_CLASSES)
        accuracy = runs.recorded_accuracy(meta["metrics"]).test or 0.0
        assert cfg["description"].startswith(f"cifarzoo {arch} trained on {DATA} for ")
        assert cfg["description"].endswith(
            f": {100 * accuracy:.2f}% test accuracy (one forward pass)"
        )
    model = timm.create_model("cifar_resnet20", pretrained=True)
    assert model.pretrained_cfg["file"] == "cifarzoo:weights/resnet20.c10.safetensors"
    assert not any(str(ROOT) in str(v) for v in model.pretrained_cfg.values())


@pytest.mark.slow(seconds=8)
def test_packaged_weights_load_from_a_copy_of_the_package(tmp_path: Path) -> None:
    """The package installed elsewhere (as from a wheel) loads its own weights file."""
    import shutil
    import subprocess

    site = tmp_path / "site"
    shutil.copytree(ROOT / "src" / "cifarzoo", site / "cifarzoo")
    code = (
        "import timm, cifarzoo; m = timm.create_model('cifar_lenet', pretrained=True); "
        "from cifarzoo.models._cfgs import packaged_weights_path as p; "
        "print(p(m.pretrained_cfg['file'])); print(float(m.conv1.weight.detach().sum()))"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    path, total = out.stdout.split()
    assert Path(path) == (site / "cifarzoo" / "weights" / "lenet.c10.safetensors").resolve()
    expected = cifarzoo.lenet(pretrained=True).conv1.weight.detach().sum()
    assert float(total) == pytest.approx(float(expected))


@pytest.mark.slow
def test_readme_table_is_current() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert table.TABLE_START in text and table.TABLE_END in text, "README.md lost its table markers"
    stale = table.update_table_in_file(readme, table.model_table(), check=True)
    assert not stale, "README model table is stale: run python scripts/accuracy_table.py"


@pytest.fixture
def umask() -> Iterator[int]:
    """Run the test under umask 027 (not the usual 022, so the test tells them apart)."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_written_files_get_the_umask_permissions(umask: int, tmp_path: Path) -> None:
    """Atomic writes create files as open() would (0o666 & ~umask), not mkstemp's 0600, so
    weights, metrics and installed files are readable by the group."""
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    save_json({"a": 1}, tmp_path / "metrics.json")
    save_weights(cifarzoo.lenet().state_dict(), tmp_path / "run" / "model.safetensors")
    make_run(tmp_path / "run2")
    install.install_weights(tmp_path / "run2", weights_dir=tmp_path / "weights")
    folder = hub.build_hub_folder(tmp_path / "run2", "org/lenet", tmp_path / "hub")
    files = [
        tmp_path / "a.bin",
        tmp_path / "metrics.json",
        tmp_path / "run" / "model.safetensors",
        tmp_path / "run" / "model.safetensors.sha256",
        tmp_path / "weights" / "lenet.c10.json",
        tmp_path / "weights" / "lenet.c10.safetensors",
        *folder.iterdir(),
    ]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask == 0o640, path
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask == 0o750


@pytest.mark.data
@pytest.mark.slow(seconds=40)
@pytest.mark.parametrize(
    "name",
    [  # lenet's minute-free check always; the others' full evaluations in CI
        name if name == "lenet.c10" else pytest.param(name, marks=pytest.mark.reproduction)
        for name in sorted(p.stem for p in PACKAGED_WEIGHTS_DIR.glob("*.safetensors"))
    ],
)
def test_shipped_weights_reproduce_their_recorded_accuracy(name: str, cifar10_root: Path) -> None:
    """On the data they were measured on, the shipped weights give the recorded test and
    validation accuracy (same split seed, TTA and bf16 setting as recorded): one forward pass in
    float32 as the headline, what timm's validate.py gives, and the TTA figures beside it."""
    meta = json.loads((PACKAGED_WEIGHTS_DIR / f"{name}.json").read_text())
    metrics = meta["metrics"]
    recipe = metrics["recipe"]
    val_size = NUM_TRAIN - metrics["train_images"]  # the rest of the training set was held out
    data = cifarzoo.load_cifar10(cifar10_root, val_size=val_size, seed=recipe["seed"])
    assert metrics["data"].startswith("CIFAR-10")
    model = cifarzoo.create_model(name, pretrained=True)
    flip, translate = runs.recorded_tta(metrics) or (False, False)
    recorded = runs.recorded_accuracy(metrics)
    assert runs.recorded_bf16(metrics) is False
    assert recorded.tta == (tta_views(flip, translate) or None)  # None: weights without TTA
    # other CPUs' float32 kernels may round a borderline image differently: 2 images of slack
    for split, slack in (("test", 2e-4), ("val", 4e-4)):
        images = getattr(data, split)
        # one evaluation for both: the TTA views include the image itself (test_train.py
        # checks that single_pass equals an evaluation without TTA)
        tta = cifarzoo.evaluate(
            model, images, tta_flip=flip, tta_translate=translate, single_pass=True
        )
        single = tta.one_pass if recorded.tta else tta
        assert single is not None
        assert single.accuracy == pytest.approx(getattr(recorded, split), abs=slack), split
        if recorded.tta:
            recorded_tta = getattr(recorded, f"tta_{split}")
            assert tta.accuracy == pytest.approx(recorded_tta, abs=slack), f"{split}, TTA"
    seed_runs = zip(metrics["seed_runs"], runs.recorded_seed_runs(metrics), strict=True)
    assert [acc for run, acc in seed_runs if run["kept"]] == [recorded]


def test_measure_weights_records_what_the_weights_give(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/measure_weights.py: the metadata's figures become those of the weights on the
    run's split (one forward pass in float32, the recorded TTA beside it), in today's layout;
    the weights file stays as it was, and the other seeds' figures stay theirs."""
    script = load_script(ROOT / "scripts" / "measure_weights.py")
    make_run(tmp_path / "run")
    weights_dir = tmp_path / "weights"
    meta_path = install.install_weights(tmp_path / "run", weights_dir=weights_dir)
    meta = json.loads(meta_path.read_text())
    # metadata as installed before the single-pass headline (bf16, flip TTA as test_accuracy)
    other = {"seed": 1, "test_accuracy": 0.7, "val_accuracy": 0.71, "kept": False}
    kept = {"seed": 3, "test_accuracy": 0.6512, "val_accuracy": 0.6431, "kept": True}
    recipe = {"seed": 3, "tta_flip": True, "amp": True}
    meta["metrics"] = {
        **TTA_HEADLINE_METRICS, "per_class_accuracy": [0.65] * 10, "epochs": 12, "seconds": 95.5,
        "train_images": 1600, "data": DATA, "recipe": recipe, "seed_runs": [other, kept],
    }  # fmt: skip
    meta_path.write_text(json.dumps(meta))
    weights = (weights_dir / "lenet.c10.safetensors").read_bytes()
    args = ["--data", str(fake_cifar_root), "--weights-dir", str(weights_dir), "lenet"]
    with pytest.raises(SystemExit, match=re.escape(f"pass --data-name '{DATA}'")):
        script.main(args)  # unnamed, the data is not the data the weights were measured on
    assert script.main([*args, "--data-name", DATA]) == 0
    assert (weights_dir / "lenet.c10.safetensors").read_bytes() == weights
    new = json.loads(meta_path.read_text())
    assert {k: v for k, v in new.items() if k != "metrics"} == {
        k: v for k, v in meta.items() if k != "metrics"
    }
    m = new["metrics"]
    data = cifarzoo.load_cifar10(fake_cifar_root, val_size=400, seed=3)
    model = cifarzoo.create_model("lenet", weights=str(weights_dir / "lenet.c10.safetensors"))
    single = [cifarzoo.evaluate(model, split) for split in (data.test, data.val)]
    tta = [cifarzoo.evaluate(model, split, tta_flip=True) for split in (data.test, data.val)]
    assert (m["test_accuracy"], m["val_accuracy"]) == tuple(r.accuracy for r in single)
    assert (m["tta_test_accuracy"], m["tta_val_accuracy"]) == tuple(r.accuracy for r in tta)
    per_class = dict(zip(CIFAR10_CLASSES, single[0].per_class_accuracy, strict=True))
    assert m["per_class_accuracy"] == per_class
    assert (m["tta"], m["bf16"], m["tta_flip"], m["tta_translate"]) == ("flip", False, True, False)
    assert "single_pass_test_accuracy" not in m and "tta_per_class_accuracy" not in m
    figures = runs.recorded_accuracy(m).fields()
    assert m["seed_runs"] == [
        {"seed": 1, **runs.RecordedAccuracy(None, None, "flip", 0.7, 0.71).fields(), "kept": False},
        {"seed": 3, **figures, "kept": True},
    ]
    assert f"lenet.c10: test 63.01% -> {100 * single[0].accuracy:.2f}%" in capsys.readouterr().out


def test_install_in_float16_halves_the_file_and_records_its_digest(tmp_path: Path) -> None:
    original = make_run(tmp_path / "run")
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    install.install_weights(tmp_path / "run", weights_dir=weights_dir, dtype="float16")
    meta = json.loads((weights_dir / "lenet.c10.json").read_text())
    shipped = weights_dir / "lenet.c10.safetensors"
    assert meta["weights_dtype"] == "float16"
    assert meta["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert shipped.stat().st_size < 0.55 * (tmp_path / "run" / "model.safetensors").stat().st_size
    state = load_file(str(shipped))
    expected = original.state_dict()
    for name, tensor in state.items():
        want = expected[name]
        assert tensor.dtype == (torch.float16 if want.is_floating_point() else want.dtype), name
        torch.testing.assert_close(tensor.to(want.dtype), want.to(torch.float16).to(want.dtype))
    model = cifarzoo.lenet(pretrained=True, pretrained_cfg=lenet_cfg(weights_dir))
    assert model.conv1.weight.dtype == torch.float32  # loaded into the float32 model


def test_install_refuses_a_file_over_the_limit_and_says_float16_halves_it(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    size_mb = (tmp_path / "run" / "model.safetensors").stat().st_size / 2**20
    with pytest.raises(ValueError, match="float16"):
        install.install_weights(tmp_path / "run", weights_dir=tmp_path, max_mb=size_mb * 0.9)
    path = install.install_weights(
        tmp_path / "run", weights_dir=tmp_path, max_mb=size_mb * 0.9, dtype="float16"
    )
    assert json.loads(path.read_text())["weights_dtype"] == "float16"


def test_the_packaged_weights_fit_in_an_80_mb_wheel() -> None:
    """The wheel ships every file of the weights folder; float weights barely compress, so the
    files themselves must leave room for the code under the 80 MB the wheel may weigh."""
    total_mb = sum(p.stat().st_size for p in PACKAGED_WEIGHTS_DIR.iterdir()) / 2**20
    assert total_mb < 76, f"src/cifarzoo/weights holds {total_mb:.1f} MB"


def test_two_tags_of_one_architecture_register_and_load_apart(tmp_path: Path) -> None:
    """lenet's own weights (c10) and a second recipe's (lab) live side by side: timm gets one
    cfg per tag, c10 first (its default), and each tag loads its own file."""
    originals = {}
    for tag, seed in (("lab", 1), ("c10", 2)):
        run_dir = tmp_path / f"run-{tag}"
        make_run(run_dir)
        torch.manual_seed(seed)
        originals[tag] = cifarzoo.lenet().eval()
        save_file(dict(originals[tag].state_dict()), str(run_dir / "model.safetensors"))
        digest = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
        (run_dir / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
        install.install_weights(run_dir, weights_dir=tmp_path / "w", tag=tag)
    assert weights_tags("lenet", tmp_path / "w") == ["c10", "lab"]
    cfgs = weight_cfgs(["lenet"], weights_dir=tmp_path / "w")
    assert list(cfgs) == ["cifar_lenet.c10", "cifar_lenet.lab"]
    x = torch.randn(2, 3, 32, 32)
    for tag, original in originals.items():
        cfg = cfgs[f"cifar_lenet.{tag}"]
        assert cfg["file"] == str(tmp_path / "w" / f"lenet.{tag}.safetensors")
        model = cifarzoo.lenet(pretrained=True, pretrained_cfg=cfg).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)


@given(st.sets(st.from_regex(r"[a-z0-9_]{1,6}", fullmatch=True), min_size=1, max_size=5))
@settings(max_examples=30, deadline=None)
def test_the_default_tag_is_c10_else_the_first_in_alphabetical_order(tags: set[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for tag in tags:
            (Path(folder) / f"lenet.{tag}.json").write_text("{}")
        (Path(folder) / "lenet5.c10.json").write_text("{}")  # another architecture's
        (Path(folder) / "lenet.lab.record.json").write_text("{}")  # not a metadata JSON
        listed = weights_tags("lenet", folder)
    assert sorted(listed) == sorted(tags)
    assert listed[0] == ("c10" if "c10" in tags else min(tags))


#: A weights metadata JSON of each source: shipped, published on the Hub, recorded only.
SOURCES = {
    "package": {"file": "x.safetensors", "sha256": "ab" * 32},
    "hub": {"hf_hub_id": HUB_ID, "sha256": "ab" * 32},
    "unpublished": {},
}


@given(
    st.dictionaries(
        st.from_regex(r"[a-z0-9_]{1,6}", fullmatch=True),
        st.sampled_from(sorted(SOURCES)),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=40, deadline=None)
def test_every_listing_of_weights_agrees_on_the_tags_and_the_default(
    sources: dict[str, str],
) -> None:
    """The default weights are the first that load, c10 before the others (else the first
    tag): the tags listed, the metadata read without a tag, timm's first pretrained tag and the
    table's unnamed row all name them; only the shipped ones are listed as shipped."""
    with tempfile.TemporaryDirectory() as folder:
        for tag, source in sources.items():
            (Path(folder) / f"lenet.{tag}.json").write_text(json.dumps(SOURCES[source]))
        (Path(folder) / "lenet5.c10.json").write_text(json.dumps(SOURCES["package"]))
        entries = list_weights(folder, arch="lenet")
        tags = weights_tags("lenet", folder)
        by_default = read_weights_meta("lenet", folder)
        cfgs = list(weight_cfgs(["lenet"], weights_dir=folder))
        rows = table.model_table(["lenet"], weights_dir=folder)
        shipped = shipped_weights(folder)
        assert list_weights(folder, arch="len*") == []  # a name, never a pattern
    ordered = sorted(sources, key=lambda tag: (tag != "c10", tag))
    loading = [tag for tag in ordered if sources[tag] != "unpublished"]
    default = (loading or ordered)[0]
    assert tags == [e.tag for e in entries] == [default] + [t for t in ordered if t != default]
    assert [e.default for e in entries] == [True] + [False] * (len(sources) - 1)
    assert [e.source for e in entries] == [sources[tag] for tag in tags]
    assert by_default == SOURCES[sources[default]]
    assert cfgs == [f"cifar_lenet.{t}" for t in tags if t in loading] or (
        not loading and cfgs == ["cifar_lenet"]
    )
    assert [(r.model, r.tag) for r in rows] == [
        ("lenet" if t == default else f"lenet.{t}", t) for t in tags
    ]
    assert shipped == sorted(
        ["lenet5.c10"] + [f"lenet.{t}" for t in sources if sources[t] == "package"]
    )


def test_install_ships_the_runs_training_record_checked_by_its_sha256(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    history = {"epoch": [1, 2], "train_loss": [2.1, 1.7], "eval_acc": [0.3, 0.4], "seconds": [5, 4]}
    grad_flow = {"every": 5, "layers": ["conv1", "fc3"], "steps": [0, 5], "norms": [[1, 2], [3, 4]]}
    (tmp_path / "run" / "history.json").write_text(json.dumps(history))
    (tmp_path / "run" / "grad_flow.json").write_text(json.dumps(grad_flow))
    weights = tmp_path / "w"
    meta = json.loads(install.install_weights(tmp_path / "run", weights_dir=weights).read_text())
    record_file = weights / "lenet.c10.record.json"
    assert meta["record"] == {
        "file": record_file.name,
        "sha256": hashlib.sha256(record_file.read_bytes()).hexdigest(),
    }
    assert read_training_record("lenet", weights_dir=weights) == {
        "history": history,
        "grad_flow": grad_flow,
    }
    assert weights_tags("lenet", weights) == ["c10"]  # the record is not a tag of its own
    record_file.write_text(record_file.read_text().replace("1.7", "1.6"))
    with pytest.raises(ChecksumError, match="does not match the sha256"):
        read_training_record("lenet", weights_dir=weights)
    record_file.unlink()
    with pytest.raises(PretrainedWeightsError, match="is missing"):
        read_training_record("lenet", tag="c10", weights_dir=weights)
    # installed again from a run without a history: no record, none left behind
    (tmp_path / "run" / "history.json").unlink()
    meta = json.loads(install.install_weights(tmp_path / "run", weights_dir=weights).read_text())
    assert "record" not in meta and read_training_record("lenet", weights_dir=weights) is None
    assert sorted(p.name for p in weights.iterdir()) == ["lenet.c10.json", "lenet.c10.safetensors"]


#: Metrics of weights recorded without a test-time augmentation (as the lab recipe's are).
NO_TTA_METRICS = {
    "test_accuracy": 0.6628, "val_accuracy": 0.6654, "tta": None, "tta_test_accuracy": None,
    "tta_val_accuracy": None, "tta_flip": False, "tta_translate": False,
}  # fmt: skip


def install_tagged(
    weights_dir: Path, tag: str, recipe: dict[str, object], **metrics: object
) -> None:
    """lenet weights of ``tag`` installed into ``weights_dir``, trained with ``recipe``."""
    run_dir = weights_dir.parent / f"run-{tag}"
    make_run(run_dir)
    recorded = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**recorded, **metrics, "recipe": recipe}))
    install.install_weights(run_dir, weights_dir=weights_dir, tag=tag)


def test_the_table_lists_every_weights_default_first_with_its_recipe(tmp_path: Path) -> None:
    """Two tags of lenet: one row each (the default named as the model, the other ARCH.TAG
    right below it), the tag in its own column, the architecture listed once, and the notes
    say what each tag's recipe is, how the recipes differ and how to load a tagged one."""
    weights = tmp_path / "w"
    install_tagged(weights, "lab", {"batch_size": 500, "lr": 0.2, "cutout": 12, "seed": 3},
                   **NO_TTA_METRICS)  # fmt: skip
    install_tagged(weights, "c10", {"batch_size": 128, "lr": 0.1, "seed": 0})
    rows = table.model_table(["lenet", "resnet20"], weights_dir=weights)
    assert [(r.model, r.tag, r.default) for r in rows] == [
        ("lenet", "c10", True), ("lenet.lab", "lab", False), ("resnet20", None, True),
    ]  # fmt: skip
    assert [r.arch for r in rows] == ["lenet", "lenet", "resnet20"]
    lab = rows[1]
    assert (lab.test_accuracy, lab.tta, lab.tta_test_accuracy) == (0.6628, "none", None)
    md = table.render_markdown(rows)
    weights_part, architecture_part = md.split("**Architectures**")
    lines = [line for line in weights_part.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| Model | Recipe | Test acc. | Val acc. | TTA test / val acc. |")
    assert lines[2].startswith(
        "| lenet | c10 | 63.01% | 62.22% | 65.12%\u00a0/\u00a064.31% (flip) |"
    )
    assert lines[3].startswith("| lenet.lab | lab | 66.28% | 66.54% | — | 12\u00a0x")  # no TTA
    assert len(lines) == 4
    lenet_lines = [line for line in architecture_part.splitlines() if line.startswith("| lenet")]
    assert len(lenet_lines) == 1 and lenet_lines[0].startswith("| lenet | 62.01\u00a0K | 651.72")
    assert "*c10* (lenet): cifarzoo's own recipe" in md
    assert "*lab* (lenet): the lab's recipe" in md
    assert (
        "lenet.lab differs from lenet in `batch_size` (500 vs 128), `lr` (0.2 vs 0.1) and "
        "`cutout` (12 vs 0)." in md
    )  # the seed is no difference of recipe
    assert '`cifarzoo.create_model("lenet.lab", pretrained=True)`' in md
    assert '`timm.create_model("cifar_lenet.lab", pretrained=True)`' in md
    assert "``cifarzoo eval lenet.lab --pretrained``" in table.render_rst(rows)
    # the default's row alone: no tagged name to explain, the tag still named
    alone = table.render_markdown(rows[:1])
    assert "*c10* (lenet)" in alone and "create_model(" not in alone and "differs" not in alone


def test_a_tag_of_its_own_is_the_default_and_every_shipped_tag_is_described(
    tmp_path: Path,
) -> None:
    """Weights of one tag only (resnet18.lab) are their architecture's default: named as the
    model; and each tag shipped in the package has its recipe described in the table's note."""
    install_tagged(tmp_path / "w", "lab", {"batch_size": 500}, **NO_TTA_METRICS)
    (row,) = table.model_table(["lenet"], weights_dir=tmp_path / "w")
    assert (row.model, row.tag, row.default) == ("lenet", "lab", True)
    shipped = {p.name.split(".")[1] for p in PACKAGED_WEIGHTS_DIR.glob("*.safetensors")}
    assert shipped <= set(TAG_RECIPES), "describe the new tag in cifarzoo.pretrained.TAG_RECIPES"
