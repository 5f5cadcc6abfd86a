"""scripts/gpu_bundle.py: weights packed on a GPU machine in small files, rebuilt and checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script
from hypothesis import given, settings
from hypothesis import strategies as st

import cifarzoo
from cifarzoo.checkpoint import load_weights, save_weights

ROOT = Path(__file__).resolve().parent.parent
bundle = load_script(ROOT / "scripts" / "gpu_bundle.py")
recipe = load_script(ROOT / "benchmarks" / "gpu_recipe.py")

MiB = 2**20
# What one copy from a GPU machine with a limited transfer brings back (gpu_bundle.py)
DEVICE_FILES, DEVICE_FILE_BYTES, DEVICE_TOTAL_BYTES = 8, 16 * MiB, 64 * MiB
DEVICE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def make_run(runs: Path, name: str) -> Path:
    """A run folder as gpu_recipe.py --weights-dtype float16 writes it (untrained weights)."""
    run = runs / name
    run.mkdir(parents=True)
    torch.manual_seed(0)
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in cifarzoo.create_model(name).state_dict().items()
    }
    digest = save_weights(state, run / "model.safetensors", metadata={"model": name})
    metrics = {"model": name, "test_accuracy": 0.1, "val_accuracy": 0.1, "epochs": 1}
    metrics |= {"tta": "flip", "tta_test_accuracy": 0.1, "tta_val_accuracy": 0.1, "tta_flip": True}
    metrics |= {"seconds": 1.0, "data": "synthetic", "sha256": digest}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "history.json").write_text(json.dumps({"epochs": [{"epoch": 1}]}))
    return run


def assert_within_device_limits(folder: Path) -> None:
    files = list(folder.iterdir())
    assert len(files) <= DEVICE_FILES and all(f.is_file() for f in files)
    assert all(DEVICE_NAME.fullmatch(f.name) for f in files)
    assert all(f.stat().st_size <= DEVICE_FILE_BYTES for f in files)
    assert sum(f.stat().st_size for f in files) <= DEVICE_TOTAL_BYTES


def assert_loads_as_packed(run: Path, original: Path) -> None:
    """The rebuilt folder holds the very file packed, and cifarzoo loads it."""
    rebuilt = (run / "model.safetensors").read_bytes()
    assert rebuilt == (original / "model.safetensors").read_bytes()
    model = cifarzoo.create_model(run.name, weights=str(run / "model.safetensors"))
    loaded = model.state_dict()
    for key, value in load_weights(run / "model.safetensors").items():
        assert torch.equal(loaded[key].to(value.dtype), value)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 64))
def test_split_bytes_joins_back_into_pieces_no_larger_than_asked(data: bytes, size: int) -> None:
    pieces = bundle.split_bytes(data, size)
    assert b"".join(pieces) == data
    assert all(0 < len(p) <= size for p in pieces) or data == b""
    assert len(pieces) == max(1, -(-len(data) // size))


def test_three_float16_finals_come_back_in_one_command_and_load(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "final", n) for n in ("resnet18", "seresnet18", "densenet121")]
    out = tmp_path / "out"
    (folder,) = bundle.pack(out, runs, later=tmp_path / "later")
    assert folder == out and not (tmp_path / "later").exists()
    assert_within_device_limits(out)
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["batches"] == 1 and manifest["in_other_batches"] == []
    assert [len(manifest["runs"][r.name]["parts"]) for r in runs] == [2, 2, 1]

    for run in bundle.unpack(out, tmp_path / "back"):
        assert_loads_as_packed(run, tmp_path / "final" / run.name)
        assert json.loads((run / "metrics.json").read_text())["model"] == run.name


@pytest.fixture
def lenet_bundle(tmp_path: Path) -> Path:
    """A two-part lenet bundle (124 kB in float16, parts of 100 kB) in tmp_path/out."""
    run = make_run(tmp_path / "final", "lenet")
    bundle.pack(tmp_path / "out", [run], limits=bundle.Limits(part_bytes=100_000))
    return tmp_path / "out"


def test_corrupt_part_is_refused_and_nothing_written(lenet_bundle: Path, tmp_path: Path) -> None:
    part = lenet_bundle / "lenet.part1"
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF
    part.write_bytes(bytes(data))
    code = bundle.main(["unpack", str(lenet_bundle), str(tmp_path / "back")])
    assert code == 1 and not (tmp_path / "back").exists()
    with pytest.raises(bundle.BundleError, match=r"part lenet.part1 is corrupt \(sha256"):
        bundle.unpack(lenet_bundle, tmp_path / "back")


def test_missing_part_or_manifest_is_refused_with_what_is_missing(
    lenet_bundle: Path, tmp_path: Path
) -> None:
    (lenet_bundle / "lenet.part0").unlink()
    with pytest.raises(bundle.BundleError, match=r"part lenet.part0 is missing from .*--collect"):
        bundle.unpack(lenet_bundle, tmp_path / "back")
    (lenet_bundle / "bundle.json").unlink()
    with pytest.raises(bundle.BundleError, match=r"bundle\.json not found: expected the files"):
        bundle.unpack(lenet_bundle, tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_joined_file_must_match_its_recorded_sha256_and_names_stay_inside(
    lenet_bundle: Path, tmp_path: Path
) -> None:
    manifest = json.loads((lenet_bundle / "bundle.json").read_text())
    manifest["runs"]["lenet"]["metrics"]["sha256"] = "0" * 64
    (lenet_bundle / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match="the joined weights hash to"):
        bundle.unpack(lenet_bundle, tmp_path / "back")
    manifest["runs"]["../escape"] = manifest["runs"].pop("lenet")
    (lenet_bundle / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match=re.escape("'../escape' is not a plain file name")):
        bundle.unpack(lenet_bundle, tmp_path / "back")
    assert not (tmp_path / "back").exists() and not (tmp_path / "escape").exists()


def test_existing_run_folder_is_kept_unless_overwrite(lenet_bundle: Path, tmp_path: Path) -> None:
    mine = tmp_path / "back" / "lenet"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(bundle.BundleError, match=r"already exist.*--overwrite"):
        bundle.unpack(lenet_bundle, tmp_path / "back")
    assert (mine / "notes.txt").read_text() == "mine"
    (run,) = bundle.unpack(lenet_bundle, tmp_path / "back", overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [
        "history.json",
        "metrics.json",
        "model.safetensors",
        "model.safetensors.sha256",
    ]
    assert_loads_as_packed(run, tmp_path / "final" / "lenet")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["lenet"]  # no leftovers


def test_unpack_install_ships_the_checked_weights(lenet_bundle: Path, tmp_path: Path) -> None:
    weights_dir = tmp_path / "weights"
    cmd = ["unpack", str(lenet_bundle), str(tmp_path / "back"), "--install"]
    assert bundle.main([*cmd, "--weights-dir", str(weights_dir)]) == 0
    packed = (tmp_path / "final" / "lenet" / "model.safetensors").read_bytes()
    assert (weights_dir / "lenet.c10.safetensors").read_bytes() == packed
    meta = json.loads((weights_dir / "lenet.c10.json").read_text())
    assert meta["sha256"] == bundle.sha256(packed) and meta["metrics"]["val_accuracy"] == 0.1


def test_runs_past_one_command_wait_in_later_batches(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "final", n) for n in ("lenet", "resnet20")]
    # 4 files a command: lenet (1 part) beside the manifest and the log, then resnet20's 3 parts
    limits = bundle.Limits(files=4, part_bytes=200_000, total_bytes=10 * MiB)
    log = tmp_path / "session.log"
    log.write_text("the session's log\n")
    with pytest.raises(bundle.BundleError, match="pass --later DIR"):
        bundle.pack(tmp_path / "refused", runs, log=log, limits=limits)
    folders = bundle.pack(tmp_path / "out", runs, later=tmp_path / "later", log=log, limits=limits)
    assert len(folders) > 1 and folders[1] == tmp_path / "later" / "batch-2"
    assert (tmp_path / "out" / "session.log").read_text() == "the session's log\n"
    back = [run for f in folders for run in bundle.unpack(f, tmp_path / "back")]
    assert sorted(r.name for r in back) == ["lenet", "resnet20"]
    for run in back:
        assert_loads_as_packed(run, tmp_path / "final" / run.name)
    with pytest.raises(bundle.BundleError, match="cannot come back in one command"):
        bundle.pack(tmp_path / "x", runs[1:], limits=bundle.Limits(files=2, part_bytes=1000))


@pytest.mark.slow(seconds=25)
def test_gpu_session_smoke_brings_back_loadable_weights_with_their_accuracy(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), RUNS=str(tmp_path / "runs"), PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    cmd = ["bash", str(ROOT / "scripts" / "gpu_session.sh"), "--smoke", "--parallel", "1"]
    cmd += ["--candidates", "base", "--sweep-model", "lenet", "--final-models", "lenet", "resnet20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_within_device_limits(out)
    names = {f.name for f in out.iterdir()}
    assert {"resnet20.part2", "lenet.part0"} <= names  # 532 KiB in 256 KiB parts: three
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["session"]["choice"] == "base"

    data = recipe.synthetic_data(256, 200).hold_out(50, seed=0)  # the smoke finals' data
    for run in bundle.unpack(out, tmp_path / "back"):
        assert_loads_as_packed(run, tmp_path / "runs" / "session" / "final" / run.name)
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["weights_dtype"] == "float16" and metrics["train_images"] == 206
        model = cifarzoo.create_model(run.name, weights=str(run / "model.safetensors"))
        # the recorded headline is one forward pass of the stored file, TTA beside it
        for split, key in ((data.test, "test_accuracy"), (data.val, "val_accuracy")):
            assert cifarzoo.evaluate(model, split).accuracy == metrics[key]
            tta = cifarzoo.evaluate(model, split, tta_flip=True, tta_translate=True)
            assert tta.accuracy == metrics[f"tta_{key}"]
