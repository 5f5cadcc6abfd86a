"""Sphinx configuration of the cifarzoo documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``. Needs neither the
CIFAR-10 data nor the network: the model table, the API page, the comparison figures and the
changelog page are generated from the installed package and the repository at build time.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network while building

import cifarzoo  # noqa: E402
from cifarzoo.table import ModelRow  # noqa: E402

project = "cifarzoo"
author = "cifarzoo developers"
copyright = "cifarzoo developers"
release = version = cifarzoo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_theme = "furo"
html_title = f"cifarzoo {release}"
html_static_path = ["_static"] if (DOCS / "_static").is_dir() else []
html_css_files = ["cifarzoo.css"]

autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

GENERATED = DOCS / "_generated"

# Modules documented on the API page, in order. A module that does not exist (yet) is skipped
# with a message, so that work in progress elsewhere never breaks the docs build.
API_MODULES = [
    ("cifarzoo.models", "Models and the registry"),
    ("cifarzoo.layers", "Building blocks"),
    ("cifarzoo.data", "Data"),
    ("cifarzoo.batch_files", "CIFAR-10's batch files: layout and safe reading"),
    ("cifarzoo.training", "Training: fit, Recipe, RunOptions, checkpoints, step extras"),
    ("cifarzoo.training.fields", "Training settings declared once"),
    ("cifarzoo.training.parsing", "Training settings from command-line words"),
    ("cifarzoo.training.optimizer", "Optimizer and schedule: Muon for convolution filters"),
    ("cifarzoo.metrics", "Evaluation"),
    ("cifarzoo.devices", "Devices and the bf16 rule"),
    ("cifarzoo.heap", "CPU memory kept between steps"),
    ("cifarzoo.checkpoint", "Checkpoints and weights files"),
    ("cifarzoo.pretrained", "Pretrained weights: their files, metadata and errors"),
    ("cifarzoo.runs", "Run folders"),
    ("cifarzoo.install", "Installing trained weights"),
    ("cifarzoo.cost", "What a model costs: parameters, MACs, training activations"),
    ("cifarzoo.formats", "How numbers are written: percentages, durations, counts, hardware"),
    ("cifarzoo.table", "The accuracy table"),
    ("cifarzoo.hub", "Publishing to the Hugging Face Hub"),
    ("cifarzoo.hub_source", "What a Hub folder is built from: a run or shipped weights"),
    ("cifarzoo.compare", "Comparison report"),
    ("cifarzoo.instrument", "Recording hooks"),
    ("cifarzoo.plots", "Plots"),
    ("cifarzoo.cli.options", "Command-line options from the recipe"),
    ("cifarzoo.cli.argtypes", "Command-line option types"),
    ("cifarzoo.cli.compare", "The compare command"),
    ("cifarzoo.cli.publish", "The publish command"),
]


def _write(path: Path, text: str) -> None:
    """Write only when the content changes, so incremental builds stay incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _model_rows() -> list[ModelRow]:
    """Every model's row of :func:`cifarzoo.table.model_table`, from the weights' metadata."""
    import torch

    from cifarzoo.table import model_table

    with torch.device("meta"):  # count parameters and MACs without allocating weights
        return model_table()


def _zoo_summary(rows: list[ModelRow]) -> str:
    """zoo.rst's opening: which weights ship, and the highest single-pass test accuracy among
    them with its validation figure."""
    from cifarzoo.formats import percent

    shipped = [r for r in rows if r.weights == "package"]
    measured = [r for r in shipped if r.test_accuracy is not None]
    top = max(measured, key=lambda r: r.test_accuracy or 0.0)
    names = [f"``{r.model}``" for r in shipped]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return (
        f"{len(shipped)} trained weights ship with the package: {listed}. The highest test "
        f"accuracy among them is ``{top.model}``'s {percent(top.test_accuracy)} "
        f"({percent(top.val_accuracy)} validation), in one forward pass.\n"
    )


