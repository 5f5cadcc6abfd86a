"""Bad input, tried as a new user would (issue 31): a wrong result never looks right, and every
error is one line that names the option and the fix."""

from __future__ import annotations

import errno
import resource
import shutil
import signal
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_split

import cifarzoo
from cifarzoo.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, save_weights
from cifarzoo.cli import build_parser, main
from cifarzoo.compare import compare, subset_train, synthetic_data
from cifarzoo.data import DeviceLoader, load_cifar10
from cifarzoo.devices import resolve_device
from cifarzoo.formats import DASH
from cifarzoo.training import ModelArgsMismatchError, Recipe, RunOptions, fit


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
        line = _refused_by_argparse(capsys, command, "lenet", *_no_data(tmp_path), flag, value)
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
        # a checkpoint that records no precision is checked for its threads all the same
        state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
        del state["options"]["amp"]
        state["threads"] = 1
        torch.save(state, tmp_path / CHECKPOINT_NAME)
        with pytest.warns(UserWarning, match="trained with 1 CPU threads with 2; results will"):
            fit(cifarzoo.create_model("lenet"), data, recipe, options.replace(resume=True))
    finally:
        torch.set_num_threads(threads)


def test_resuming_a_model_built_with_other_arguments_is_refused(tmp_path: Path) -> None:
    data, recipe = synthetic_split(128), Recipe(epochs=1, batch_size=64)
    options = RunOptions(device="cpu", quiet=True, checkpoint_dir=tmp_path, tta_flip=False)
    pytorch_start = {"conv_init": "pytorch"}
    fit(
        cifarzoo.create_model("resnet20", **pytorch_start),
        data,
        recipe,
        options,
        model_args=pytorch_start,
    )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["model_args"] == pytorch_start
    resume = options.replace(resume=True)
    with pytest.raises(ModelArgsMismatchError) as refused:
        fit(cifarzoo.create_model("resnet20"), data, recipe, resume, model_args={})
    message = str(refused.value)
    assert "built with {'conv_init': 'pytorch'}, this one with none" in message
    assert "another checkpoint_dir" in message
    # the same arguments resume; none given are not checked
    for args in (pytorch_start, None):
        fit(
            cifarzoo.create_model("resnet20", **pytorch_start),
            data,
            recipe,
            resume,
            model_args=args,
        )


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


@pytest.mark.slow(seconds=6)
def test_a_report_without_validation_never_calls_the_test_accuracy_val(tmp_path: Path) -> None:
    data = synthetic_data(100, 100)  # no val split: the curves measure the test set
    report = compare(
        ["lenet"],
        data,
        epochs=1,
        batch_size=50,
        device="cpu",
        out=tmp_path,
        train_eval_images=0,
        gate_images=0,
        quiet=True,
    )
    (model,) = report.models
    assert model.history["eval_split"] == "test" and model.last_val_accuracy is None
    summary = (tmp_path / "summary.txt").read_text()
    lines = summary.splitlines()
    head = next(line for line in lines if line.startswith("model"))
    row = next(line for line in lines if line.startswith("lenet")).split()
    assert head.count("test accuracy") == 1 and "val accuracy" in head
    assert row[6] == DASH  # the val accuracy column (after the params' and MACs' units)
    for text in (summary, (tmp_path / "report.html").read_text()):
        assert "(validation" not in text


def test_compare_refuses_a_train_subset_larger_than_the_data(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "report"), "--quiet"]
    err = _error(capsys, "compare", "lenet", "--data", str(fake_cifar_root), *out,
                 "--train-subset", "99999999")  # fmt: skip
    assert "--train-subset must be between 1 and 45,000" in err  # as train says
    err = _error(capsys, "compare", "lenet", "--synthetic", "100", "--train-subset", "101", *out)
    assert "--train-subset must be at most 100 (the --synthetic training images), got 101" in err
    line = _refused_by_argparse(capsys, "compare", "--synthetic", str(10**12), *out)
    assert "argument --synthetic: must be an integer from 1 to 50,000" in line
    assert not (tmp_path / "report").exists()
    with pytest.raises(ValueError, match="cannot take 101 training images of synthetic: it has"):
        subset_train(synthetic_data(100, 100), 101)


# --------------------------------------------------------------------------------------------
# Threads and memory
# --------------------------------------------------------------------------------------------


