"""Loading checks, Hub folders and publishing, through the real timm and huggingface_hub code.

No network: every test runs with ``huggingface_hub.constants.HF_HUB_OFFLINE`` set, and Hub
downloads resolve from a cache laid out in tmp_path as huggingface_hub lays it out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, constants, errors, hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file
from torch import nn

import cifarzoo
from cifarzoo import hub, runs
from cifarzoo.checkpoint import ChecksumError, load_weights
from cifarzoo.cli.publish import add_publish_parser
from cifarzoo.hub_source import run_source
from cifarzoo.models import _loading
from cifarzoo.pretrained import PretrainedWeightsError

DATA = "CIFAR-10 (JPEG mirror)"
REPO = "cifarzoo-test/lenet"
# A 1x1 PNG, to stand for a training curve.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101005f1d4a8e0000000049454e44ae426082"
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE at import; its own tests patch the constant.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def write_weights(model: nn.Module, path: Path) -> str:
    """Save like `cifarzoo train`: safetensors plus a sha256sum-format sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def make_run(run_dir: Path, arch: str = "lenet", seed: int = 0, **metrics: object) -> nn.Module:
    """A `cifarzoo train`-style output folder with a random-init model."""
    torch.manual_seed(seed)
    model = cifarzoo.create_model(arch).eval()
    write_weights(model, run_dir / "model.safetensors")
    record = {
        "model": arch,
        "test_accuracy": 0.6512,  # one forward pass
        "val_accuracy": 0.6431,
        "tta": "flip",
        "tta_test_accuracy": 0.6631,
        "tta_val_accuracy": 0.6545,
        "tta_flip": True,
        "tta_translate": False,
        "per_class_accuracy": dict.fromkeys(cifarzoo.CIFAR10_CLASSES, 0.65),
        "epochs": 12,
        "seconds": 95.5,
        "data": DATA,
        "hardware": {"device": "NVIDIA H200"},
        "recipe": {"optimizer": "sgd", "lr": 0.1, "batch_size": 512},
        **metrics,
    }
    (run_dir / "metrics.json").write_text(json.dumps(record))
    (run_dir / "curves.png").write_bytes(PNG)
    return model


