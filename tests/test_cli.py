"""The cifarzoo command line: list, train (output folder), eval (checksums), errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifarzoo.cli import SUBCOMMANDS, build_parser, main


def test_parser_is_built_from_registered_subcommands() -> None:
    parser = build_parser()
    names = [f.__name__ for f in SUBCOMMANDS]
    assert names == [
        "add_list_parser",
        "add_train_parser",
        "add_eval_parser",
        "add_compare_parser",
        "add_publish_parser",
    ]
    args = parser.parse_args(["train", "resnet20", "--epochs", "3", "--resume", "--quiet"])
    assert (args.model, args.epochs, args.resume, args.quiet) == ("resnet20", 3, True, True)
    assert args.batch_size == 128 and args.lr == 0.1 and args.weight_decay == 5e-4
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "resnet20"])  # --weights or --pretrained is required


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "resnet*"]) == 0
    names = capsys.readouterr().out.split()
    assert "resnet20" in names and all(n.startswith("resnet") for n in names)


def test_module_entry_point() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(
        [sys.executable, "-m", "cifarzoo", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and "lenet" in proc.stdout.split()


def test_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "lenet",
            "--data",
            str(tmp_path),
            "--no-download",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "CIFAR-10 not found" in err and "cifar-10-batches-py" in err


def test_train_then_eval(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "lenet",
            "--data",
            str(fake_cifar_root),
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--train-subset",
            "640",
            "--val-size",
            "1000",
            "--data-name",
            "synthetic",
            "--crop-padding",
            "2",
            "--alternate-flip",
            "--sam-rho",
            "0.05",
            "--eval-every",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "model.safetensors.sha256",
        "history.json",
        "metrics.json",
        "checkpoint.pt",
        "loss.png",
        "accuracy.png",
        "per_class.png",
    } <= names
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "val_accuracy",
        "per_class_accuracy",
        "epochs",
        "seconds",
        "model",
        "data",
        "recipe",
        "hardware",
        "torch",
    ):
        assert key in metrics, key
    assert metrics["model"] == "lenet" and metrics["data"] == "synthetic"
    assert metrics["epochs"] == 2 and metrics["train_images"] == 640
    assert metrics["recipe"]["lr"] == 0.1 and len(metrics["per_class_accuracy"]) == 10
    assert metrics["recipe"]["crop_padding"] == 2 and metrics["tta_translate"] is False
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and history["eval_split"] == "val"
    assert history["eval_acc"][0] is None and history["eval_acc"][1] is not None  # every 2nd
    assert metrics["recipe"]["alternate_flip"] is True and metrics["recipe"]["sam_rho"] == 0.05
    digest = (out / "model.safetensors.sha256").read_text().split()[0]
    assert digest == metrics["sha256"]
    capsys.readouterr()

    report = tmp_path / "eval.json"
    eval_args = ["eval", "lenet", "--data", str(fake_cifar_root), "--json", str(report)]
    eval_args += ["--device", "cpu", "--tta"]
    assert main([*eval_args, "--weights", str(out / "model.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert "airplane" in printed and "all" in printed
    result = json.loads(report.read_text())
    # the saved weights (EMA) with flip TTA are exactly what train reported
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert result["num_samples"] == 10_000 and result["tta_translate"] is False
    # a run folder works as --weights too
    assert main([*eval_args, "--weights", str(out), "--tta-translate"]) == 0
    assert "(flip + translate TTA)" in capsys.readouterr().out
    assert json.loads(report.read_text())["tta_translate"] is True

    # a changed weights file is refused
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert (
        main(
            [
                "eval",
                "lenet",
                "--weights",
                str(weights),
                "--data",
                str(fake_cifar_root),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "sha256" in capsys.readouterr().err


def test_resume_continues_in_the_same_folder(fake_cifar_root: Path, tmp_path: Path) -> None:
    args = [
        "train",
        "lenet",
        "--data",
        str(fake_cifar_root),
        "--batch-size",
        "64",
        "--train-subset",
        "320",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--quiet",
        "--no-tta",
    ]
    assert main([*args, "--epochs", "1"]) == 0
    # a different epoch count is a different recipe: refused with a clear message
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    assert main([*args, "--epochs", "1", "--resume"]) == 0  # already complete: nothing to do
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1]
