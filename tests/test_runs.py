"""cifarzoo.runs: a run folder written by write_run reads back, file by file, as it was written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import cifarzoo
from cifarzoo import runs
from cifarzoo.checkpoint import load_weights, sha256_file
from cifarzoo.compare import synthetic_data
from cifarzoo.data import CIFAR10Data
from cifarzoo.training import History


def tiny_history() -> History:
    return History(
        epoch=[1, 2],
        train_loss=[2.3, 2.1],
        train_acc=[0.1, 0.2],
        eval_loss=[2.2, 2.0],
        eval_acc=[0.15, 0.25],
        lr=[0.1, 0.05],
        seconds=[1.5, 2.0],
        step_loss=[2.4, 2.3, 2.2, 2.1],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, CIFAR10Data, dict]:
    """A lenet run written by write_run: (folder, model, data, the metrics it returned)."""
    out = tmp_path_factory.mktemp("run")
    data = synthetic_data(60, 40, val_size=20)
    torch.manual_seed(0)
    model = cifarzoo.lenet()
    recipe = {"seed": 3, "tta_flip": True, "tta_translate": False, "amp": False}
    metrics = runs.write_run(
        out,
        "lenet",
        model,
        tiny_history(),
        data,
        recipe,
        wall_seconds=4.0,
        extra={"x": 1},
        quiet=True,
    )
    assert metrics is not None
    return out, model, data, metrics


def test_write_run_reads_back_as_written(written: tuple[Path, Any, CIFAR10Data, dict]) -> None:
    out, model, data, metrics = written
    assert runs.is_finished(out)
    assert runs.read_metrics(out) == json.loads(json.dumps(metrics))
    run = runs.read_run(out)
    assert (run.arch, run.timm_name, run.num_classes) == ("lenet", "cifar_lenet", 10)
    assert run.sha256 == metrics["sha256"] == sha256_file(out / runs.WEIGHTS_FILE)
    assert run.recipe == {"seed": 3, "tta_flip": True, "tta_translate": False, "amp": False}
    assert run.history() == runs.read_history(out) == tiny_history().to_dict()
    assert metrics["epochs"] == 2 and metrics["seconds"] == 3.5 and metrics["x"] == 1
    assert metrics["wall_seconds"] == 4.0 and metrics["train_images"] == 60
    # the recorded accuracies are those of the stored weights: the headline (and the per-class
    # figures) one forward pass, the TTA ones beside it, named
    loaded = run.load_model()
    stored = load_weights(out / runs.WEIGHTS_FILE)
    assert all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())
    single, single_val = (cifarzoo.evaluate(loaded, split) for split in (data.test, data.val))
    assert (metrics["test_accuracy"], metrics["val_accuracy"]) == (
        single.accuracy,
        single_val.accuracy,
    )
    assert (metrics["test_loss"], metrics["test_ece"]) == (single.loss, single.ece)
    assert list(metrics["per_class_accuracy"].values()) == single.per_class_accuracy
    assert metrics["confusion_matrix"] == single.confusion_matrix
    tta = [cifarzoo.evaluate(loaded, split, tta_flip=True) for split in (data.test, data.val)]
    assert metrics["tta"] == "flip"
    assert [metrics["tta_test_accuracy"], metrics["tta_val_accuracy"]] == [r.accuracy for r in tta]
    assert (metrics["tta_flip"], metrics["tta_translate"], metrics["bf16"]) == (True, False, False)
    assert runs.recorded_tta(metrics) == (True, False) and runs.recorded_bf16(metrics) is False
    assert runs.recorded_accuracy(metrics) == runs.RecordedAccuracy(
        single.accuracy, single_val.accuracy, "flip", tta[0].accuracy, tta[1].accuracy
    )


def test_recorded_metrics_belong_to_the_model_of_the_run(
    written: tuple[Path, Any, CIFAR10Data, dict],
) -> None:
    out, _, _, metrics = written
    expected = json.loads(json.dumps(metrics))
    assert runs.recorded_metrics("lenet", out) == expected
    assert runs.recorded_metrics("cifar_lenet", out / runs.WEIGHTS_FILE) == expected
    assert runs.recorded_metrics("resnet20", out) == {}  # another model's metrics say nothing
    assert runs.recorded_metrics("lenet", out.parent / "elsewhere" / "w.safetensors") == {}


def test_evaluation_keywords_win_over_the_recipe(tmp_path: Path) -> None:
    data = synthetic_data(30, 40)
    model = cifarzoo.lenet()
    recipe = {"tta_flip": True, "amp": True}
    metrics = runs.write_run(
        tmp_path, "lenet", model, tiny_history(), data, recipe, wall_seconds=1.0, quiet=True,
        amp=False, tta_flip=False,
    )  # fmt: skip
    assert metrics is not None and metrics["recipe"] == recipe
    assert (metrics["tta_flip"], metrics["bf16"]) == (False, False)
    assert metrics["test_accuracy"] == cifarzoo.evaluate(model, data.test).accuracy
    assert metrics["tta"] is metrics["tta_test_accuracy"] is metrics["tta_val_accuracy"] is None
    assert metrics["val_accuracy"] is None


def test_train_prints_the_single_pass_accuracy_as_the_headline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line a user reads: one forward pass as "test accuracy", TTA beside it, named."""
    data = synthetic_data(30, 40, val_size=20)
    model = cifarzoo.lenet()
    recipe = {"tta_flip": True, "tta_translate": True}
    metrics = runs.write_run(
        tmp_path, "lenet", model, tiny_history(), data, recipe, wall_seconds=1.0
    )
    assert metrics is not None
    out = capsys.readouterr().out
    test, val = metrics["test_accuracy"], metrics["val_accuracy"]
    tta_test, tta_val = metrics["tta_test_accuracy"], metrics["tta_val_accuracy"]
    assert (
        f"lenet: test accuracy {100 * test:.2f}%, val {100 * val:.2f}% (synthetic, one forward "
        f"pass); flip + translate TTA: test {100 * tta_test:.2f}%, val {100 * tta_val:.2f}%"
    ) in out
    # the per-class table printed is the single pass's (no TTA named under it)
    assert f"all          {100 * test:6.2f}%" in out and "TTA)" not in out