def make_hub_cache(cache: Path, repo_id: str, folder: Path) -> str:
    """Lay out ``folder`` as huggingface_hub's cache holds a downloaded repository:
    refs/main -> commit, snapshots/<commit>/<file> -> ../../blobs/<hash>."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, blob)
        (snapshot / f.name).symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return commit


def same_params(a: nn.Module, b: nn.Module, skip: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if not (skip and k.startswith(skip))]
    return all(torch.equal(sa[k], sb[k]) for k in keys)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, make_run(run_dir)


@pytest.fixture(scope="module")
def hub_folder(run: tuple[Path, nn.Module], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub.build_hub_folder(run[0], REPO, tmp_path_factory.mktemp("hub") / "out")


# --- local files -----------------------------------------------------------------------------


def test_weights_keyword_loads_the_file_everywhere(run: tuple[Path, nn.Module]) -> None:
    run_dir, original = run
    weights = run_dir / "model.safetensors"
    assert not same_params(cifarzoo.lenet(), original)  # random init differs
    loaded = [
        cifarzoo.lenet(weights=weights),
        cifarzoo.lenet(weights=run_dir),  # a folder holding model.safetensors
        cifarzoo.create_model("lenet", weights=str(weights)),
        timm.create_model("cifar_lenet", weights=weights),
        timm.create_model(
            "cifar_lenet", pretrained=True, pretrained_cfg_overlay=dict(file=str(weights))
        ),
    ]
    for model in loaded:
        assert same_params(model, original)
        assert model.pretrained_cfg["file"] == str(weights)


def test_sidecar_mismatch_is_refused(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    shutil.copyfile(run[0] / "model.safetensors", weights)
    (tmp_path / "model.safetensors.sha256").write_text("0" * 64 + "  model.safetensors\n")
    with pytest.raises(
        PretrainedWeightsError, match=r"sha256 mismatch .*model\.safetensors\.sha256"
    ):
        cifarzoo.lenet(weights=weights)


def test_tampered_file_is_refused(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    for name in ("model.safetensors", "model.safetensors.sha256"):
        shutil.copyfile(run[0] / name, tmp_path / name)
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # flip bits of the last weight
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        timm.create_model(
            "cifar_lenet",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(tmp_path / "model.safetensors")),
        )


def test_garbage_sidecar_is_refused(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    shutil.copyfile(run[0] / "model.safetensors", tmp_path / "w.safetensors")
    (tmp_path / "w.safetensors.sha256").write_text("not a digest\n")
    with pytest.raises(PretrainedWeightsError, match="does not hold a sha256"):
        cifarzoo.lenet(weights=tmp_path / "w.safetensors")


def test_load_weights_shares_the_checks(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    """checkpoint.load_weights: the same sha256 checks and errors as pretrained loading, and
    safetensors only."""
    state = load_weights(run[0] / "model.safetensors")
    assert all(torch.equal(state[k], v) for k, v in run[1].state_dict().items())
    weights = tmp_path / "w.safetensors"
    shutil.copyfile(run[0] / "model.safetensors", weights)
    with pytest.raises(ChecksumError, match=r"sha256 mismatch .*does not match 1{64}"):
        load_weights(weights, expected_sha256="1" * 64)
    (tmp_path / "w.safetensors.sha256").write_text("garbage\n")
    with pytest.raises(ChecksumError, match="does not hold a sha256 digest"):
        load_weights(weights)
    assert set(load_weights(weights, verify=False)) == set(state)
    assert issubclass(ChecksumError, PretrainedWeightsError)
    torch.save(run[1].state_dict(), tmp_path / "model.pt")
    with pytest.raises(PretrainedWeightsError, match="safetensors weights only"):
        load_weights(tmp_path / "model.pt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(
        PretrainedWeightsError, match=r"weights file not found: .*nope\.safetensors"
    ):
        cifarzoo.resnet20(weights=tmp_path / "nope.safetensors")


def test_pickle_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(cifarzoo.lenet().state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="safetensors weights only, never pickle"):
        cifarzoo.lenet(weights=path)


def test_not_safetensors_content(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(PretrainedWeightsError, match="not a readable safetensors file"):
        cifarzoo.lenet(weights=path)


def test_no_published_weights() -> None:
    for make in (
        lambda: cifarzoo.resnet34(pretrained=True),
        lambda: cifarzoo.create_model("resnet34", pretrained=True),
        lambda: timm.create_model("cifar_resnet34", pretrained=True),
    ):
        with pytest.raises(PretrainedWeightsError) as info:
            make()
        message = str(info.value)
        assert "cifar_resnet34 has no published pretrained weights" in message
        assert "cifarzoo.resnet34(weights=PATH)" in message
        assert "pretrained_cfg_overlay=dict(file=PATH)" in message


def test_other_num_classes_keeps_backbone_resets_classifier(tmp_path: Path) -> None:
    torch.manual_seed(1)
    original = cifarzoo.resnet20()
    write_weights(original, tmp_path / "model.safetensors")
    model = cifarzoo.resnet20(weights=tmp_path / "model.safetensors", num_classes=4)
    assert model.get_classifier().weight.shape == (4, 64)
    assert same_params(model, original, skip="fc.")
    assert not torch.equal(model.fc.weight[:4], original.fc.weight[:4])


def test_loading_is_strict_for_the_wrong_architecture(tmp_path: Path) -> None:
    write_weights(cifarzoo.resnet20(), tmp_path / "model.safetensors")
    with pytest.raises(PretrainedWeightsError, match="do not fit this model"):
        cifarzoo.resnet32(weights=tmp_path / "model.safetensors")
    with pytest.raises(PretrainedWeightsError, match="do not fit this model"):
        cifarzoo.seresnet20(weights=tmp_path / "model.safetensors")


# --- Hub folder --------------------------------------------------------------------------------


def test_hub_folder_contents(hub_folder: Path, run: tuple[Path, nn.Module]) -> None:
    names = sorted(p.name for p in hub_folder.iterdir())
    assert names == ["README.md", "config.json", "curves.png", "metrics.json", "model.safetensors"]
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["architecture"] == "cifar_lenet"
    assert config["num_classes"] == 10
    assert config["label_names"] == list(cifarzoo.CIFAR10_CLASSES)
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 32, 32]
    assert cfg["mean"] == list(cifarzoo.CIFAR10_MEAN) and cfg["std"] == list(cifarzoo.CIFAR10_STD)
    assert "file" not in cfg and "hf_hub_id" not in cfg
    assert "description" not in cfg  # the packaged weights' description is not the run's
    digest = hashlib.sha256((run[0] / "model.safetensors").read_bytes()).hexdigest()
    assert cfg["notes"] == [f"sha256:{digest}"]


def test_hub_folder_of_a_run_with_its_training_record(tmp_path: Path) -> None:
    """A run's history.json and grad_flow.json go with its curves, listed in the card."""
    run_dir = make_run_dir(tmp_path / "run")
    history = {"epoch": [1], "train_loss": [2.0], "train_acc": [0.2], "eval_loss": [1.9]}
    grad_flow = {"every": 1, "layers": ["conv1"], "steps": [0], "norms": [[0.5]]}
    (run_dir / "history.json").write_text(json.dumps(history))
    (run_dir / "grad_flow.json").write_text(json.dumps(grad_flow))
    folder = hub.build_hub_folder(run_dir, REPO, tmp_path / "hub")
    assert json.loads((folder / "history.json").read_text()) == history
    assert json.loads((folder / "grad_flow.json").read_text()) == grad_flow
    text = ModelCard.load(folder / "README.md").text
    assert "- `history.json`: the training run's per-epoch loss" in text
    assert "- `grad_flow.json`: the training run's gradient norm of each layer" in text
    assert "- `metrics.json`: everything the training run measured" in text