def _families() -> str:
    """One line per family: its class and its model names."""
    from cifarzoo import models

    fams: dict[str, list[str]] = {}
    for name in cifarzoo.list_models():
        fn = getattr(models, name)
        cls = fn.__annotations__.get("return", "")
        fams.setdefault(str(cls), []).append(f"``{name}``")
    return (
        "\n".join(
            f"* :class:`~cifarzoo.models.{cls}`: {', '.join(names)}" for cls, names in fams.items()
        )
        + "\n"
    )


def _api() -> str:
    out = [
        "API reference",
        "=============",
        "",
        "Every public function and class, from the docstrings. ``import cifarzoo`` re-exports "
        "the model factories (``cifarzoo.resnet20``...), ``create_model``, ``list_models`` "
        "and the CIFAR-10 constants.",
        "",
    ]
    for module, title in API_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            print(f"[cifarzoo docs] skipping {module} on the API page: {e}")
            continue
        out += [title, "-" * len(title), "", f".. automodule:: {module}", ""]
    return "\n".join(out)


#: The lab's comparisons, each a folder of docs/_static (report.json and figures, committed; the
#: page is generated from them): the CIFAR-native networks (benchmarks/lab_comparison.py) and the
#: lab's own four (benchmarks/lab_four.py), each then `cifarzoo compare --runs`.
LAB_REPORT = DOCS / "_static" / "lab"
LAB_FOUR_REPORT = DOCS / "_static" / "lab-four"
#: The caption of each figure of compare's report (cifarzoo.compare.FIGURES names its file), in
#: the order the docs show them; a report without plain or SE networks has no figure of theirs.
LAB_FIGURES = {
    "curves": "Training and validation loss and accuracy per epoch, all models overlaid.",
    "grad_depth": "Gradient norm of each layer, plain vs residual network of the same depth, at "
    "initialisation and late in training (both initialised alike: no zero-initialised BN).",
    "grad_flow": "Gradient norm of each layer over training (dark: early, yellow: late).",
    "se_gates": "SE gate values of each stage over test images, after training.",
    "per_class": "Test accuracy of each class.",
    "confusion": "Confusion matrices (rows: true class; % of the row).",
    "cost": "Parameters, MACs, training activations, seconds per epoch and test accuracy.",
}


def _list_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = [".. list-table::", "   :header-rows: 1", "   :class: lab-table", ""]
    for row in [header, *rows]:
        out += [f"   * - {row[0]}", *(f"     - {c}" for c in row[1:])]
    return [*out, ""]


def _lab_comparison(folder: Path) -> str:
    """The section of a lab comparison's report in ``folder`` (under docs/_static)."""
    path = folder / "report.json"
    static = folder.relative_to(DOCS).as_posix()
    if not path.is_file():
        return _unfinished_note()
    import json

    from cifarzoo.compare import CONCLUSION_TOPICS, ComparisonReport, degradation_rows, findings
    from cifarzoo.compare.page import GRADIENT_RATIO_NOTE, SECONDS_CAVEAT, result_rows
    from cifarzoo.formats import hardware_name, percent

    summary = json.loads(path.read_text())
    report = ComparisonReport.from_dict(summary)
    data = summary.get("data") or {}
    names = ", ".join(f"``{m.name}``" for m in report.models)
    found = findings(report)
    header, *results = result_rows(report)
    out = [
        f"Models: {names}; data: {data.get('name')} (train {data.get('train'):,}, validation "
        f"{data.get('val'):,}, test {data.get('test'):,}); {summary.get('epochs')} epochs, seed "
        f"{summary.get('seed')}, trained on {hardware_name(summary.get('device'))}. Every number "
        "is the last epoch's.",
        "",
        "What the numbers say, as the report states it (:func:`cifarzoo.compare.findings`):",
        "",
        *(f"* {f.text}" for f in found if f.topic in CONCLUSION_TOPICS),
        "",
        *_list_table(header, [[f"``{r[0]}``", *r[1:]] for r in results]),
        GRADIENT_RATIO_NOTE,
        "",
    ]
    rows = degradation_rows(report)
    if rows:
        out += _list_table(
            ["Model", "Shortcuts", "Training error", "Validation error", "Test error"],
            [
                [
                    f"``{r['model']}``",
                    "yes" if r["shortcuts"] else "no",
                    percent(r["train_error"]),
                    percent(r["val_error"]),
                    percent(r["test_error"]),
                ]
                for r in rows
            ],
        )
    out += [*_cost_table(report.models), SECONDS_CAVEAT, ""]
    from cifarzoo.compare import FIGURES

    if LAB_FIGURES.keys() != FIGURES.keys():
        raise ValueError(
            f"docs/conf.py captions {sorted(LAB_FIGURES)}, compare draws {sorted(FIGURES)}"
        )
    for role, caption in LAB_FIGURES.items():
        name = FIGURES[role]
        if (folder / name).is_file():
            label = f"{folder.name}-{Path(name).stem}"  # :ref:`lab-gradient_flow`
            out += [f".. figure:: /{static}/{name}", "   :width: 100%", f"   :name: {label}", ""]
            out += [f"   {caption}", ""]
    return "\n".join(out)


