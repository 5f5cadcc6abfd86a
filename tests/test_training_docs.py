"""The training guide speaks of the library to its users: how to train (on a CPU, on any GPU
machine), not one machine's limits or tools; the runs measured are in their own page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GPU_SCRIPTS = [
    ROOT / "benchmarks" / "gpu_recipe.py",
    ROOT / "benchmarks" / "gpu_sweep.py",
    ROOT / "scripts" / "gpu_session.sh",
    ROOT / "scripts" / "gpu_bundle.py",
    ROOT / "scripts" / "train_big_gpu.sh",
]
#: What only the user of one lent machine would know: its call syntax, its file transfer,
#: its carried data set.
MACHINE_WORDS = re.compile(r"run\(command=|carry=|files_at|FILES_AT|\blent\b|\.device/|materialize")
#: The experiment log's sections, on their own page.
LOG_SECTIONS = [
    "What the 30-epoch CPU recipe measured",
    "What the JPEG copy costs",
    "What Muon changes",
    "The big models on one GPU",
]


@pytest.mark.parametrize("path", [DOCS / "training.rst", *GPU_SCRIPTS], ids=lambda p: p.name)
def test_no_word_of_one_particular_machine(path: Path) -> None:
    found = MACHINE_WORDS.findall(path.read_text())
    assert not found, f"{path.name} speaks of one machine: {found}"


def test_the_gpu_scripts_are_run_with_plain_commands() -> None:
    guide = (DOCS / "training.rst").read_text()
    assert "A GPU session, planned ahead" not in guide
    section = guide[guide.index("Training on a GPU\n") :]
    for command in (
        "python benchmarks/gpu_recipe.py --data DATA --out runs/gpu",
        "python benchmarks/gpu_sweep.py --data DATA --out runs/session",
        "DATA=DATA bash scripts/gpu_session.sh",
        "python scripts/gpu_bundle.py unpack OUT_COPY runs/gpu --install",
    ):
        assert command in section, command


def test_the_experiment_log_has_its_own_page() -> None:
    guide = (DOCS / "training.rst").read_text()
    log = (DOCS / "experiments.rst").read_text()
    for title in LOG_SECTIONS:
        assert title not in guide and f"{title}\n" in log, title
    # the tables of past runs went with it (the guide keeps its fp32/bf16 speed and accuracy)
    tables = guide.split(".. list-table::")[1:]
    assert len(tables) <= 2 and all("fp32" in t.split("\n\n")[1] for t in tables)
    assert "recipe (the rest as the defaults)" in log and "recipe (the rest" not in guide
    toctree = (DOCS / "index.rst").read_text()
    assert re.search(r"^   training\n   experiments\n", toctree, re.MULTILINE)