#: The results of the model card of ``make_run``'s metrics: one forward pass, then flip TTA.
CARD_RESULTS = {
    ("test", "Test accuracy, one forward pass (%)"): 65.12,
    ("validation", "Validation accuracy, one forward pass (%)"): 64.31,
    ("test", "Test accuracy, flip TTA (%)"): 66.31,
    ("validation", "Validation accuracy, flip TTA (%)"): 65.45,
}


def card_results(card: ModelCard) -> dict[tuple[str, str], float]:
    return {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}


def test_model_card(hub_folder: Path) -> None:
    """The headline is one forward pass; the TTA figures are beside it, named as TTA."""
    card = ModelCard.load(hub_folder / "README.md")
    assert card_results(card) == CARD_RESULTS
    assert {r.dataset_name for r in card.data.eval_results} == {DATA}
    assert {r.metric_type for r in card.data.eval_results} == {"accuracy"}
    assert card.data.library_name == "timm"
    assert "model-index" in card.content
    text = card.text
    assert f"| Test accuracy, one forward pass ({DATA}, test split) | 65.12% |" in text
    assert f"| Test accuracy, flip TTA ({DATA}, test split) | 66.31% |" in text
    assert "| Validation accuracy, flip TTA (held-out split of the training set) | 65.45% |" in text
    assert f'timm.create_model("hf-hub:{REPO}", pretrained=True)' in text
    assert "import cifarzoo" in text
    assert "## Per-class test accuracy (one forward pass)" in text
    assert "| airplane | 65.00% |" in text  # per-class accuracy
    assert '"batch_size": 512' in text  # recipe
    assert "![curves](curves.png)" in text
    assert "NVIDIA H200" in text


def test_model_card_links_the_official_dataset_only_for_official_data(tmp_path: Path) -> None:
    card = hub.build_model_card(run_source(make_run_dir(tmp_path / "mirror")), REPO)
    assert {r.dataset_type for r in card.data.eval_results} == {"cifar-10-jpeg-mirror"}
    assert {r.dataset_name for r in card.data.eval_results} == {DATA}
    assert card.data.datasets is None
    assert f"{DATA} is a JPEG re-encoding of CIFAR-10's images, not the official" in card.text

    card = hub.build_model_card(
        run_source(make_run_dir(tmp_path / "official", data="CIFAR-10")), REPO
    )
    assert {r.dataset_type for r in card.data.eval_results} == {"cifar10"}
    assert {r.dataset_name for r in card.data.eval_results} == {"CIFAR-10"}
    assert card.data.datasets == ["cifar10"]
    assert "not the official" not in card.text

    card = hub.build_model_card(
        run_source(make_run_dir(tmp_path / "other", data="CIFAR-10 (re-labelled)")), REPO
    )
    assert card.data.datasets is None
    assert "a copy of CIFAR-10 other than its official release" in card.text


def make_run_dir(run_dir: Path, **metrics: object) -> Path:
    make_run(run_dir, **metrics)
    return run_dir


