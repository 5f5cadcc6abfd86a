"""The training guide speaks of the library to its users: how to train (on a CPU, on any GPU
machine), not one machine's limits or tools; the runs measured are in their own page, and the
maintainers' workflows (the GPU sweep and its transfer, installing weights) in CONTRIBUTING.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
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
#: The maintainers' tools, which the user guide leaves to CONTRIBUTING.md.
MAINTAINER_TOOLS = ["gpu_sweep", "gpu_session", "gpu_bundle", "install_weights", "accuracy_table"]


@pytest.mark.parametrize(
    "path", [DOCS / "training.rst", CONTRIBUTING, *GPU_SCRIPTS], ids=lambda p: p.name
)
def test_no_word_of_one_particular_machine(path: Path) -> None:
    found = MACHINE_WORDS.findall(path.read_text())
    assert not found, f"{path.name} speaks of one machine: {found}"


def test_the_gpu_scripts_are_run_with_plain_commands() -> None:
    guide = (DOCS / "training.rst").read_text()
    assert "A GPU session, planned ahead" not in guide
    section = guide[guide.index("Training on a GPU\n") :]
    assert "python benchmarks/gpu_recipe.py --data DATA --out runs/gpu" in section
    assert "validation split" in section
    contributing = CONTRIBUTING.read_text()
    for command in (
        "python benchmarks/gpu_sweep.py --data DATA --out runs/session",
        "DATA=DATA bash scripts/gpu_session.sh",
        "python scripts/gpu_bundle.py unpack OUT_COPY runs/gpu --install",
    ):
        assert command in contributing, command


def test_the_guide_leaves_maintainer_tools_to_contributing() -> None:
    guide = (DOCS / "training.rst").read_text()
    found = [tool for tool in MAINTAINER_TOOLS if tool in guide]
    assert not found, f"training.rst describes maintainer tools: {found}"


def test_the_guide_owns_the_single_pass_rule() -> None:
    guide = (DOCS / "training.rst").read_text()
    label = guide.index(".. _single-pass:\n")
    assert guide[label:].split("\n\n")[1].startswith("Evaluation and test-time augmentation\n")
    log = (DOCS / "experiments.rst").read_text()
    assert ":ref:`single-pass`" in log


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


def test_the_distillation_defaults_are_the_codes() -> None:
    from cifarzoo.cli.train import _TEACHER_DISTILL_WEIGHT
    from cifarzoo.training import Recipe

    guide = " ".join((DOCS / "training.rst").read_text().split())
    assert f"``--distill-weight`` ({_TEACHER_DISTILL_WEIGHT} when a teacher is given)" in guide
    assert f"``distill_temperature`` (default {Recipe().distill_temperature:g})" in guide
