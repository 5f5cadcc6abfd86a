"""scripts/check_wheel.py, the checks scripts/check_wheel.sh runs in a fresh environment with
the built wheel installed: here against the source tree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import load_script

from cifarzoo.pretrained import PACKAGED_WEIGHTS_DIR

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow(seconds=15)
def test_every_shipped_weights_is_loaded_by_name_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script(ROOT / "scripts" / "check_wheel.py")
    assert script.main(["--package-under", str(ROOT / "src")]) == 0
    out = capsys.readouterr().out
    for weights in sorted(PACKAGED_WEIGHTS_DIR.glob("*.safetensors")):
        assert f"\n{weights.name.removesuffix('.safetensors')}: loads in float32, runs\n" in out
    assert script.main(["--package-under", str(tmp_path)]) == 1  # imported from elsewhere
    assert f"cifarzoo is imported from {PACKAGED_WEIGHTS_DIR.parent}" in capsys.readouterr().out


@pytest.mark.slow(seconds=12)
def test_an_evaluation_that_differs_from_the_metadata_fails(fake_cifar_root: Path) -> None:
    """`cifarzoo eval ARCH.TAG --pretrained` is run for real; its single-pass figure must be
    the metadata's to two decimals (on random images it is not)."""
    script = load_script(ROOT / "scripts" / "check_wheel.py")
    meta = json.loads((PACKAGED_WEIGHTS_DIR / "lenet.lab.json").read_text())
    command = [sys.executable, "-m", "cifarzoo"]
    problem = script.eval_problem("lenet.lab", meta, fake_cifar_root, command)
    assert problem is not None and problem.startswith("lenet.lab: cifarzoo eval prints ")
    measured = problem.split(" prints ")[1].split(",")[0]
    assert problem.endswith(f", its metadata records {100 * meta['metrics']['test_accuracy']:.2f}%")
    meta["metrics"]["test_accuracy"] = float(measured.rstrip("%")) / 100
    assert script.eval_problem("lenet.lab", meta, fake_cifar_root, command) is None
    missing = script.eval_problem("lenet.lab", meta, fake_cifar_root / "nothing", command)
    assert missing is not None and "cifarzoo eval lenet.lab failed (exit 2)" in missing