def _cost_table(models: list[Any]) -> list[str]:
    """Seconds per epoch of each model, and its training activations when the report has them."""
    from cifarzoo.formats import mebibytes

    activations = any(m.activation_bytes is not None for m in models)
    header = ["Model"] + ["Activations / image (MiB)"] * activations + ["s / epoch (wall clock)"]
    rows = [
        [f"``{m.name}``"]
        + [mebibytes(m.activation_bytes)] * activations
        + ["--" if m.seconds_per_epoch is None else f"{m.seconds_per_epoch:.0f}"]
        for m in models
    ]
    return _list_table(header, rows)


def _unfinished_note() -> str:
    """What a reader can use before the lab's four runs have all finished."""
    from cifarzoo.pretrained import list_weights

    shipped = [e.loaded_as for e in list_weights() if e.loads and e.tag == "lab"]
    note = ".. note::\n\n   This report is not published yet: not every run has finished."
    if not shipped:
        return note + "\n"
    return (
        f"{note} The weights that have finished are in the weights table of :doc:`zoo` (tag "
        "``lab``), and ``cifarzoo compare --pretrained`` makes a report from them now:\n\n"
        ".. code-block:: console\n\n"
        f"   cifarzoo compare --pretrained {' '.join(shipped)} --data data --out reports/lab-four\n"
    )


def _changelog() -> str:
    changelog = ROOT / "CHANGELOG.md"
    if changelog.is_file():
        return changelog.read_text()
    return "# Changelog\n\nNo release yet.\n"


def _examples() -> str:
    out = [
        "Examples",
        "========",
        "",
        "Runnable scripts in ``examples/`` of the repository. The test suite runs each of "
        "them (``tests/test_examples.py``, with ``CIFARZOO_EXAMPLE_FAST=1``: tiny synthetic "
        "data, one short epoch), so they keep working.",
        "",
    ]
    for path in sorted((ROOT / "examples").glob("*.py")):
        if path.name.startswith("_"):  # a helper the examples share, not an example
            continue
        doc = ""
        text = path.read_text()
        if text.startswith('"""'):
            doc = text[3 : text.index('"""', 3)].strip().splitlines()[0]
        title = f"``{path.name}``"
        out += [
            title,
            "-" * len(title),
            "",
            doc,
            "",
            f".. literalinclude:: /../examples/{path.name}",
            "   :language: python",
            "",
        ]
    out += [
        "The examples share ``examples/_common.py``: CIFAR-10 from ``CIFARZOO_DATA`` when it is "
        "there (synthetic data otherwise, with a message), and the tests' fast mode.",
        "",
    ]
    return "\n".join(out)


