"""What the documentation shows runs and agrees with the repository: the quick start's image
classification, the examples page, and install.rst's commands (the README's)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import load_script
from PIL import Image

import cifarzoo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _code_block(page: Path, heading: str) -> str:
    """The first ``.. code-block:: python`` after ``heading`` in an RST page, dedented."""
    text = page.read_text()
    after = text[text.index(f"{heading}\n") :]
    start = after.index(".. code-block:: python\n") + len(".. code-block:: python\n")
    lines = []
    for line in after[start:].splitlines()[1:]:  # the blank line after the directive
        if line and not line.startswith("   "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def _classify(image: Image.Image, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the quick start's snippet on ``image`` saved as the file it opens; its output."""
    code = _code_block(DOCS / "quickstart.rst", "Classify an image")
    opened = re.search(r'Image\.open\("([^"]+)"\)', code)
    assert opened is not None, code
    image.save(folder / opened.group(1), quality=95)
    monkeypatch.chdir(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "quickstart.rst", "exec"), {})
    return out.getvalue()


def test_quickstart_prints_a_class_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = torch.randint(0, 256, (48, 40, 3), dtype=torch.uint8, generator=torch.Generator())
    printed = _classify(Image.fromarray(pixels.numpy()), tmp_path, monkeypatch)
    name, probability = printed.split()
    assert name in cifarzoo.CIFAR10_CLASSES and re.fullmatch(r"\d{1,3}%", probability)


@pytest.mark.data
def test_quickstart_classifies_a_real_image(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first test image of CIFAR-10, a cat, as the page says."""
    data = cifarzoo.load_cifar10(cifar10_root)
    assert data.classes[int(data.test.labels[0])] == "cat"
    image = Image.fromarray(data.test.images[0].permute(1, 2, 0).numpy())
    assert _classify(image, tmp_path, monkeypatch).split()[0] == "cat"


@pytest.fixture(scope="module")
def conf() -> ModuleType:
    """docs/conf.py, imported as Sphinx imports it (its environment default undone)."""
    offline = os.environ.get("HF_HUB_OFFLINE")
    module = load_script(DOCS / "conf.py")
    if offline is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    return module


def test_examples_page_opens_with_an_example(conf: ModuleType) -> None:
    page = conf._examples()
    titles = re.findall(r"^``(\w+\.py)``$", page, flags=re.MULTILINE)
    assert titles and not any(t.startswith("_") for t in titles)
    assert "pretrained_inference.py" in titles and "literalinclude:: /../examples/_" not in page


def test_install_page_gives_the_readme_commands(conf: ModuleType) -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [
        readme.split(f"<!-- {m}:start -->")[1].split("```bash\n")[1].split("\n```")[0]
        for m in ("main-command", "test-command")
    ]
    generated = conf._checkout_commands()
    assert "\\\n     && " in generated  # one step a line
    one_line = generated.replace(" \\\n     && ", " && ")
    assert all(f"   {c}\n" in one_line for c in commands)
    install = (DOCS / "install.rst").read_text()
    assert ".. include:: _generated/checkout_commands.rst" in install
    assert "pip install -e" not in install.split("Building the documentation")[0]


def test_the_docs_give_compares_own_defaults() -> None:
    """The epochs each comparison trains by default and the rule for a run too short to
    compare, as the docs write them, are compare's."""
    from cifarzoo.compare.findings import MIN_EPOCHS, MIN_LEAD_OVER_CHANCE

    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.rst"))]
    written = [
        (page.name, int(n))
        for page in pages
        for n in re.findall(r"# (\d+) epochs each", page.read_text())
    ]
    assert len(written) >= 3 and all(n == MIN_EPOCHS for _, n in written), written
    text = " ".join((DOCS / "compare.rst").read_text().split())
    points = round(100 * MIN_LEAD_OVER_CHANCE)
    assert f"fewer than {MIN_EPOCHS} epochs, or whose best test accuracy is within {points}" in text