# The layouts of metrics.json that cifarzoo has written, and what each records.
SINGLE_PASS_LAYOUT = {
    "test_accuracy": 0.88, "val_accuracy": 0.89, "tta": "flip + translate",
    "tta_test_accuracy": 0.90, "tta_val_accuracy": 0.91, "tta_flip": True, "tta_translate": True,
}  # fmt: skip
TTA_HEADLINE_LAYOUT = {  # before the single-pass headline: test_accuracy was the TTA figure
    "test_accuracy": 0.90, "val_accuracy": 0.91, "single_pass_test_accuracy": 0.88,
    "single_pass_val_accuracy": 0.89, "recipe": {"tta_flip": True, "tta_translate": True},
}  # fmt: skip
GPU_RECIPE_LAYOUT = {  # benchmarks/gpu_recipe.py's earlier runs: TTA figures in a dict
    "test_accuracy": 0.88, "val_accuracy": 0.89, "tta_flip": False, "tta_translate": False,
    "tta": {"flip": True, "translate": True, "test_accuracy": 0.90, "val_accuracy": 0.91},
}  # fmt: skip


@pytest.mark.parametrize("metrics", [SINGLE_PASS_LAYOUT, TTA_HEADLINE_LAYOUT, GPU_RECIPE_LAYOUT])
def test_every_layout_reads_as_the_same_accuracies(metrics: dict[str, Any]) -> None:
    acc = runs.recorded_accuracy(metrics)
    assert (acc.test, acc.val, acc.tta, acc.tta_test, acc.tta_val) == (
        0.88, 0.89, "flip + translate", 0.90, 0.91
    )  # fmt: skip
    # only the old headline's per-class figures were measured with the TTA
    assert acc.per_class_tta == ("flip + translate" if metrics is TTA_HEADLINE_LAYOUT else None)


