"""benchmarks/gpu_recipe.py end to end on the CPU (--smoke): run folder, half-size weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script
from safetensors.torch import load_file

import cifarzoo

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_recipe.py"
SWEEP = ROOT / "benchmarks" / "gpu_sweep.py"


def run_script(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (a benchmark script) with this interpreter's import path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_smoke_run_stores_float16_weights_measured_as_stored(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--models", "lenet", "--out", str(tmp_path)]
    cmd += ["--tta-translate", "--eval-every", "2", "--weights-dtype", "float16", "--quiet"]
    cmd += ["--cutout", "8", "--alternate-flip", "--label-smoothing", "0.2", "--val-size", "5000"]
    proc = run_script(cmd)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "lenet"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights_dtype"] == "float16" and metrics["epochs"] == 1
    # the headline is one forward pass in float32; TTA (flip + translate) is recorded beside it
    assert (metrics["tta_flip"], metrics["tta_translate"], metrics["bf16"]) == (True, True, False)
    assert metrics["recipe"]["tta_flip"] is False and metrics["tta"] == "flip + translate"
    recipe_used = metrics["recipe"]
    assert (recipe_used["cutout"], recipe_used["alternate_flip"]) == (8, True)
    assert (recipe_used["label_smoothing"], recipe_used["weight_decay"]) == (0.2, 5e-4)
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "lenet" and summary["test_accuracy"] == metrics["test_accuracy"]
    assert summary["tta_test_accuracy"] == metrics["tta_test_accuracy"]
    # validation on 50 held-out images (the smoke run's cap), 206 trained on
    assert summary["val_accuracy"] == metrics["val_accuracy"] and metrics["train_images"] == 206
    assert "val acc" in proc.stdout

    state = load_file(str(run / "model.safetensors"))
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float16}
    # The recorded accuracies are those of the stored half-size file, on the smoke run's data.
    recipe = load_script(SCRIPT)
    data = recipe.synthetic_data(256, 200).hold_out(50, seed=0)
    model = cifarzoo.create_model("lenet")
    model.load_state_dict(state)
    for split, key in ((data.test, "test_accuracy"), (data.val, "val_accuracy")):
        assert cifarzoo.evaluate(model, split).accuracy == metrics[key]
        tta = cifarzoo.evaluate(model, split, tta_flip=True, tta_translate=True)
        assert tta.accuracy == metrics[f"tta_{key}"]


def test_sweep_choice_is_the_best_validation_accuracy_ties_to_the_first_listed() -> None:
    choose = load_script(SWEEP).choose
    assert choose({"base": 0.90, "cutout8": 0.91, "muon0.02": None}) == "cutout8"
    assert choose({"base": 0.91, "cutout8": 0.91, "muon0.02": 0.905}) == "base"
    with pytest.raises(SystemExit, match="nothing to choose"):
        choose({"base": None})


@pytest.mark.slow(seconds=18)
def test_sweep_session_chooses_on_validation_and_skips_finals_past_the_budget(
    tmp_path: Path,
) -> None:
    cmd = [sys.executable, str(SWEEP), "--smoke", "--out", str(tmp_path), "--parallel", "2"]
    cmd += ["--sweep-model", "lenet", "--candidates", "base", "cutout8"]
    # a 30-epoch DenseNet-121 is planned at 7.8 s an epoch: past a 200 s budget, skipped
    cmd += ["--final-models", "lenet", "densenet121", "--budget", "200"]
    proc = run_script(cmd)
    assert proc.returncode == 0, proc.stderr
    session = json.loads((tmp_path / "session.json").read_text())
    assert set(session["sweep"]) == {"base", "cutout8"}
    val = {name: run["val_accuracy"] for name, run in session["sweep"].items()}
    assert session["choice"] == max(val, key=lambda n: (val[n], n == "base"))
    for name in val:
        metrics = json.loads((tmp_path / "sweep" / name / "lenet" / "metrics.json").read_text())
        assert metrics["val_accuracy"] == val[name] and metrics["train_images"] == 206
        assert metrics["recipe"]["cutout"] == (8 if name == "cutout8" else 0)
    final = json.loads((tmp_path / "final" / "lenet" / "metrics.json").read_text())
    assert session["finals"]["lenet"]["test_accuracy"] == final["test_accuracy"]
    assert final["recipe"]["cutout"] == (8 if session["choice"] == "cutout8" else 0)
    # the finals hold out the sweep's split, store float16 and record TTA beside the headline
    assert final["train_images"] == 206 and final["val_accuracy"] is not None
    assert final["weights_dtype"] == "float16" and final["tta"] == "flip + translate"
    assert session["finals"]["lenet"]["val_accuracy"] == final["val_accuracy"]
    assert session["skipped"] == ["densenet121"] and "would not fit" in proc.stdout


@pytest.mark.slow
def test_sweep_with_every_run_failed_says_why_and_chooses_nothing(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SWEEP), "--smoke", "--out", str(tmp_path)]
    cmd += ["--sweep-model", "resnet7", "--candidates", "base", "--final-models", "lenet"]
    proc = run_script(cmd)
    assert proc.returncode != 0 and "nothing to choose" in proc.stderr
    assert "Unknown cifarzoo model 'resnet7'" in proc.stdout  # the failed run's log, shown
    session = json.loads((tmp_path / "session.json").read_text())
    assert session["sweep"]["base"]["returncode"] != 0 and session["choice"] is None
    assert session["finals"] == {} and not (tmp_path / "final").exists()
