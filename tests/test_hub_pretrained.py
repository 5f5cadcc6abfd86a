"""``cifarzoo publish --pretrained``: Hub folders built from the weights shipped in the package,
through the real files, timm and huggingface_hub.

No network: every test runs with ``huggingface_hub.constants.HF_HUB_OFFLINE`` set, except the
upload one, which points huggingface_hub at a local port where nothing listens.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file, save_file

import cifarzoo
from cifarzoo import formats, hub
from cifarzoo.cli import main
from cifarzoo.hub_source import shipped_source
from cifarzoo.pretrained import (
    PACKAGED_WEIGHTS_DIR,
    PretrainedWeightsError,
    list_weights,
    read_training_record,
    read_weights_meta,
    shipped_weights,
)

REPO = "cifarzoo/lenet-lab"
#: What a run folder's publish writes besides the weights, config, card and metrics, as built
#: from the training record shipped with lenet.lab.
RECORD_FILES = {"history.json", "grad_flow.json", "loss.png", "accuracy.png", "per_class.png"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE at import; its own tests patch the constant.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def publish_cli(*words: str) -> int:
    return main(["publish", *words])


@pytest.fixture(scope="module")
def lab_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "lenet-lab"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(constants, "HF_HUB_OFFLINE", True)
        words = ["--pretrained", "lenet.lab", "--repo-id", REPO, "--dry-run", "--out", str(out)]
        assert publish_cli(*words) == 0
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_results(card: ModelCard) -> dict[tuple[str, str], float]:
    return {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}


def test_the_folder_holds_the_shipped_weights_and_record(lab_folder: Path) -> None:
    names = {p.name for p in lab_folder.iterdir()}
    assert names == {"README.md", "config.json", "metrics.json", "model.safetensors"} | RECORD_FILES
    meta = read_weights_meta("lenet", tag="lab")
    assert meta is not None
    assert sha256(lab_folder / "model.safetensors") == meta["sha256"]
    assert (lab_folder / "model.safetensors").read_bytes() == (
        PACKAGED_WEIGHTS_DIR / "lenet.lab.safetensors"
    ).read_bytes()
    record = read_training_record("lenet", tag="lab")
    assert record is not None
    assert json.loads((lab_folder / "history.json").read_text()) == record["history"]
    assert json.loads((lab_folder / "grad_flow.json").read_text()) == record["grad_flow"]
    assert json.loads((lab_folder / "metrics.json").read_text()) == meta["metrics"]
    for png in ("loss.png", "accuracy.png", "per_class.png"):
        assert (lab_folder / png).read_bytes().startswith(b"\x89PNG")
    config = json.loads((lab_folder / "config.json").read_text())
    assert config["pretrained_cfg"]["notes"] == [f"sha256:{meta['sha256']}"]


def test_timm_loads_the_folder_as_the_shipped_model(lab_folder: Path) -> None:
    loaded = timm.create_model(f"local-dir:{lab_folder}", pretrained=True).eval()
    shipped = cifarzoo.create_model("lenet.lab", pretrained=True).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), shipped(x))
    # the lab weights are not the default ones: the folder is not lenet.c10
    with torch.no_grad():
        assert not torch.equal(cifarzoo.create_model("lenet", pretrained=True).eval()(x), loaded(x))


def test_a_damaged_folder_is_refused(lab_folder: Path, tmp_path: Path) -> None:
    """The sha256 in config.json is checked before timm reads the weights."""
    copy = tmp_path / "copy"
    shutil.copytree(lab_folder, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(PretrainedWeightsError, match="sha256 mismatch"):
        timm.create_model(f"local-dir:{copy}", pretrained=True)


def test_the_card_headline_is_the_recorded_single_pass_accuracy(lab_folder: Path) -> None:
    meta = read_weights_meta("lenet", tag="lab")
    assert meta is not None
    metrics = meta["metrics"]
    card = ModelCard.load(lab_folder / "README.md")
    assert card_results(card) == {
        ("test", "Test accuracy, one forward pass (%)"): round(100 * metrics["test_accuracy"], 2),
        ("validation", "Validation accuracy, one forward pass (%)"): round(
            100 * metrics["val_accuracy"], 2
        ),
    }
    assert card.data.eval_results[0].metric_value == round(100 * metrics["test_accuracy"], 2)
    assert {r.dataset_name for r in card.data.eval_results} == {metrics["data"]}
    text = card.text
    assert metrics["data"] == "CIFAR-10 (JPEG mirror)"
    assert "is a JPEG re-encoding of CIFAR-10's images" in text
    assert f"| Epochs | {metrics['epochs']} |" in text
    assert f"| Hardware | {metrics['hardware']} |" in text
    assert f"| Training time | {formats.duration(metrics['seconds'])} |" in text
    assert f'"cutout": {metrics["recipe"]["cutout"]}' in text  # the recipe
    assert "TTA" not in text  # lenet.lab recorded none
    assert 'cifarzoo.create_model("lenet.lab", pretrained=True)' in text
    assert all(f"![{Path(p).stem}]({p})" in text for p in RECORD_FILES if p.endswith(".png"))
    assert "(safetensors, float32)" in text and "stores the weights in" not in text


def test_the_default_weights_of_a_bare_architecture(tmp_path: Path) -> None:
    """lenet is lenet.c10: no record, so no curves; its TTA figures are labelled as TTA."""
    folder = tmp_path / "c10"
    words = ["--pretrained", "lenet", "--repo-id", "o/lenet", "--dry-run", "--out", str(folder)]
    assert publish_cli(*words) == 0
    assert {p.name for p in folder.iterdir()} == {
        "README.md",
        "config.json",
        "metrics.json",
        "model.safetensors",
    }
    meta = read_weights_meta("lenet", tag="c10")
    assert meta is not None
    assert sha256(folder / "model.safetensors") == meta["sha256"]
    card = ModelCard.load(folder / "README.md")
    metrics = meta["metrics"]
    assert card_results(card) == {
        ("test", "Test accuracy, one forward pass (%)"): round(100 * metrics["test_accuracy"], 2),
        ("validation", "Validation accuracy, one forward pass (%)"): round(
            100 * metrics["val_accuracy"], 2
        ),
        ("test", "Test accuracy, flip TTA (%)"): round(100 * metrics["tta_test_accuracy"], 2),
        ("validation", "Validation accuracy, flip TTA (%)"): round(
            100 * metrics["tta_val_accuracy"], 2
        ),
    }
    assert "Training curves" not in card.text
    assert 'cifarzoo.create_model("lenet.c10", pretrained=True)' in card.text


def copy_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(PACKAGED_WEIGHTS_DIR, folder)
    return folder


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_shipped_files_are_refused(tmp_path: Path) -> None:
    folder = copy_weights(tmp_path)
    assert shipped_source("lenet.lab", weights_dir=folder).sha256 == sha256(
        folder / "lenet.lab.safetensors"
    )
    flip_last_byte(folder / "lenet.lab.record.json")
    with pytest.raises(PretrainedWeightsError, match=r"record\.json does not match the sha256"):
        shipped_source("lenet.lab", weights_dir=folder)
    flip_last_byte(folder / "lenet.lab.safetensors")
    with pytest.raises(PretrainedWeightsError, match="sha256 mismatch"):
        shipped_source("lenet.lab", weights_dir=folder)
    # changed after it was read: checked again as it is loaded and copied
    source = shipped_source("lenet.c10", weights_dir=folder)
    flip_last_byte(folder / "lenet.c10.safetensors")
    with pytest.raises(PretrainedWeightsError, match="sha256 mismatch"):
        hub.build_hub_folder(source, "o/n", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_float16_weights_load_as_float32(tmp_path: Path) -> None:
    """Weights shipped in float16 (as install_weights(dtype="float16") ships them): the card
    says so, and the folder loads into float32 parameters."""
    folder = copy_weights(tmp_path)
    file = folder / "lenet.lab.safetensors"
    state = load_file(file)
    save_file({k: v.half() for k, v in state.items()}, str(file), {"model": "lenet"})
    meta_path = folder / "lenet.lab.json"
    meta = json.loads(meta_path.read_text())
    meta.update(sha256=sha256(file), weights_dtype="float16")
    meta_path.write_text(json.dumps(meta))

    out = hub.build_hub_folder(
        shipped_source("lenet.lab", weights_dir=folder), REPO, tmp_path / "o"
    )
    text = ModelCard.load(out / "README.md").text
    assert "`model.safetensors` stores the weights in float16" in text
    assert "load them as float32" in text and "(safetensors, float16)" in text
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    widened = cifarzoo.create_model("lenet").eval()
    widened.load_state_dict({k: v.half().float() for k, v in state.items()})
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), widened(x))


def test_bad_names_list_the_shipped_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("lenet.nope", "nosuchnet", "resnet34.lab"):
        out = tmp_path / name
        words = ["--pretrained", name, "--repo-id", "o/n", "--dry-run", "--out", str(out)]
        assert publish_cli(*words) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{name!r} names no weights shipped in the package" in err
        shipped = ", ".join(f"{e.arch}.{e.tag}" for e in list_weights())
        assert f"one of: {shipped}\n" in err and "lenet.lab" in shipped
        assert not out.exists()
    # published on the Hub only, or recorded unpublished: nothing to build a folder from
    folder = copy_weights(tmp_path)
    meta = json.loads((folder / "lenet.lab.json").read_text())
    (folder / "lenet.hub.json").write_text(json.dumps({**meta, "file": None, "hf_hub_id": "o/n"}))
    assert "lenet.hub" not in shipped_weights(folder)
    assert "lenet.lab" in shipped_weights(folder)
    with pytest.raises(ValueError, match=f"names no weights shipped in {folder}"):
        shipped_source("lenet.hub", weights_dir=folder)


def test_nothing_a_user_made_is_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    words = ["--pretrained", "lenet.lab", "--repo-id", REPO, "--dry-run", "--out", str(tmp_path)]
    assert publish_cli(*words) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_upload_without_network_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    out = tmp_path / "kept"
    assert publish_cli("--pretrained", "lenet.lab", "--repo-id", REPO, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot upload to {REPO}" in err and "check the network connection" in err
    assert f"The folder is built in {out}; upload it later" in err
    assert (out / "model.safetensors").is_file()
