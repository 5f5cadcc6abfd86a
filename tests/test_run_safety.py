"""Runs never lose work (issue 17): run folders that are refused, versioned, locked and marked
finished; a SIGKILL at any point resumes to the same weights; and clear errors for bad input."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FAKE_PER_FILE, InterruptAt, lenet_train_args, synthetic_split
from flat_fit import fit
from huggingface_hub import constants
from torch import nn

import cifarzoo
from cifarzoo import runs
from cifarzoo.checkpoint import save_json, save_weights, sha256_file
from cifarzoo.cli import main
from cifarzoo.data import FOLDER, load_cifar10
from cifarzoo.devices import resolve_device
from cifarzoo.pretrained import PACKAGED_WEIGHTS_DIR, PretrainedWeightsError
from cifarzoo.runs import LOCK_NAME, UnfinishedRunError

SRC = Path(cifarzoo.__file__).parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------


def test_a_folder_holding_a_run_is_refused_unless_overwrite(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = lenet_train_args(fake_cifar_root, "--epochs", "1", "--out", str(out))
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*args, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} already holds a run" in err
    assert "--resume" in err and "--overwrite" in err and "another --out" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["recipe"]["seed"] == 1


def test_an_interrupted_overwrite_leaves_an_unfinished_run_not_two_mixed(
    fake_cifar_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cifarzoo.models

    out = tmp_path / "run"
    args = lenet_train_args(fake_cifar_root, "--epochs", "2", "--out", str(out))
    assert main(args) == 0
    create = cifarzoo.models.create_model
    at = [5 + 2]  # in epoch 2

    def interrupted(name: str, **kwargs: Any) -> nn.Module:
        return InterruptAt(create(name, **kwargs), at[0])

    monkeypatch.setattr(cifarzoo.models, "create_model", interrupted)
    assert main([*args, "--seed", "1", "--overwrite"]) == 130
    at[0] = -1
    names = {p.name for p in out.iterdir()}
    assert "checkpoint.pt" in names
    assert not names & {"metrics.json", "model.safetensors", "history.json", "loss.png"}
    with pytest.raises(
        UnfinishedRunError, match=r"no metrics\.json, which `cifarzoo train` writes"
    ):
        runs.read_run(out)
    capsys.readouterr()
    assert main(["eval", "lenet", "--weights", str(out), "--data", str(fake_cifar_root)]) == 2
    err = capsys.readouterr().err
    assert f"{out} is not a finished run" in err and "--resume" in err
    report = ["compare", "--runs", str(out), "--out", str(tmp_path / "report")]
    assert main([*report, "--data", str(fake_cifar_root), "--val-size", "1000", "--quiet"]) == 2
    assert f"{out} is not a finished run" in capsys.readouterr().err
    assert main([*args, "--seed", "1", "--resume"]) == 0  # the new run, finished
    assert runs.read_run(out).metrics["recipe"]["seed"] == 1


def test_runs_without_out_get_new_version_folders(
    fake_cifar_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = lenet_train_args(fake_cifar_root, "--epochs", "1")
    for version in range(2):
        assert main(args) == 0
        out = Path("runs", "lenet", f"version_{version}")
        assert f"writing the run to {out}\n" in capsys.readouterr().out
        assert (out / "metrics.json").is_file()
    assert main([*args, "--resume"]) == 2
    assert "--resume continues the run in an --out folder" in capsys.readouterr().err


def test_a_second_process_training_into_the_same_folder_fails_at_once(
    fake_cifar_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = lenet_train_args(fake_cifar_root, "--epochs", "300", "--eval-every", "300")
    args += ["--out", str(out), "--threads", "1"]
    first = subprocess.Popen([sys.executable, "-m", "cifarzoo", *args], env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").is_file():  # after its first epoch
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        t0 = time.monotonic()
        assert main([*args, "--resume"]) == 2
        assert time.monotonic() - t0 < 30
        err = capsys.readouterr().err
        assert f"another `cifarzoo train` is writing into {out}" in err
        assert str(out / LOCK_NAME) in err
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()


# The training is started by this script, which kills its own process with SIGKILL at the
# given point: in the N-th training step ("step N") or half-way through writing the N-th
# checkpoint ("save N"), after half of its bytes are in the temporary file.
KILLER = """
import io, os, signal, sys
import torch
import cifarzoo.models, cifarzoo.checkpoint
from cifarzoo.cli import main

