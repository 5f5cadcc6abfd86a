"""``compare --pretrained``: a report from the shipped weights and their training records,
without training."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarzoo.compare import REPORT_HTML, REPORT_JSON, compare, rerender, synthetic_data
from cifarzoo.compare.shipped import choose_weights
from cifarzoo.data import CIFAR10Data, Split, load_cifar10
from cifarzoo.metrics import evaluate
from cifarzoo.models import create_model
from cifarzoo.pretrained import DEFAULT_TAG, read_training_record, read_weights_meta
from cifarzoo.runs import recorded_split

ARCHS = ("lenet", "resnet20", "resnet18", "densenet121")
TAGS = ("c10", "lab", "a1", "zz")


def _weights_dir(root: Path, shipped: dict[str, set[str]]) -> Path:
    """A weights folder with the metadata of ``shipped`` (their files are not needed to choose),
    and an unpublished lab weights of every other architecture, which is never chosen."""
    for arch in ARCHS:
        for tag in shipped.get(arch) or {"lab"}:
            meta = {"file": f"{arch}.{tag}.safetensors"} if arch in shipped else {}
            (root / f"{arch}.{tag}.json").write_text(json.dumps(meta))
    return root


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(ARCHS), st.sets(st.sampled_from(TAGS), min_size=1), min_size=1)
)
def test_bare_names_take_the_tag_they_all_have(shipped: dict[str, set[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _weights_dir(Path(tmp), shipped)
        chosen = choose_weights(list(shipped), folder)
        for arch in set(ARCHS) - set(shipped):  # its lab weights are recorded, not shipped
            with pytest.raises(ValueError, match=f"{arch} has no shipped weights"):
                choose_weights([arch], folder)
    common = set.intersection(*shipped.values())
    tags = {w.tag for w in chosen}
    if common:
        assert tags == {DEFAULT_TAG if DEFAULT_TAG in common else min(common)}
    else:  # each its default: c10, else the first in alphabetical order
        for w in chosen:
            has = shipped[w.arch]
            assert w.tag == (DEFAULT_TAG if DEFAULT_TAG in has else min(has))
    assert [w.name for w in chosen] == list(shipped)  # one weights each: the bare name
    assert [w.timm_name for w in chosen] == [f"cifar_{w.arch}.{w.tag}" for w in chosen]


def test_named_tags_are_kept_and_two_weights_of_one_arch_are_named_by_tag(
    tmp_path: Path,
) -> None:
    folder = _weights_dir(tmp_path, {"lenet": {"c10", "lab"}, "resnet18": {"lab"}})
    chosen = choose_weights(["lenet", "resnet18"], folder)
    assert [(w.arch, w.tag, w.name) for w in chosen] == [
        ("lenet", "lab", "lenet"),
        ("resnet18", "lab", "resnet18"),
    ]
    chosen = choose_weights(["cifar_lenet.c10", "lenet.lab"], folder)
    assert [w.name for w in chosen] == ["lenet.c10", "lenet.lab"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["lenett"], "unknown model 'lenett' (did you mean lenet?)"),
        (["resnet50"], "resnet50 has no shipped weights to compare; weights ship for: lenet.c10"),
        (["lenet.x"], "lenet has no shipped weights tagged 'x'; it has: lenet.c10, lenet.lab"),
        (["lenet", "lenet.c10"], "lenet.c10 is named twice"),
    ],
)
def test_names_that_mean_no_shipped_weights_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        choose_weights(names)
    assert message in str(err.value)


def test_the_validation_split_is_the_one_the_weights_training_held_out() -> None:
    data = synthetic_data(400, 100)
    split = recorded_split(data, {"train_images": 350, "recipe": {"seed": 3}})
    expected = data.hold_out(50, seed=3)
    assert split.val is not None and expected.val is not None
    assert torch.equal(split.val.images, expected.val.images)
    assert torch.equal(split.train.labels, expected.train.labels)
    assert recorded_split(data, {"train_images": 400}) is data  # nothing held out
    with pytest.raises(ValueError, match="without one"):
        recorded_split(expected, {"train_images": 300})


def test_a_report_of_shipped_weights_carries_their_records_and_evaluates_them(
    tmp_path: Path,
) -> None:
    data = synthetic_data(300, 200)
    report = compare(
        pretrained=["lenet.lab", "lenet"], data=data, out=tmp_path, quiet=True, amp=False
    )
    lab, c10 = report.models
    assert (lab.name, c10.name) == ("lenet.lab", "lenet.c10")
    record = read_training_record("lenet", tag="lab")
    assert record is not None and lab.history == record["history"]
    assert lab.grad_flow == record["grad_flow"]
    assert c10.history == {} and c10.grad_flow is None  # shipped without a record
    for m, tag in ((lab, "lab"), (c10, "c10")):
        meta = read_weights_meta("lenet", tag=tag)
        assert meta is not None and m.weights is not None
        assert m.weights["sha256"] == meta["sha256"]
        assert m.weights["recorded_test_accuracy"] == meta["metrics"]["test_accuracy"]
        assert m.weights["dtype"] == meta.get("weights_dtype", "float32")
        model = create_model(f"lenet.{tag}", pretrained=True)
        assert m.test["accuracy"] == evaluate(model, data.test, device="cpu").accuracy
    assert report.meta["epochs"] == 30 and report.meta["evaluation"] == "float32"
    assert set(report.meta["recipe"]["differs"]) >= {"batch_size", "cutout"}
    page = (tmp_path / REPORT_HTML).read_text()
    assert f"Weights cifar_lenet.lab: lenet.lab.safetensors ({lab.weights['dtype']}, sha256" in page
    assert "2 shipped weights (cifar_lenet.lab, cifar_lenet.c10), trained with recipes" in page
    summary = " ".join((tmp_path / "summary.txt").read_text().split())
    assert f"Weights cifar_lenet.c10: lenet.c10.safetensors ({c10.weights['dtype']}" in summary
    again = rerender(tmp_path / REPORT_JSON, tmp_path / "again")  # the weights are kept
    assert json.loads(again["json"].read_text())["models"][0]["weights"] == lab.weights


def test_shipped_weights_are_compared_on_their_own(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drop the model names and run folders"):
        compare(["lenet"], synthetic_data(100, 100), pretrained=["lenet"], quiet=True)


def test_cli_refuses_what_does_not_apply_to_shipped_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarzoo.cli import main

    missing = str(tmp_path / "no-data")
    for args, message in [
        (["--pretrained", "lenett", "--data", missing], "unknown model 'lenett'"),
        (["--pretrained", "lenet", "--val-size", "100"], "drop --val-size and --train-subset"),
        (["--pretrained", "lenet", "--train-subset", "100"], "drop --val-size and --train-subset"),
        (["--pretrained", "lenet", "--render", "r.json"], "drop the model names, --runs"),
    ]:
        assert main(["compare", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _lenet_lab_sized(name: str) -> CIFAR10Data:
    """Data the size of lenet.lab's training set plus 100 held-out images (blank: only the
    split sizes matter here), named ``name``."""
    train = 45_100
    labels = torch.arange(train) % 10
    test = Split(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), torch.arange(100) % 10)
    images = torch.zeros(train, 3, 32, 32, dtype=torch.uint8)
    return CIFAR10Data(train=Split(images, labels), test=test, name=name)


def test_the_validation_figure_is_the_records_last_epoch_on_the_data_it_names() -> None:
    record = read_training_record("lenet", tag="lab")
    assert record is not None
    data = _lenet_lab_sized("CIFAR-10 (JPEG mirror)")
    same = compare(pretrained=["lenet.lab"], data=data, quiet=True)
    (m,) = same.models
    assert m.val is None and m.last_val_accuracy == record["history"]["eval_acc"][-1]
    assert same.meta["data"]["train"] == 45_000 and same.meta["data"]["val"] == 100
    assert m.train_eval is not None  # the training error is measured here all the same
    data = _lenet_lab_sized("CIFAR-10")
    other = compare(pretrained=["lenet.lab"], data=data, quiet=True)
    (m,) = other.models
    assert m.val is not None and m.val["num_samples"] == 100  # other data: measured here


@pytest.mark.data
@pytest.mark.slow(seconds=20)
def test_the_report_reproduces_the_shipped_figures_in_float32(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarzoo.cli import main

    name = "CIFAR-10 (JPEG mirror)"
    args = ["--data", str(cifar10_root), "--data-name", name, "--amp", "off", "--quiet"]
    assert main(["compare", "--pretrained", "lenet.lab", *args, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    (m,) = report["models"]
    meta = read_weights_meta("lenet", tag="lab")
    assert meta is not None
    assert m["test"]["accuracy"] == meta["metrics"]["test_accuracy"]
    assert report["data"]["val"] == len(load_cifar10(cifar10_root).train) - 45_000
