"""Nothing a user made is lost to bad input (issue 31): ``train --overwrite`` checks its input
before it replaces a run, ``fit``'s ``checkpoint_dir`` is protected as ``--out`` is, and
``compare --out`` never replaces a report or writes into a run unasked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import TinyNet, lenet_train_args, synthetic_split

import cifarzoo
from cifarzoo.checkpoint import CHECKPOINT_NAME
from cifarzoo.cli import main
from cifarzoo.training import Recipe, RunOptions, fit


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    """A one-epoch lenet run of a few seconds into ``out``."""
    return lenet_train_args(data, "--out", str(out), "--epochs", "1", *extra)


@pytest.fixture(scope="module")
def finished_run(fake_cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `cifarzoo train` run (metrics.json, weights, checkpoint.pt...); copy it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(_train_args(fake_cifar_root, out)) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _damaged_data(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "damaged"
    shutil.copytree(root, copy)
    batch = copy / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])  # truncated
    return copy


@pytest.mark.slow(seconds=11)  # with the finished run it makes first
def test_overwrite_checks_every_input_before_it_replaces_the_run(
    fake_cifar_root: Path,
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _copy(finished_run, tmp_path)
    before = _contents(out)
    data = str(fake_cifar_root)
    bad = {
        "model typo": ["train", "resnet2O", "--data", data],
        "missing data": ["train", "lenet", "--data", str(tmp_path / "none"), "--no-download"],
        "truncated data": [
            "train",
            "lenet",
            "--data",
            str(_damaged_data(fake_cifar_root, tmp_path)),
        ],
        "missing teacher": [
            "train",
            "lenet",
            "--data",
            data,
            "--teacher",
            "lenet=/no/such/model.safetensors",
        ],
        "momentum 0": ["train", "lenet", "--data", data, "--momentum", "0"],
        "crops larger than the images": ["train", "lenet", "--data", data, "--crop-padding", "32"],
    }
    for case, argv in bad.items():
        small = ["--train-subset", "320", "--batch-size", "64", "--device", "cpu", "--quiet"]
        assert main([*argv, *small, "--out", str(out), "--overwrite"]) == 2, case
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, case
        assert _contents(out) == before, case  # the finished run is untouched
    assert main(_train_args(fake_cifar_root, out, "--seed", "1", "--overwrite")) == 0
    assert cifarzoo.runs.read_run(out).metrics["recipe"]["seed"] == 1


def test_fit_refuses_a_checkpoint_dir_that_holds_a_finished_run(
    fake_cifar_root: Path, finished_run: Path, tmp_path: Path
) -> None:
    out = _copy(finished_run, tmp_path)
    before = _contents(out)
    model = cifarzoo.create_model("resnet20")  # another architecture, too
    options = RunOptions(device="cpu", quiet=True, checkpoint_dir=out)
    with pytest.raises(ValueError) as e:
        fit(model, synthetic_split(128), Recipe(epochs=1, batch_size=64), options)
    message = str(e.value)
    assert f"checkpoint_dir {out} already holds a run (metrics.json, " in message
    assert "resume=True to continue it, overwrite=True to replace it" in message
    assert _contents(out) == before
    # the run is still whole: the command line resumes it (nothing left to train)
    assert main(_train_args(fake_cifar_root, out, "--resume")) == 0


def test_fit_refuses_another_runs_checkpoint_unless_resume_or_overwrite(tmp_path: Path) -> None:
    data = synthetic_split(128)
    recipe = Recipe(epochs=1, batch_size=64)
    options = RunOptions(device="cpu", quiet=True, checkpoint_dir=tmp_path)
    fit(TinyNet(), data, recipe, options)
    saved = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ValueError, match=r"already holds a run \(checkpoint\.pt\); pass resume"):
        fit(TinyNet(), data, recipe, options)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == saved
    with pytest.raises(ValueError, match="pass one of them"):
        options.replace(resume=True, overwrite=True)
    assert len(fit(TinyNet(), data, recipe, options.replace(resume=True))) == 1
    torch.manual_seed(1)
    longer = recipe.replace(epochs=2)
    assert len(fit(TinyNet(), data, longer, options.replace(overwrite=True))) == 2


@pytest.mark.slow(seconds=6)
def test_resume_with_no_checkpoint_says_so_even_when_quiet(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(_train_args(fake_cifar_root, out, "--resume")) == 0
    said = capsys.readouterr()
    assert f"no checkpoint at {out / CHECKPOINT_NAME}: starting a new run" in said.out + said.err


def test_the_hint_for_a_damaged_checkpoint_works(
    fake_cifar_root: Path, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished_run, tmp_path)
    (out / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    assert main(_train_args(fake_cifar_root, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "not a readable cifarzoo training checkpoint" in err and "--overwrite" in err
    assert main(_train_args(fake_cifar_root, out, "--overwrite")) == 0


def _compare_args(out: Path, *extra: str) -> list[str]:
    """A compare of a few seconds: lenet on 100 synthetic images, one epoch."""
    return [
        "compare",
        "lenet",
        "--synthetic",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "50",
        "--device",
        "cpu",
        "--train-eval-images",
        "0",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.slow(seconds=10)
def test_compare_out_refuses_a_report_or_a_run_unless_overwrite(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert main(_compare_args(report)) == 0
    before = _contents(report)
    capsys.readouterr()
    assert main(_compare_args(report, "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cifarzoo compare: error: --out {report} already holds a report (")
    assert "pass --overwrite to replace it, or another --out folder" in err
    assert err.count("\n") == 1 and _contents(report) == before
    assert main(_compare_args(report, "--seed", "1", "--overwrite")) == 0
    assert _contents(report) != before
    run = _copy(finished_run, tmp_path)
    run_files = _contents(run)
    capsys.readouterr()
    assert main(_compare_args(run)) == 2
    err = capsys.readouterr().err
    assert f"--out {run} holds a `cifarzoo train` run (metrics.json, " in err
    assert _contents(run) == run_files