kind, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = [0]

def count() -> None:
    calls[0] += 1
    if calls[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)

if kind == "step":
    create = cifarzoo.models.create_model

    def create_model(name, **kwargs):
        model = create(name, **kwargs)
        model.register_forward_pre_hook(lambda m, x: count() if m.training else None)
        return model

    cifarzoo.models.create_model = create_model
else:
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        count()
        f.write(data[len(data) // 2 :])

    cifarzoo.checkpoint.torch.save = save
sys.exit(main(argv))
"""


@pytest.mark.slow(seconds=27)
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_weights(
    fake_cifar_root: Path, tmp_path: Path
) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    base = lenet_train_args(fake_cifar_root, "--epochs", "3", "--threads", "1")

    def train(out: Path, *extra: str, kill: tuple[str, int] = ("step", -1)) -> int:
        cmd = [sys.executable, str(script), kill[0], str(kill[1]), *base, "--out", str(out)]
        return subprocess.run([*cmd, *extra], env=_env(), capture_output=True).returncode

    assert train(tmp_path / "whole") == 0
    expected = sha256_file(tmp_path / "whole" / "model.safetensors")
    assert json.loads((tmp_path / "whole" / "metrics.json").read_text())["sha256"] == expected
    # mid-epoch (epoch 2, step 3), and inside the 1st and the 3rd (last) checkpoint write
    for kill in [("step", 5 + 3), ("save", 1), ("save", 3)]:
        out = tmp_path / f"{kill[0]}{kill[1]}"
        assert train(out, kill=kill) == -signal.SIGKILL
        assert not (out / "metrics.json").exists()
        assert train(out, "--resume") == 0, kill
        assert sha256_file(out / "model.safetensors") == expected, kill
        assert not list(out.glob(".*.tmp"))


def test_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(3, dtype=torch.int64)}
    metadata = {f"key{i}": f"value{i}" for i in range(8)}
    digests = {save_weights(state, tmp_path / f"{i}.safetensors", metadata) for i in range(6)}
    assert len(digests) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "0.safetensors"), "pt") as f:
        assert f.metadata() == metadata
        assert torch.equal(f.get_tensor("w"), state["w"])


# --------------------------------------------------------------------------------------------
# Data download
# --------------------------------------------------------------------------------------------


def test_download_adds_missing_files_and_never_replaces_existing_ones(
    fake_cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    root = tmp_path / "data"
    shutil.copytree(fake_cifar_root / FOLDER, root / FOLDER)
    (root / FOLDER / "data_batch_3").unlink()
    kept = sorted((root / FOLDER).iterdir())
    for path in kept:
        os.utime(path, (1e9, 1e9))
    before = {p.name: p.read_bytes() for p in kept}

    def extract(root: str, train: bool = True, download: bool = False) -> None:
        # what torchvision does: extract the whole archive into ROOT/cifar-10-batches-py
        shutil.copytree(fake_cifar_root / FOLDER, Path(root) / FOLDER, dirs_exist_ok=True)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", extract)
    data = load_cifar10(root, download=True)
    assert len(data.train) == 5 * FAKE_PER_FILE
    assert (root / FOLDER / "data_batch_3").is_file()
    for path in kept:
        assert path.stat().st_mtime == 1e9 and path.read_bytes() == before[path.name]
    assert sorted(p.name for p in root.iterdir()) == [FOLDER]  # the staging folder is gone


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["train", "lenet", "--threads", "0"], "--threads"),
        (["train", "lenet", "--threads", "-2"], "--threads"),
        (["train", "lenet", "--eval-every", "0"], "--eval-every"),
        (["train", "lenet", "--eval-every", "-3"], "--eval-every"),
        (["train", "lenet", "--epochs", "0"], "--epochs"),
        (["train", "lenet", "--batch-size", "-1"], "--batch-size"),
        (["train", "lenet", "--lr", "0"], "--lr"),
        (["train", "lenet", "--lr", "nan"], "--lr"),
        (["train", "lenet", "--seed", "-1"], "--seed"),
        (["train", "lenet", "--label-smoothing", "1.5"], "--label-smoothing"),
        (["train", "lenet", "--val-size", "-5"], "--val-size"),
        (["eval", "lenet", "--pretrained", "--batch-size", "0"], "--batch-size"),
        (["eval", "lenet", "--pretrained", "--threads", "0"], "--threads"),
        (["compare", "--out", "x", "--epochs", "0"], "--epochs"),
        (["compare", "--out", "x", "--lr", "-1"], "--lr"),
        (["compare", "--out", "x", "--synthetic", "0"], "--synthetic"),
    ],
)
def test_numeric_options_are_validated(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be " in err and "Traceback" not in err


@pytest.mark.parametrize("eval_every", [0, -3])
def test_fit_refuses_an_eval_every_below_one(eval_every: int) -> None:
    model = cifarzoo.create_model("lenet")
    with pytest.raises(ValueError, match=f"eval_every must be a positive integer.*{eval_every}"):
        fit(model, synthetic_split(128), epochs=1, batch_size=64, eval_every=eval_every)


def test_a_uint8_batch_gets_a_clear_error() -> None:
    model = cifarzoo.create_model("lenet")
    with pytest.raises(TypeError, match="expects float images normalized") as e:
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert "pretrained_cfg['mean']" in str(e.value) and "x.float() / 255" in str(e.value)


def test_shape_errors_say_what_is_wrong() -> None:
    model = cifarzoo.create_model("resnet20")
    with pytest.raises(ValueError) as e:
        model(torch.zeros(2, 32, 32, 3))
    assert "x.permute(0, 3, 1, 2)" in str(e.value) and "unsqueeze" not in str(e.value)
    with pytest.raises(ValueError, match=r"x\.unsqueeze\(0\)"):
        model(torch.zeros(3, 32, 32))


def test_fit_accepts_numpy_arrays_and_refuses_other_types() -> None:
    images, labels = synthetic_split(128)
    torch.manual_seed(0)
    model = cifarzoo.create_model("lenet")
    history = fit(model, (images.numpy(), labels.numpy()), epochs=1, batch_size=64, quiet=True)
    assert len(history) == 1
    with pytest.raises(TypeError, match=r"images must be a torch\.Tensor or numpy array"):
        fit(model, (images.tolist(), labels), epochs=1, batch_size=64, quiet=True)


def test_a_missing_gpu_names_device_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    nodata = ["--data", str(tmp_path), "--no-download", "--out", str(tmp_path / "o")]
    assert main(["train", "lenet", "--device", "cuda", *nodata]) == 2
    err = capsys.readouterr().err
    assert "--device cpu" in err and "Traceback" not in err and "driver" not in err


def test_hub_hint_is_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsError) as e:
        cifarzoo.create_model("hf-hub:ORG/NAME", pretrained=True, cache_dir=tmp_path)
    message = str(e.value)
    assert (
        "cifarzoo.hf-hub" not in message and "cifarzoo.create_model(ARCH, weights=PATH)" in message
    )


def test_weights_of_another_model_are_named_briefly() -> None:
    lenet = PACKAGED_WEIGHTS_DIR / "lenet.c10.safetensors"
    with pytest.raises(PretrainedWeightsError) as e:
        cifarzoo.create_model("resnet20", weights=lenet)
    message = str(e.value)
    assert "holds weights of lenet (its metadata says so), not resnet20" in message
    assert len(message) < 400 and "Missing key" not in message


def test_resuming_with_another_model_names_the_checkpoints_model(tmp_path: Path) -> None:
    data = synthetic_split(128)
    fit(cifarzoo.create_model("lenet"), data, epochs=1, batch_size=64, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="holds the weights of cifar_lenet, not cifar_resnet20"):
        fit(
            cifarzoo.create_model("resnet20"),
            data,
            epochs=1,
            batch_size=64,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_a_full_disk_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "metrics.json"
    with pytest.raises(OSError) as e:
        save_json({"a": 1}, path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert not list(tmp_path.iterdir())  # the temporary file is removed
