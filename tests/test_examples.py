"""Every script in examples/ runs (in its tiny CIFARZOO_EXAMPLE_FAST=1 mode), so none rots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def test_examples_found() -> None:
    assert {p.stem for p in EXAMPLES} >= {
        "pretrained_inference",
        "train_small",
        "custom_network",
        "compare_architectures",
        "publish_dry_run",
    }


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    env = {
        **os.environ,
        "CIFARZOO_EXAMPLE_FAST": "1",
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    args = [str(tmp_path / "report")] if script.stem == "compare_architectures" else []
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip()
    if script.stem == "compare_architectures":
        assert (tmp_path / "report" / "report.html").is_file()