def test_model_card_of_a_run_written_before_the_single_pass_headline(tmp_path: Path) -> None:
    """Its test_accuracy was the flip-TTA figure, single_pass_test_accuracy the headline."""
    make_run(tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("tta", "tta_test_accuracy", "tta_val_accuracy"):
        del metrics[key]
    metrics.update(test_accuracy=0.6631, val_accuracy=0.6545)
    metrics.update(single_pass_test_accuracy=0.6512, single_pass_val_accuracy=0.6431)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    card = hub.build_model_card(run_source(tmp_path / "run"), REPO)
    assert card_results(card) == CARD_RESULTS
    assert "## Per-class test accuracy (flip TTA)" in card.text  # as it was measured


def test_model_card_without_validation_split(tmp_path: Path) -> None:
    make_run(tmp_path / "run", val_accuracy=None, tta_val_accuracy=None)
    card = hub.build_model_card(run_source(tmp_path / "run"), REPO)
    assert [r.dataset_split for r in card.data.eval_results] == ["test", "test"]
    assert (
        "| Validation accuracy, one forward pass (held-out split of the training set) | — |"
        in card.text
    )
    assert "Distilled" not in card.text


def test_model_card_names_the_teachers_of_a_distilled_run(tmp_path: Path) -> None:
    teachers = ["resnet20 (model.safetensors, sha256 " + "cd" * 32 + ")", "seresnet20 (pretrained)"]
    make_run(tmp_path / "run", teacher=teachers)
    card = hub.build_model_card(run_source(tmp_path / "run"), REPO)
    assert "Distilled: the targets mixed the labels" in card.text
    assert all(f"- {t}" in card.text for t in teachers)


def test_hub_folder_loads_through_local_dir(hub_folder: Path, run: tuple[Path, nn.Module]) -> None:
    loaded = timm.create_model(f"local-dir:{hub_folder}", pretrained=True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), run[1](x), rtol=0, atol=0)
    assert loaded.pretrained_cfg["mean"] == cifarzoo.CIFAR10_MEAN


