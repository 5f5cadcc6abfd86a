"""Bad input, tried as a new user would (issue 31): a wrong result never looks right, and every
error is one line that names the option and the fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import synthetic_split

import cifarzoo
from cifarzoo.cli import main
from cifarzoo.data import DeviceLoader
from cifarzoo.training import Recipe, RunOptions, fit


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one-line error of a command that must fail with exit status 2."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _refused_by_argparse(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------


def test_cutout_is_bounded_by_the_image_size(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = synthetic_split(128)
    with pytest.raises(ValueError, match=r"cutout 32 must be smaller than the image size \(32x32"):
        DeviceLoader(images, labels, batch_size=64, train=True, cutout=32)
    DeviceLoader(images, labels, batch_size=64, train=False, cutout=32)  # no augmentation
    with pytest.raises(ValueError, match="cutout 64 must be smaller"):
        fit(cifarzoo.create_model("lenet"), (images, labels), Recipe(batch_size=64, cutout=64))
    data = ["--data", str(fake_cifar_root), "--train-subset", "320", "--device", "cpu"]
    err = _error(capsys, "train", "lenet", *data, "--out", str(tmp_path / "o"), "--cutout", "64")
    assert "cutout 64 must be smaller than the image size (32x32)" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def _no_data(tmp_path: Path) -> list[str]:
    """Options of a run whose data is never read (the error comes first)."""
    return ["--data", str(tmp_path / "nodata"), "--no-download", "--out", str(tmp_path / "o")]


def test_alternate_flip_needs_flip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="alternate_flip mirrors each image in every other"):
        Recipe(flip=False, alternate_flip=True)
    err = _error(capsys, "train", "lenet", *_no_data(tmp_path), "--no-flip", "--alternate-flip")
    assert "--alternate-flip or --no-flip" in err
    assert Recipe(flip=True, alternate_flip=True).alternate_flip


def test_momentum_0_names_no_nesterov(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, "train", "lenet", *_no_data(tmp_path), "--momentum", "0")
    assert "nesterov needs a momentum above 0" in err and "--no-nesterov" in err
    assert Recipe(momentum=0, nesterov=False).momentum == 0  # the fix it names is accepted


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--momentum", "1e30", "momentum"),
        ("--momentum", "1", "momentum"),
        ("--weight-decay", "1e30", "weight_decay"),
        ("--sam-rho", "1e30", "sam_rho"),
        ("--seed", str(10**20), "seed"),
    ],
)
def test_recipe_values_have_sane_upper_bounds(
    flag: str, value: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("train", "compare"):
        argv = [command, "lenet", *_no_data(tmp_path), flag, value]
        line = _refused_by_argparse(capsys, *[a for a in argv if a != "--no-download"])
        assert f"argument {flag}: must be in " in line and line.endswith(f"got {value}")
    number = int(value) if field == "seed" else float(value)
    with pytest.raises(ValueError, match=f"{field} must be in "):
        Recipe(**{field: number})


def test_soft_labels_must_be_probability_rows() -> None:
    images, labels = synthetic_split(128)
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    model = cifarzoo.create_model("lenet")
    not_probabilities = {
        "all -1 (trained to a loss of -20.5 before)": -torch.ones_like(one_hot),
        "rows summing to 2": 2 * one_hot,
        "NaN": one_hot * float("nan"),
    }
    for case, soft in not_probabilities.items():
        with pytest.raises(ValueError, match=r"soft labels \[N, C\], so each row must be class"):
            fit(model, (images, soft), Recipe(epochs=1, batch_size=64))
            pytest.fail(case)
    smoothed = 0.9 * one_hot + 0.01  # label smoothing: probabilities
    assert len(fit(model, (images, smoothed), Recipe(epochs=1, batch_size=64))) == 1


# --------------------------------------------------------------------------------------------
# Resuming
# --------------------------------------------------------------------------------------------


def test_resuming_with_another_thread_count_warns(tmp_path: Path) -> None:
    data, recipe = synthetic_split(128), Recipe(epochs=1, batch_size=64)
    options = RunOptions(device="cpu", quiet=True, checkpoint_dir=tmp_path)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        fit(cifarzoo.create_model("lenet"), data, recipe, options)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the same threads: not a word
            fit(cifarzoo.create_model("lenet"), data, recipe, options.replace(resume=True))
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match="trained with 1 CPU threads with 2; results will"):
            fit(cifarzoo.create_model("lenet"), data, recipe, options.replace(resume=True))
    finally:
        torch.set_num_threads(threads)