def test_runs_without_tta_and_unknown_tta_read_right() -> None:
    no_tta = {"test_accuracy": 0.8, "val_accuracy": None, "tta_flip": False}
    assert runs.recorded_accuracy(no_tta) == runs.RecordedAccuracy(0.8, None)
    # how test_accuracy was measured is not recorded: only an explicit single pass is one
    unknown = {"test_accuracy": 0.9, "single_pass_test_accuracy": 0.85}
    assert runs.recorded_accuracy(unknown) == runs.RecordedAccuracy(0.85, None)


def test_seed_runs_read_in_the_layout_of_their_metrics() -> None:
    old = {**TTA_HEADLINE_LAYOUT, "seed_runs": [{"seed": 0, "test_accuracy": 0.9, "kept": True}]}
    (run,) = runs.recorded_seed_runs(old)
    assert (run.test, run.tta, run.tta_test) == (None, "flip + translate", 0.9)
    new = {
        **SINGLE_PASS_LAYOUT,
        "seed_runs": [{"seed": 0, **runs.recorded_accuracy(SINGLE_PASS_LAYOUT).fields()}],
    }
    (run,) = runs.recorded_seed_runs(new)
    assert (run.test, run.tta_test) == (0.88, 0.90)


def test_restore_run_rebuilds_a_checked_folder_or_nothing(
    written: tuple[Path, Any, CIFAR10Data, dict], tmp_path: Path
) -> None:
    out, _, _, _ = written
    weights = (out / runs.WEIGHTS_FILE).read_bytes()
    history, metrics = runs.read_history(out), runs.read_metrics(out)
    runs.restore_run(tmp_path / "copy", weights, history, metrics)
    copy = runs.read_run(tmp_path / "copy")
    assert copy.sha256 == metrics["sha256"] and copy.metrics == metrics
    assert copy.history() == history
    assert (tmp_path / "copy" / runs.WEIGHTS_FILE).read_bytes() == weights

    with pytest.raises(ValueError, match="lacks epochs"):
        runs.restore_run(tmp_path / "bad", weights, history, {**metrics, "epochs": None})
    with pytest.raises(ValueError, match="unknown model"):
        runs.restore_run(tmp_path / "bad", weights, history, {**metrics, "model": "nonet"})
    assert not (tmp_path / "bad").exists()  # built aside: nothing is left of a refused run


def test_an_unfinished_folder_is_refused_by_every_reader(
    written: tuple[Path, Any, CIFAR10Data, dict], tmp_path: Path
) -> None:
    out, _, _, _ = written
    folder = tmp_path / "unfinished"
    folder.mkdir()
    for name in (runs.WEIGHTS_FILE, f"{runs.WEIGHTS_FILE}.sha256", runs.HISTORY_FILE):
        (folder / name).write_bytes((out / name).read_bytes())
    assert not runs.is_finished(folder)
    for read in (runs.read_metrics, runs.read_run, runs.check_weights_source):
        with pytest.raises(runs.UnfinishedRunError, match=r"no metrics\.json, which"):
            read(folder)
    runs.check_weights_source(folder / runs.WEIGHTS_FILE)  # a file: checked when it loads
    assert runs.recorded_metrics("lenet", folder) == {}
    (folder / runs.MARKER).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        runs.read_metrics(folder)


def test_gradient_records_round_trip(tmp_path: Path) -> None:
    assert runs.read_grad_flow(tmp_path) is None
    records = {"every": 2, "layers": ["conv1"], "steps": [0, 2], "norms": [[1.0], [0.5]]}
    runs.save_grad_flow(tmp_path, records)
    assert runs.read_grad_flow(tmp_path) == records
    assert json.loads((tmp_path / runs.GRAD_FLOW_FILE).read_text()) == records