def test_local_dir_with_tampered_weights(hub_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(hub_folder, folder)
    write_weights(cifarzoo.lenet(), folder / "model.safetensors")  # other weights, right shapes
    (folder / "model.safetensors.sha256").unlink()
    with pytest.raises(PretrainedWeightsError, match="recorded in the model's pretrained_cfg"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_local_dir_with_only_a_pickle(hub_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickle"
    folder.mkdir()
    shutil.copyfile(hub_folder / "config.json", folder / "config.json")
    torch.save(cifarzoo.lenet().state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(PretrainedWeightsError, match=r"no model\.safetensors in the folder"):
        timm.create_model(f"local-dir:{folder}", pretrained=True)


def test_weights_keyword_with_a_hub_folder(
    hub_folder: Path, run: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    """weights=FOLDER with a config.json is read as timm's local-dir: its recorded sha256 is
    checked and its num_classes applies."""
    for model in (
        cifarzoo.lenet(weights=hub_folder),
        cifarzoo.create_model("lenet", weights=str(hub_folder)),
        cifarzoo.create_model(f"local-dir:{hub_folder}", pretrained=True),
    ):
        assert same_params(model, run[1])
        assert model.pretrained_cfg["source"] == "local-dir"
        assert model.pretrained_cfg["label_names"] == list(cifarzoo.CIFAR10_CLASSES)
    four = cifarzoo.lenet(weights=hub_folder, num_classes=4)
    assert four.fc3.weight.shape == (4, 84)
    assert same_params(four, run[1], skip="fc3.")

    tampered = tmp_path / "tampered"
    shutil.copytree(hub_folder, tampered)
    data = bytearray((tampered / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # same shapes, other values: only the digest can tell
    (tampered / "model.safetensors").write_bytes(bytes(data))
    for load in (
        lambda: cifarzoo.lenet(weights=tampered),
        lambda: cifarzoo.create_model(f"local-dir:{tampered}", pretrained=True),
    ):
        with pytest.raises(ChecksumError, match=r"sha256 mismatch .*recorded in the model's"):
            load()
    with pytest.raises(PretrainedWeightsError, match="holds weights for cifar_lenet"):
        cifarzoo.resnet20(weights=hub_folder)


def test_hub_folder_of_another_num_classes(tmp_path: Path) -> None:
    torch.manual_seed(3)
    original = cifarzoo.lenet(num_classes=4).eval()
    run_dir = tmp_path / "run"
    write_weights(original, run_dir / "model.safetensors")
    metrics = {"model": "lenet", "test_accuracy": 0.5, "epochs": 1, "seconds": 1.0, "data": DATA}
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "num_classes": 4}))
    folder = hub.build_hub_folder(run_dir, REPO, tmp_path / "hub")
    model = cifarzoo.lenet(weights=folder)
    assert model.num_classes == 4 and same_params(model, original)
    ten = cifarzoo.lenet(weights=folder, num_classes=10)  # 10 != the weights' 4: fresh head
    assert ten.fc3.weight.shape == (10, 84) and same_params(ten, original, skip="fc3.")


def test_create_model_refuses_bad_sources(hub_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(PretrainedWeightsError, match=r"no config\.json in .*publish --dry-run"):
        cifarzoo.create_model(f"local-dir:{tmp_path}", pretrained=True)
    timm_model = tmp_path / "timm"
    shutil.copytree(hub_folder, timm_model)
    config = json.loads((timm_model / "config.json").read_text())
    (timm_model / "config.json").write_text(json.dumps({**config, "architecture": "resnet18"}))
    with pytest.raises(PretrainedWeightsError, match="'resnet18', which is not a cifarzoo model"):
        cifarzoo.create_model(f"local-dir:{timm_model}")
    with pytest.raises(ValueError, match="drop weights="):
        cifarzoo.create_model(f"local-dir:{hub_folder}", weights=hub_folder)


def test_hf_hub_from_offline_cache(
    hub_folder: Path, run: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    commit = make_hub_cache(cache, REPO, hub_folder)
    path = hf_hub_download(REPO, "model.safetensors", cache_dir=cache)
    assert Path(path).read_bytes() == (hub_folder / "model.safetensors").read_bytes()

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = run[1](x)
        for name in (f"hf-hub:{REPO}", f"hf-hub:{REPO}@{commit}"):
            model = timm.create_model(name, pretrained=True, cache_dir=cache).eval()
            torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
            # pinned to the commit of the file checked, which timm then read
            assert model.pretrained_cfg["hf_hub_id"] == f"{REPO}@{commit}"

        # The registry form: a cfg pinned to a commit, with the expected sha256 in its notes.
        note = json.loads((hub_folder / "config.json").read_text())["pretrained_cfg"]["notes"]
        overlay = dict(hf_hub_id=f"{REPO}@{commit}", notes=tuple(note))
        model = cifarzoo.lenet(pretrained=True, pretrained_cfg_overlay=overlay, cache_dir=cache)
        torch.testing.assert_close(model.eval()(x), expected, rtol=0, atol=0)
        assert model.pretrained_cfg["hf_hub_filename"] == "model.safetensors"

        for model in (
            cifarzoo.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=cache),
            cifarzoo.create_model(f"hf-hub:{REPO}@{commit}", pretrained=True, cache_dir=cache),
        ):
            torch.testing.assert_close(model.eval()(x), expected, rtol=0, atol=0)
            assert model.pretrained_cfg["hf_hub_id"] == f"{REPO}@{commit}"

    bad = dict(hf_hub_id=f"{REPO}@{commit}", notes=("sha256:" + "1" * 64,))
    with pytest.raises(ChecksumError, match=r"sha256 mismatch .*hf cache rm model/"):
        cifarzoo.lenet(pretrained=True, pretrained_cfg_overlay=bad, cache_dir=cache)


def test_timm_loads_the_commit_that_was_checked(
    hub_folder: Path, run: tuple[Path, nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main`` moves to a commit with other weights right after cifarzoo checked the file:
    timm still loads the checked file, from the commit it was pinned to."""
    cache = tmp_path / "cache"
    make_hub_cache(cache, REPO, hub_folder)
    repo = cache / f"models--{REPO.replace('/', '--')}"
    moved_to = repo / "snapshots" / ("f" * 40)
    shutil.copytree(hub_folder, moved_to)
    torch.manual_seed(5)
    save_file(dict(cifarzoo.lenet().state_dict()), str(moved_to / "model.safetensors"))
    verify = _loading.verify_sha256

    def verify_then_move_main(*args: Any, **kwargs: Any) -> str:
        digest = verify(*args, **kwargs)
        (repo / "refs" / "main").write_text(moved_to.name)
        return digest

    monkeypatch.setattr(_loading, "verify_sha256", verify_then_move_main)
    model = cifarzoo.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=cache)
    assert (repo / "refs" / "main").read_text() == moved_to.name
    assert same_params(model, run[1])


def test_hub_file_is_checked_before_timm_reads_it(hub_folder: Path, tmp_path: Path) -> None:
    """A cached model.safetensors that is not even safetensors: checked first, the sha256
    mismatch is reported (timm reading it first would fail on the format instead)."""
    folder = tmp_path / "repo"
    shutil.copytree(hub_folder, folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    cache = tmp_path / "cache"
    make_hub_cache(cache, REPO, folder)
    for make in (
        lambda: timm.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=cache),
        lambda: cifarzoo.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=cache),
    ):
        with pytest.raises(ChecksumError, match=r"sha256 mismatch .*recorded in the model's"):
            make()


def test_hf_hub_offline_empty_cache(tmp_path: Path) -> None:
    overlay = dict(hf_hub_id=f"{REPO}@{'0' * 40}")
    with pytest.raises(PretrainedWeightsError) as info:
        cifarzoo.lenet(pretrained=True, pretrained_cfg_overlay=overlay, cache_dir=tmp_path)
    message = str(info.value)
    assert f"repository {REPO}@{'0' * 40}" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert str(tmp_path) in message
    assert "weights=PATH" in message
    # Plain timm fetches the repository's config.json before any cifarzoo code runs, so the
    # error is huggingface_hub's own; cifarzoo.create_model reads it first and explains.
    with pytest.raises(LocalEntryNotFoundError):
        timm.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    with pytest.raises(PretrainedWeightsError) as info:
        cifarzoo.create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    message = str(info.value)
    assert f"could not get config.json from the Hugging Face Hub repository {REPO}" in message
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path) in message
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)


def http_error(cls: type[errors.HfHubHTTPError], status: int) -> errors.HfHubHTTPError:
    """A huggingface_hub HTTP error as hf_hub_download raises it for a Hub answer."""
    httpx2 = pytest.importorskip("httpx2")  # the HTTP client of huggingface_hub 2.x
    url = f"https://huggingface.co/{REPO}/resolve/main/model.safetensors"
    response = httpx2.Response(status, request=httpx2.Request("GET", url))
    return cls(f"{status} Client Error for url: {url}", response=response)


@pytest.mark.parametrize(
    ("cls", "status", "says"),
    [
        (errors.RepositoryNotFoundError, 404, f"no repository '{REPO}' on the Hub, or it is priv"),
        (errors.GatedRepoError, 403, f"gated: accept its access conditions at .*/{REPO} and log"),
        (errors.RevisionNotFoundError, 404, f"{REPO} has no revision 'v9'"),
        (errors.RemoteEntryNotFoundError, 404, "The repository has no model.safetensors"),
        (errors.HfHubHTTPError, 500, "The Hub request failed"),
    ],
)
def test_hub_errors_get_their_own_message(
    cls: type[errors.HfHubHTTPError], status: int, says: str
) -> None:
    err = http_error(cls, status)
    message = str(
        _loading.explain_hub_error(err, "cifar_lenet", f"{REPO}@v9", "model.safetensors", None)
    )
    assert re.search(says, message), message
    assert cls.__name__ in message
    assert "not in the cache" not in message and "Connect once" not in message


# --- bad runs and publishing ----------------------------------------------------------------


def test_bad_run_folders(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors not found"):
        runs.read_run(tmp_path)
    bad = tmp_path / "no-sidecar"
    shutil.copytree(run[0], bad)
    (bad / "model.safetensors.sha256").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors\.sha256 not found"):
        runs.read_run(bad)
    bad = tmp_path / "no-data"
    make_run(bad, data=None)
    with pytest.raises(ValueError, match="lacks data"):
        runs.read_run(bad)
    bad = tmp_path / "percent"
    make_run(bad, test_accuracy=65.1)
    with pytest.raises(ValueError, match="fraction"):
        runs.read_run(bad)
    with pytest.raises(ValueError, match="org/name"):
        hub.build_hub_folder(run[0], "no-slash", tmp_path / "x")
    with pytest.raises(FileExistsError, match="not empty"):
        hub.build_hub_folder(run[0], REPO, run[0])


def test_failed_build_leaves_nothing_and_can_be_rerun(
    run: tuple[Path, nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        # after model.safetensors and config.json are written
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(hub, "build_model_card", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            hub.build_hub_folder(run[0], REPO, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()  # an empty folder is fine
    hub.build_hub_folder(run[0], REPO, tmp_path / "out")
    assert (tmp_path / "out" / "README.md").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tempfile makes its folders during the test."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def fake_upload(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """HfApi's two network calls of an upload, recorded; the folder's files are read at the
    time of the call, as the real upload reads them."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> None:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self: HfApi, **kwargs: Any) -> CommitInfo:
        folder = Path(kwargs["folder_path"])
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
        calls.append(("upload_folder", {**kwargs, "files": files}))
        return CommitInfo(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/{'c' * 40}",
            commit_message=kwargs["commit_message"],
            commit_description="",
            oid="c" * 40,
        )

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_publish_uploads_and_pins_the_commit(
    run: tuple[Path, nn.Module],
    tmp_root: Path,
    fake_upload: list[tuple[str, dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = hub.publish(run[0], REPO, private=True)
    assert result.commit == "c" * 40 and result.pinned_id == f"{REPO}@{'c' * 40}"
    assert result.url == f"https://huggingface.co/{REPO}/commit/{'c' * 40}"
    (create, create_kw), (upload, upload_kw) = fake_upload
    assert (create, create_kw) == (
        "create_repo",
        {"repo_id": REPO, "exist_ok": True, "private": True},
    )
    assert upload == "upload_folder" and upload_kw["repo_id"] == REPO
    assert upload_kw["commit_message"] == "Upload cifar_lenet weights"
    digest = hashlib.sha256((run[0] / "model.safetensors").read_bytes()).hexdigest()
    assert upload_kw["files"]["model.safetensors"] == digest
    assert set(upload_kw["files"]) == {
        "README.md",
        "config.json",
        "curves.png",
        "metrics.json",
        "model.safetensors",
    }
    assert list(tmp_root.iterdir()) == []  # the temporary folder is gone after the upload

    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_publish_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["publish", "--run", str(run[0]), "--repo-id", REPO])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"pinned revision: {REPO}@{'c' * 40}" in out
    assert f"--hub-id {REPO}@{'c' * 40}" in out and "built" not in out
    assert list(tmp_root.iterdir()) == []


def test_publish_with_out_keeps_the_folder(
    run: tuple[Path, nn.Module], tmp_path: Path, fake_upload: list[tuple[str, dict[str, Any]]]
) -> None:
    result = hub.publish(run[0], REPO, out_dir=tmp_path / "out", commit_message="v1")
    assert result.folder == tmp_path / "out" and (result.folder / "config.json").is_file()
    assert fake_upload[1][1]["folder_path"] == tmp_path / "out"
    assert fake_upload[1][1]["commit_message"] == "v1"


def test_publish_failures_leave_no_temporary_folder(
    run: tuple[Path, nn.Module], tmp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match=r"offline mode is on.*pass --out FOLDER to keep it"):
        hub.publish(run[0], REPO)
    assert list(tmp_root.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        hub.publish(tmp_root / "no-run", REPO)
    assert list(tmp_root.iterdir()) == []


def test_publish_dry_run_and_offline_upload(run: tuple[Path, nn.Module], tmp_path: Path) -> None:
    result = hub.publish(run[0], REPO, out_dir=tmp_path / "dry", dry_run=True)
    assert result.commit is None and result.pinned_id is None
    assert (result.folder / "model.safetensors").is_file()
    with pytest.raises(RuntimeError, match=r"cannot upload to .*offline mode is on"):
        hub.publish(run[0], REPO, out_dir=tmp_path / "real")
    assert (tmp_path / "real" / "README.md").is_file()  # built before the upload


def test_publish_cli(
    run: tuple[Path, nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_publish_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    args = parser.parse_args(
        ["publish", "--run", str(run[0]), "--repo-id", REPO, "--dry-run", "--out", str(out)]
    )
    assert args.func(args) == 0
    assert f"built {out}" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["architecture"] == "cifar_lenet"
    with pytest.raises(SystemExit):
        parser.parse_args(["publish", "--run", str(run[0])])  # --repo-id is required
