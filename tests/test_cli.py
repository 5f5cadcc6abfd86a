"""The cifarzoo command line: list, train (output folder), eval (checksums), errors."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FAKE_PER_FILE, InterruptAt
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cifarzoo
from cifarzoo import cli, formats, runs, table
from cifarzoo.cli import (
    OPTION_FLAGS,
    RECIPE_FLAGS,
    SUBCOMMANDS,
    build_parser,
    main,
)
from cifarzoo.cli.train import _recipe_mismatch, _train_settings
from cifarzoo.pretrained import read_weights_meta
from cifarzoo.training import Recipe, RunOptions, recipe_summary


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
    # recipe options not given stay unset (--resume takes them from the checkpoint)
    assert not any(hasattr(args, k) for k in ("batch_size", "lr", "tta_flip", "amp", "seed"))
    cfg, _ = _train_settings(args, None, Path("unused") / "checkpoint.pt")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == (3, 128, 0.1, 5e-4)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "resnet20"])  # --weights or --pretrained is required


def _train_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = argparse.ArgumentParser()
    return cli.add_train_parser(parser.add_subparsers())


def test_recipe_flags_are_the_parsers_recipe_options() -> None:
    fields = {f.name for f in dataclasses.fields(Recipe)}
    shown = [a for a in _train_parser()._actions if a.help != argparse.SUPPRESS]
    exposed = {a.dest: a.option_strings[0] for a in shown if a.dest in fields}
    assert exposed == RECIPE_FLAGS and set(RECIPE_FLAGS) == fields  # every recipe field
    assert RECIPE_FLAGS["batch_size"] == "--batch-size" and OPTION_FLAGS["tta_flip"] == "--tta"
    # Left out, every recipe option is Recipe's default (a resume takes the checkpoint's).
    checkpoint = Path("unused") / "checkpoint.pt"
    args = build_parser().parse_args(["train", "resnet20"])
    assert not any(hasattr(args, field) for field in {**RECIPE_FLAGS, **OPTION_FLAGS})
    recipe, options = _train_settings(args, None, checkpoint)
    assert recipe == Recipe()
    assert options == RunOptions(checkpoint_dir=Path("unused"))
    args = build_parser().parse_args(["train", "resnet20", "--teacher", "resnet20", "--no-tta"])
    recipe, options = _train_settings(args, None, checkpoint)
    assert recipe == Recipe(distill_weight=0.5) and options.tta_flip is False
    args = build_parser().parse_args(["train", "resnet20", "--no-flip", "--amp", "bf16"])
    recipe, options = _train_settings(args, None, checkpoint)
    assert recipe.flip is False and options.amp is True


def test_train_help_shows_the_recipe_defaults() -> None:
    text = " ".join(_train_parser().format_help().split())
    d = Recipe()
    for says in (
        f"training epochs (default: {d.epochs})",
        f"peak learning rate (default: {d.lr})",
        f"(default: {d.schedule})",
        "(default: auto)",  # --amp by its name, not None
        "(default: 0.5 with --teacher, else 0)",
        "--tta also measure flip test-time augmentation, beside the single-pass accuracy;",
        "tta: off (default: on)",
    ):
        assert says in text, says


@settings(max_examples=50, deadline=None)
@given(
    epochs=st.integers(1, 300),
    batch_size=st.integers(1, 4096),
    lr=st.sampled_from([0.05, 0.1, 0.2, 0.4]),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-4, 5e-4, 5e-5]),
    schedule=st.sampled_from(["onecycle", "cosine", "constant"]),
    warmup_epochs=st.sampled_from([0.0, 2.0, 6.0, 0.5]),
    ema_decay=st.sampled_from([0.0, 0.999]),
    crop_padding=st.integers(0, 4),
    flip=st.booleans(),
    cutout=st.integers(0, 12),
)
def test_the_recipe_in_words_follows_its_fields(**fields: Any) -> None:
    """What the help and the docs say of a recipe comes from its fields, not from a copy."""
    recipe = Recipe(**fields)
    words = "; ".join(recipe_summary(recipe))
    assert words.startswith(f"{recipe.epochs} epochs at batch {recipe.batch_size};")
    assert f"peak learning rate {recipe.lr:g} " in words
    assert ("Nesterov" in words) == recipe.nesterov
    assert f"({recipe.schedule})" in words
    assert ("warm-up" in words) == (recipe.warmup_epochs > 0)
    assert ("decay 0.999" in words) == (recipe.ema_decay == 0.999)
    assert ("random crops" in words) == (recipe.crop_padding > 0)
    assert ("flips" in words) == recipe.flip
    assert (f"{recipe.cutout}-pixel cutout" in words) == (recipe.cutout > 0)
    decay = f"weight decay {recipe.weight_decay:.0e}".replace("e-0", "e-")
    assert decay.replace("0e+00", "0") in words


def test_the_help_and_the_docs_give_the_baseline_recipe_of_the_fields() -> None:
    baseline = recipe_summary(Recipe())
    help_text = " ".join(_train_parser().format_help().split())
    assert f"The defaults are the baseline CPU recipe: {'; '.join(baseline)}." in help_text
    docs = Path(__file__).resolve().parents[1] / "docs"
    assert ".. include:: _generated/baseline_recipe.rst" in (docs / "training.rst").read_text()


def test_recipe_mismatch_says_what_to_pass() -> None:
    differences: dict[str, tuple[Any, Any]] = {
        "epochs": (30, 2),
        "alternate_flip": (False, True),
        "grad_clip": (None, 1.0),
    }
    message = _recipe_mismatch(Path("run/checkpoint.pt"), differences)
    assert "--epochs 2 (checkpoint: --epochs 30); --alternate-flip (checkpoint: " in message
    assert "--no-alternate-flip); --grad-clip 1.0 (checkpoint: --grad-clip off)" in message
    assert "To resume, pass --epochs 30, --no-alternate-flip and --grad-clip off (" in message
    assert "another --out" in message
    only = _recipe_mismatch(Path("c.pt"), {"alternate_flip": (True, False)})
    assert "To resume, pass --alternate-flip (" in only
    # what the message says to pass is accepted
    args = build_parser().parse_args(["train", "lenet", "--grad-clip", "off", "--no-flip"])
    assert (args.grad_clip, args.flip) == (None, False)


def test_list_names_the_weights_of_every_tag_after_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cifarzoo.pretrained import weights_tags

    assert main(["list", "lenet", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tags = weights_tags("lenet")
    assert len(tags) > 1  # lenet ships c10 (its default) and lab
    assert [line.split()[0] for line in lines] == ["lenet"] + [f"lenet.{t}" for t in tags[1:]]
    for line, tag in zip(lines, tags, strict=True):
        meta = read_weights_meta("lenet", tag=tag)
        assert meta is not None
        accuracy = 100 * (runs.recorded_accuracy(meta["metrics"]).test or 0.0)
        assert f"pretrained: {accuracy:.2f}% test accuracy, one forward pass" in line
    assert main(["list", "lenet.lab"]) == 0  # a tag is not a pattern of architectures
    assert capsys.readouterr().out == ""


def test_list_marks_the_models_with_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "resnet*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert "resnet20" in names and all(n.startswith("resnet") for n in names)
    marked = {line.split()[0]: line for line in lines if len(line.split()) > 1}
    assert set(marked) == set(cifarzoo.list_models("resnet*", pretrained=True)) > set()
    for name, line in marked.items():
        meta = read_weights_meta(name)
        assert meta is not None
        accuracy = 100 * (runs.recorded_accuracy(meta["metrics"]).test or 0.0)
        assert f"pretrained: {accuracy:.2f}% test accuracy, one forward pass, on " in line


@pytest.mark.slow
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
            "--amp",
            "off",  # fp32 on every CPU (auto is bf16 on CPUs with bf16 instructions)
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
    eval_args += ["--device", "cpu"]
    assert main([*eval_args, "--weights", str(out / "model.safetensors")]) == 0
    printed, progress = capsys.readouterr()
    assert "airplane" in printed and "all" in printed
    # tqdm; the fake files are not the official release's, so the data is named unverified
    name = "CIFAR-10 (unverified copy)"
    assert f"lenet on {name} test:   0%|          | 0/{FAKE_PER_FILE}" in progress
    # eval's default is the TTA the run's metrics.json records (here train's default, flip)
    assert f"({FAKE_PER_FILE:,} images; flip TTA, as recorded with the weights)" in printed
    result = json.loads(report.read_text())
    # the saved weights (EMA) give exactly what train reported: one forward pass as the
    # accuracy, flip TTA beside it
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert result["tta_accuracy"] == pytest.approx(metrics["tta_test_accuracy"], abs=1e-12)
    assert result["num_samples"] == FAKE_PER_FILE and result["tta"] == metrics["tta"] == "flip"
    assert result["tta_flip"] is False and result["bf16"] is False  # of "accuracy"
    assert main([*eval_args, "--weights", str(out), "--no-tta"]) == 0
    assert f"({FAKE_PER_FILE:,} images; no TTA)" in capsys.readouterr().out
    no_tta = json.loads(report.read_text())
    assert (no_tta["tta"], no_tta["tta_accuracy"], no_tta["accuracy"]) == (
        None, None, result["accuracy"]
    )  # fmt: skip
    assert main([*eval_args, "--weights", str(out), "--tta"]) == 0  # still accepted
    assert json.loads(report.read_text())["tta_accuracy"] == result["tta_accuracy"]
    capsys.readouterr()
    # a run folder works as --weights too
    assert main([*eval_args, "--weights", str(out), "--tta-translate"]) == 0
    assert "images; flip + translate TTA)" in capsys.readouterr().out
    translated = json.loads(report.read_text())
    assert translated["tta"] == "flip + translate"
    # a run trained with --tta-translate: eval measures that way by default, overridable
    # (write_run records the evaluation's TTA beside the recipe, and the recipe holds it too)
    recipe = {**metrics["recipe"], "tta_translate": True}
    recorded = dict(metrics, tta_translate=True, recipe=recipe)
    (out / "metrics.json").write_text(json.dumps(recorded))
    assert main([*eval_args, "--weights", str(out / "model.safetensors")]) == 0
    assert "; flip + translate TTA, as recorded with the weights)" in capsys.readouterr().out
    assert json.loads(report.read_text())["tta_accuracy"] == translated["tta_accuracy"]
    assert main([*eval_args, "--weights", str(out), "--no-tta-translate"]) == 0
    assert f"({FAKE_PER_FILE:,} images; flip TTA)" in capsys.readouterr().out
    assert json.loads(report.read_text())["tta"] == "flip"
    # a run evaluated under bf16: so is eval by default, and --amp overrides it
    (out / "metrics.json").write_text(json.dumps(dict(recorded, bf16=True)))
    assert main([*eval_args, "--weights", str(out)]) == 0
    assert "; flip + translate TTA, as recorded with the weights; bf16)" in capsys.readouterr().out
    assert json.loads(report.read_text())["bf16"] is True
    assert main([*eval_args, "--weights", str(out), "--amp", "off"]) == 0
    assert f"({FAKE_PER_FILE:,} images; flip + translate TTA)" in capsys.readouterr().out
    assert json.loads(report.read_text())["bf16"] is False
    # metrics.json of another model says nothing about these weights: the plain default
    (out / "metrics.json").write_text(json.dumps(dict(recorded, model="resnet20")))
    assert main([*eval_args, "--weights", str(out)]) == 0
    assert f"({FAKE_PER_FILE:,} images; flip TTA)" in capsys.readouterr().out
    (out / "metrics.json").write_text(json.dumps(metrics))

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


def test_eval_pretrained_measures_as_the_shipped_metadata_records(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = read_weights_meta("lenet")["metrics"]  # type: ignore[index]
    acc, bf16 = runs.recorded_accuracy(recorded), runs.recorded_bf16(recorded)
    report = tmp_path / "eval.json"
    args = ["eval", "cifar_lenet", "--pretrained", "--data", str(fake_cifar_root)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # --threads sets torch's CPU threads, as for train
        assert main([*args, "--device", "cpu", "--json", str(report), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert ", as recorded with the weights)" in out
    # both figures, each beside the one recorded with the weights
    result = json.loads(report.read_text())
    measured = f"{100 * result['accuracy']:.2f}%"
    assert f"single pass: {measured} (recorded with the weights: {100 * acc.test:.2f}%)" in out
    assert acc.tta is not None and acc.tta_test is not None
    assert (
        f"{acc.tta} TTA: {100 * result['tta_accuracy']:.2f}% (recorded with the weights: "
        f"{100 * acc.tta_test:.2f}%)" in out
    )
    assert result["tta"] == acc.tta and result["bf16"] is bf16
    assert main([*args, "--device", "cpu", "--json", str(report), "--no-tta"]) == 0
    out = capsys.readouterr().out
    assert "as recorded" not in out and "TTA:" not in out
    no_tta = json.loads(report.read_text())
    assert no_tta["tta"] is None and no_tta["accuracy"] == result["accuracy"]
    other_amp = "off" if bf16 else "bf16"
    assert main([*args, "--device", "cpu", "--json", str(report), "--amp", other_amp]) == 0
    assert "as recorded" not in capsys.readouterr().out
    assert json.loads(report.read_text())["bf16"] is not bf16


def test_eval_of_tagged_weights_compares_with_their_own_record(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ARCH.TAG`` (with or without ``cifar_``) evaluates the weights of that tag beside the
    figures recorded with them; weights recorded without TTA are evaluated without one, and
    no TTA figure is claimed."""
    meta = read_weights_meta("lenet", tag="lab")
    assert meta is not None and meta["metrics"]["tta"] is None
    recorded = runs.recorded_accuracy(meta["metrics"])
    report = tmp_path / "eval.json"
    for name in ("lenet.lab", "cifar_lenet.lab"):
        args = ["eval", name, "--pretrained", "--data", str(fake_cifar_root), "--device", "cpu"]
        assert main([*args, "--json", str(report)]) == 0
        out = capsys.readouterr().out
        assert (
            f"{name} on CIFAR-10 (unverified copy) test ({FAKE_PER_FILE:,} images; no TTA, "
            "as recorded with the weights)" in out
        )
        result = json.loads(report.read_text())
        assert (
            f"single pass: {100 * result['accuracy']:.2f}% (recorded with the weights: "
            f"{100 * recorded.test:.2f}%)" in out
        )
        assert "TTA:" not in out and result["tta"] is None and result["tta_accuracy"] is None
    lab = cifarzoo.create_model("lenet.lab", pretrained=True)
    default = cifarzoo.create_model("lenet", pretrained=True)
    assert not torch.equal(lab.conv1.weight, default.conv1.weight)  # another file