def test_threads_are_bounded_by_the_cpus_available(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarzoo.cli.argtypes import available_cpus

    cpus = available_cpus()
    for too_many in (str(cpus + 1), "100000", str(10**20)):
        line = _refused_by_argparse(capsys, "eval", "lenet", "--pretrained", "--threads", too_many)
        assert f"argument --threads: must be an integer from 1 to {cpus} (the CPUs available)" in (
            line
        )
        line = _refused_by_argparse(capsys, "train", "lenet", "--threads", too_many)
        assert "argument --threads: must be an integer from 1 to" in line
    assert build_parser().parse_args(["train", "lenet", "--threads", str(cpus)]).threads == cpus


def test_out_of_memory_reading_the_data_never_advises_deleting_it(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(fake_cifar_root, root)
    # a pickle that asks for a terabyte: what a damaged length field, or a machine out of
    # memory, gives
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc")
    with pytest.raises(MemoryError) as e:
        load_cifar10(root)
    assert f"out of memory while reading {batch}" in str(e.value)
    err = _error(capsys, "eval", "lenet", "--pretrained", "--data", str(root), "--device", "cpu")
    assert f"error: out of memory while reading {batch}" in err
    assert "delete" not in err.lower() and batch.is_file()


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------


def test_eval_refuses_weights_that_are_not_finite(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = cifarzoo.create_model("lenet").state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    weights = tmp_path / "model.safetensors"
    save_weights(state, weights)
    data = ["--data", str(fake_cifar_root), "--device", "cpu"]
    err = _error(capsys, "eval", "lenet", "--weights", str(weights), *data)
    assert f"the weights of {weights} hold NaN or infinite values ({first})" in err


def test_eval_refuses_a_run_whose_metrics_are_damaged(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_weights(cifarzoo.create_model("lenet").state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "metrics.json").write_text('{"model": "lenet", "test_accuracy": 0.9')  # cut off
    data = ["--data", str(fake_cifar_root), "--device", "cpu"]
    err = _error(capsys, "eval", "lenet", "--weights", str(tmp_path), *data)
    assert f"{tmp_path / 'metrics.json'} is not valid JSON" in err and "damaged" in err


# --------------------------------------------------------------------------------------------
# Devices and data folders
# --------------------------------------------------------------------------------------------


def test_devices_cifarzoo_cannot_use_are_named_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unusable = ["meta", "xpu", "foo"]
    if not torch.backends.mps.is_available():
        unusable.append("mps")
    for device in unusable:
        with pytest.raises(ValueError, match=f"device '{device}': "):
            resolve_device(device)
        err = _error(capsys, "train", "lenet", *_no_data(tmp_path), "--device", device)
        assert f"device '{device}': " in err and "--device cpu" in err
        assert "Expected one of" not in err and "privateuseone" not in err


def test_a_data_root_that_is_a_file_is_called_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=f"the data root {root} is a file, not a folder"):
        load_cifar10(root, download=True)
    out = ["--out", str(tmp_path / "o")]
    err = _error(capsys, "train", "lenet", "--data", str(root), "--download", *out)
    assert "is a file, not a folder" in err and "File exists" not in err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-batches-py").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="cifar-10-batches-py is a file, not the folder"):
        load_cifar10(tmp_path / "data")
    err = _error(capsys, "train", "lenet", "--data", str(tmp_path / "data"), "--download", *out)
    assert "is a file, not the folder of the CIFAR-10 python release" in err
    assert "does not exist" not in err


# --------------------------------------------------------------------------------------------
# The Python API
# --------------------------------------------------------------------------------------------


def test_models_name_a_numpy_batch_and_a_float64_batch(fake_cifar_root: Path) -> None:
    model = cifarzoo.create_model("resnet20")
    batch = np.zeros((2, 3, 32, 32), dtype=np.float32)
    with pytest.raises(TypeError, match=r"expects a torch\.Tensor batch .* got numpy\.ndarray"):
        model(batch)
    with pytest.raises(TypeError, match=r"has float32 weights but got a float64 batch") as e:
        model(torch.from_numpy(batch).double())
    assert "x.to(torch.float32)" in str(e.value)
    assert model(torch.from_numpy(batch)).shape == (2, 10)
    with pytest.raises(TypeError, match=r"val_size is a number of images .* got 0\.1"):
        load_cifar10(fake_cifar_root, val_size=0.1)  # type: ignore[arg-type]


def test_a_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path: Path) -> None:
    """A real failed write: the file size limit (EFBIG) stands in for a full disk (ENOSPC);
    torch's zip writer reported both as "unexpected pos" without the file."""
    path = tmp_path / CHECKPOINT_NAME
    state = {"model": {"w": torch.zeros(100_000)}}
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a signal
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, limit[1]))
        with pytest.raises(OSError) as e:
            save_checkpoint(state, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert e.value.errno == errno.EFBIG and e.value.filename == str(path)
    assert not list(tmp_path.iterdir())  # the temporary file is removed
    assert "inline_container" not in str(e.value)  # the CLI prints "File too large: PATH"
