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

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network while building

import cifarzoo  # noqa: E402

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
    ("cifarzoo.train", "Training"),
    ("cifarzoo.optim", "Optimizer: Muon for convolution filters"),
    ("cifarzoo.metrics", "Evaluation"),
    ("cifarzoo.checkpoint", "Checkpoints and weights files"),
    ("cifarzoo.hub", "Pretrained weights and the Hugging Face Hub"),
    ("cifarzoo.compare", "Comparison report"),
    ("cifarzoo.instrument", "Recording hooks"),
    ("cifarzoo.plots", "Plots"),
]

COMPARE_FIGURES = [
    ("cost.png", "Parameters, MACs, seconds per epoch, peak memory and test accuracy."),
    ("curves.png", "Training and validation loss and accuracy, all models overlaid."),
    ("per_class_accuracy.png", "Test accuracy of each class."),
    ("confusion_matrices.png", "Confusion matrices (rows: true class; % of the row)."),
    (
        "gradient_flow.png",
        "Gradient norm of each layer over training (dark: early, yellow: "
        "late). Gaps are exact zeros, e.g. the zero-initialized residual branches at step 0.",
    ),
    ("se_gates.png", "Distribution of the SE gate values of each stage over test images."),
]


def _write(path: Path, text: str) -> None:
    """Write only when the content changes, so incremental builds stay incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _model_table() -> str:
    import torch

    try:
        from cifarzoo.hub import model_table, render_rst
    except ImportError:
        model_table = render_rst = None  # type: ignore[assignment]
    if model_table is not None and render_rst is not None:
        with torch.device("meta"):  # count parameters and MACs without allocating weights
            return str(render_rst(model_table()))
    from cifarzoo.compare import count_macs, count_params

    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - Model",
        "     - Params",
        "     - MACs (32x32)",
    ]
    for name in cifarzoo.list_models():
        with torch.device("meta"):
            model = cifarzoo.create_model(name)
        lines += [
            f"   * - {name}",
            f"     - {count_params(model) / 1e6:.2f} M",
            f"     - {count_macs(model) / 1e6:.1f} M",
        ]
    return "\n".join(lines) + "\n"


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


def _compare_figures() -> str:
    folder = DOCS / "_static" / "compare"
    present = [(f, c) for f, c in COMPARE_FIGURES if (folder / f).is_file()]
    if not present:
        return (
            ".. note::\n\n   The example figures are not in this build yet: run the command "
            "above and copy the PNG files into ``docs/_static/compare/``.\n"
        )
    out = []
    summary = folder / "summary.txt"
    if summary.is_file():
        out += [
            "The summary table of that run:",
            "",
            ".. literalinclude:: /_static/compare/summary.txt",
            "   :language: text",
            "",
        ]
    for name, caption in present:
        out += [f".. figure:: /_static/compare/{name}", "   :width: 100%", "", f"   {caption}", ""]
    return "\n".join(out)


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
    return "\n".join(out)


def generate(_app: object = None) -> None:
    _write(GENERATED / "model_table.rst", _model_table())
    _write(GENERATED / "families.rst", _families())
    _write(GENERATED / "api.rst", _api())
    _write(GENERATED / "compare_figures.rst", _compare_figures())
    _write(GENERATED / "changelog.md", _changelog())
    _write(GENERATED / "examples.rst", _examples())


def setup(app: object) -> None:
    generate()