@pytest.mark.data
@pytest.mark.slow(seconds=20)
def test_eval_of_tagged_weights_gives_the_tables_accuracy(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the data they were measured on, `cifarzoo eval lenet.lab --pretrained` prints, one
    forward pass, the test accuracy the weights table shows for lenet.lab."""
    (row,) = [r for r in table.model_table(["lenet"]) if r.model == "lenet.lab"]
    assert row.test_accuracy is not None and row.data is not None
    report = tmp_path / "eval.json"
    args = ["eval", "lenet.lab", "--pretrained", "--data", str(cifar10_root)]
    assert main([*args, "--data-name", row.data, "--device", "cpu", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    measured = json.loads(report.read_text())["accuracy"]
    # other CPUs' float32 kernels may round a borderline image differently: 2 images of slack
    assert measured == pytest.approx(row.test_accuracy, abs=2e-4)
    shown = formats.percent(row.test_accuracy)
    assert f"single pass: {formats.percent(measured)} (recorded with the weights: {shown})" in out
    assert "TTA:" not in out and "measured on" not in out


def test_eval_of_a_tag_that_does_not_exist_lists_the_tags_that_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "lenet.lab2", "--pretrained", "--data", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cifarzoo eval: error: ")
    assert "lenet has no weights tagged 'lab2'" in err
    assert "c10 (the default: lenet), lab (lenet.lab)" in err
    assert main(["eval", "cifar_resnet44.c10", "--pretrained", "--data", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet44 has no pretrained weights" in err
    with pytest.raises(ValueError, match="lenet has no weights tagged 'lab2'"):
        cifarzoo.create_model("lenet.lab2")
    with pytest.raises(ValueError, match="lenet has no weights tagged 'lab2'"):
        cifarzoo.create_model("cifar_lenet.lab2", pretrained=True)


def test_eval_says_when_the_data_differs_from_the_recorded_data(
    fake_cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped lenet was measured on a named copy of CIFAR-10; other data, or the same
    files unnamed (not the official release by their md5 sums), is said to be other data."""
    recorded = read_weights_meta("lenet")["metrics"]["data"]  # type: ignore[index]
    args = ["eval", "lenet", "--pretrained", "--data", str(fake_cifar_root), "--device", "cpu"]
    assert main([*args, "--no-tta"]) == 0
    out = capsys.readouterr().out
    assert "lenet on CIFAR-10 (unverified copy) test" in out
    assert f"recorded with the weights was measured on {recorded}, not on this data" in out
    assert main([*args, "--no-tta", "--data-name", recorded]) == 0
    assert "measured on" not in capsys.readouterr().out


def test_resume_continues_in_the_same_folder(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert main([*args, "--epochs", "1", "--lr", "0.05"]) == 0
    capsys.readouterr()
    # a different epoch count is a different recipe: refused, naming the flag and its value
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 2 (checkpoint: --epochs 1)" in err and "To resume, pass --epochs 1 (" in err
    assert "another --out" in err
    # the options left out come from the checkpoint: already complete, nothing to do
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["recipe"]["lr"] == 0.05 and metrics["recipe"]["epochs"] == 1
    capsys.readouterr()
    # other data is refused: the checkpoint records what it was trained on
    assert main([*[a if a != "320" else "640" for a in args], "--resume"]) == 2
    err = capsys.readouterr().err
    assert "the data differs" in err and "training images: checkpoint 320 vs now 640" in err
    assert main([*args, "--val-size", "1000", "--resume"]) == 2
    err = capsys.readouterr().err
    split = f"checkpoint test ({FAKE_PER_FILE:,} images) vs now val (1,000 images)"
    assert f"evaluation split: {split}" in err


def test_model_kwargs_build_the_model_and_a_resume_keeps_them(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarzoo.checkpoint import CHECKPOINT_NAME, load_checkpoint

    args = ["train", "resnet20", "--data", str(fake_cifar_root), "--epochs", "1"]
    args += ["--batch-size", "64", "--train-subset", "128", "--out", str(tmp_path)]
    args += ["--device", "cpu", "--quiet", "--no-tta", "--amp", "off"]
    given = ["--model-kwargs", "conv_init=pytorch", "zero_init_residual=False"]
    wanted = {"conv_init": "pytorch", "zero_init_residual": False}
    assert main([*args, *given]) == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["model_args"] == wanted
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert runs.recorded_model_args(metrics) == wanted
    # the run's weights are those of the model built so: PyTorch's start leaves no BN at zero
    weights = cifarzoo.create_model("resnet20", weights=str(tmp_path)).state_dict()
    assert weights["layer1.0.bn2.weight"].abs().min() > 0
    capsys.readouterr()
    # other arguments are refused, naming the flag; left out, they come from the checkpoint
    assert main([*args, "--model-kwargs", "conv_init=kaiming", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--model-kwargs conv_init=kaiming (checkpoint: --model-kwargs conv_init=pytorch " in err
    assert "leave --model-kwargs out" in err
    assert main([*args, "--resume"]) == 0
    assert main([*args, *given, "--resume"]) == 0
    # a run built without arguments: any given are refused, and leaving them out resumes it
    plain = [a if a != str(tmp_path) else str(tmp_path / "plain") for a in args]
    assert main(plain) == 0
    capsys.readouterr()
    assert main([*plain, *given, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "(checkpoint: none). To resume, leave it out (it comes from the checkpoint)" in err


def test_ctrl_c_hint_resumes_the_run(
    fake_cifar_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cifarzoo.models
    from cifarzoo.checkpoint import CHECKPOINT_NAME, load_checkpoint

    create = cifarzoo.models.create_model
    at = [5 + 2]  # 320 images / batch 64: 5 steps per epoch, so in epoch 2

    def interrupted(name: str, **kwargs: Any) -> nn.Module:
        return InterruptAt(create(name, **kwargs), at[0])

    monkeypatch.setattr(cifarzoo.models, "create_model", interrupted)
    out = tmp_path / "my run"  # a space: the hint must quote it
    args = ["train", "lenet", "--data", str(fake_cifar_root), "--epochs", "2", "--lr", "0.05"]
    args += ["--batch-size", "64", "--train-subset", "320", "--out", str(out), "--device", "cpu"]
    args += ["--quiet", "--no-tta"]
    assert main(args) == 130
    hint = capsys.readouterr().err.split("resume with: ", 1)[1].strip()
    assert hint == shlex.join(["cifarzoo", *args, "--resume"])
    assert load_checkpoint(out / CHECKPOINT_NAME)["epoch"] == 1
    at[0] = -1
    assert main(shlex.split(hint)[1:]) == 0  # the hint works as printed
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]


def test_bad_options_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodata = ["--data", str(tmp_path / "nodata"), "--no-download"]  # never read
    taken = tmp_path / "taken"
    taken.write_text("a file")

    def error(*argv: str) -> str:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        return err

    err = error("train", "lenet", "--model-kwargs", "conv_init=pytorch", *nodata)
    assert "--model-kwargs: lenet takes no argument 'conv_init'; its arguments: " in err
    assert "drop_rate" in err
    err = error("train", "resnet20", "--model-kwargs", "conv_init=xavier", *nodata)
    assert "conv_init must be one of 'kaiming', 'pytorch', got 'xavier'" in err
    with pytest.raises(SystemExit):
        main(["train", "--model-kwargs", "drop_rate=0.1", "lenet", *nodata])
    err = capsys.readouterr().err
    assert "argument --model-kwargs: expected KEY=VALUE with KEY an argument name" in err
    assert "got 'lenet' (the model name goes before --model-kwargs" in err
    with pytest.raises(SystemExit):
        main(["train", "lenet", "--model-kwargs", "2x=1", *nodata])
    assert "got '2x=1'\n" in capsys.readouterr().err
    err = error("train", "lenet", *nodata, "--out", str(taken))
    assert f"--out {taken}: {taken} is a file, not a folder" in err
    err = error("train", "lenet", *nodata, "--out", str(taken / "run"))
    assert f"{taken} is a file, so no folder can be created in it" in err
    err = error("eval", "lenet", "--weights", str(taken), *nodata, "--json", str(tmp_path))
    assert f"--json {tmp_path} is a folder; pass a file path" in err
    err = error("train", "lenet", *nodata, "--out", str(tmp_path / "o"), "--train-subset", "60000")
    assert "--train-subset must be between 1 and 50,000" in err and "got 60,000" in err
    err = error("train", "lenet", *nodata, "--val-size", "5000", "--train-subset", "45001")
    assert "--train-subset must be between 1 and 45,000" in err
    err = error("train", "lenet", *nodata, "--val-size", "50000")
    assert "--val-size must be between 0 (no validation split) and 49,999" in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    err = error("train", "lenet", *nodata, "--out", str(run), "--resume")
    assert f"cannot resume from {run / 'checkpoint.pt'}" in err and "--overwrite" in err
    with pytest.raises(SystemExit):  # argparse: "argument --epochs: must be a positive integer"
        main(["train", "lenet", *nodata, "--out", str(tmp_path / "o"), "--epochs", "0"])
    assert "argument --epochs: must be a positive integer, got 0" in capsys.readouterr().err
    err = error("train", "lenet", *nodata, "--out", str(tmp_path / "o"), "--crop-padding", "32")
    assert "CIFAR-10 not found" in err  # padding is checked against the images, once read


def test_os_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/model.safetensors")

    monkeypatch.setattr(cli, "run_list", disk_full)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err == "cifarzoo list: error: No space left on device: /runs/x/model.safetensors\n"