def _readme_command(marker: str) -> str:
    """The shell command between README.md's ``<!-- MARKER:start/end -->`` lines."""
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    return block.strip().removeprefix("```bash").removesuffix("```").strip()


def _console(command: str) -> str:
    """A one-line ``a && b && c`` command as an indented console block, one step a line."""
    return "   " + " \\\n     && ".join(command.split(" && "))


def _checkout_commands() -> str:
    """install.rst's commands for a checkout: the README's two, so that the two never differ."""
    return "\n".join(
        [
            "Train a small model on CIFAR-10 on a CPU in a few minutes (CIFAR-10 is downloaded "
            "on first use, see :ref:`the-data`):",
            "",
            ".. code-block:: console",
            "",
            _console(_readme_command("main-command")),
            "",
            "Run the tests (CONTRIBUTING.md says how to add the real-data tests):",
            "",
            ".. code-block:: console",
            "",
            _console(_readme_command("test-command")),
            "",
        ]
    )


#: Weights tags trained by a script of benchmarks/ (which also records what its report needs)
#: rather than by ``cifarzoo train``; their command gives the same recipe.
TAG_SCRIPTS = {"lab": "benchmarks/lab_four.py"}


def _wrapped(command: str, width: int = 88) -> str:
    """A long shell command as indented console lines ending in ``\\``, broken before an
    option (an option and its value stay on one line)."""
    lines: list[str] = []
    for part in command.split(" --"):
        part = part if not lines else "--" + part
        if lines and len(lines[-1]) + len(part) + 1 <= width:
            lines[-1] += " " + part
        else:
            lines.append(part if not lines else "  " + part)
    return " \\\n".join("   " + line for line in lines)


def _baseline_recipe() -> str:
    """training.rst's list of the baseline recipe's settings (``Recipe()``'s defaults)."""
    from cifarzoo.training import Recipe, recipe_summary

    phrases = recipe_summary(Recipe())
    return (
        "\n".join(f"- {p}{'.' if i == len(phrases) - 1 else ';'}" for i, p in enumerate(phrases))
        + "\n"
    )


def _reproduce_commands() -> str:
    """training.rst's list of the ``cifarzoo train`` commands of the shipped weights' recipes,
    built from the recipe each weights' metadata records."""
    from cifarzoo.cli.train import weights_train_command
    from cifarzoo.pretrained import list_weights

    blocks = []
    for entry in list_weights():
        if not entry.loads:
            continue
        command = weights_train_command(entry, out=f"runs/{entry.loaded_as}")
        script = TAG_SCRIPTS.get(entry.tag)
        trained_by = f" (trained by ``{script}``, with this recipe)" if script else ""
        title = f"``{entry.loaded_as}``{trained_by}:"
        blocks += [title, "", ".. code-block:: console", "", _wrapped(command), ""]
    return "\n".join(blocks)


def generate(_app: object = None) -> None:
    from cifarzoo.table import render_architecture_rst, render_weights_rst

    rows = _model_rows()
    _write(GENERATED / "weights_table.rst", render_weights_rst(rows))
    _write(GENERATED / "architecture_table.rst", render_architecture_rst(rows))
    _write(GENERATED / "families.rst", _families())
    _write(GENERATED / "zoo_summary.rst", _zoo_summary(rows))
    _write(GENERATED / "api.rst", _api())
    _write(GENERATED / "lab_comparison.rst", _lab_comparison(LAB_REPORT))
    _write(GENERATED / "lab_four.rst", _lab_comparison(LAB_FOUR_REPORT))
    _write(GENERATED / "changelog.md", _changelog())
    _write(GENERATED / "examples.rst", _examples())
    _write(GENERATED / "checkout_commands.rst", _checkout_commands())
    _write(GENERATED / "reproduce_commands.rst", _reproduce_commands())
    _write(GENERATED / "baseline_recipe.rst", _baseline_recipe())


def setup(app: object) -> None:
    generate()
