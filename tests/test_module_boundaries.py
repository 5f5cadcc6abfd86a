"""Where names live: no module of cifarzoo reaches into another's private names or into a
package's private modules, and timm's private modules are imported by one adapter only.

Read from the source with :mod:`ast`, so that every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "cifarzoo"
#: The one module that may import timm's private modules (see its docstring).
TIMM_ADAPTER = "cifarzoo.timm_compat"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, absolute module, imported names)`` of every import in the file at ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield node.lineno, target, [alias.name for alias in node.names]


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_package() -> None:
    names = {_module_name(p) for p in _sources()}
    assert {"cifarzoo", "cifarzoo.models._registry", "cifarzoo.runs.read"} <= names
    lines = list(_imports(PACKAGE / "models" / "cifar_resnet.py"))
    assert any(target == "cifarzoo.models._registry" for _, target, _ in lines), lines


@pytest.mark.parametrize("path", _sources(), ids=lambda p: _module_name(p))
def test_no_private_name_crosses_modules(path: Path) -> None:
    """``from cifarzoo.x import _name`` and ``import``s of a package's private module from
    outside that package: what is shared has a public name in the module that owns it."""
    module = _module_name(path)
    wrong = []
    for line, target, names in _imports(path):
        if target.split(".")[0] != "cifarzoo" or target == module:
            continue
        wrong += [f"line {line}: from {target} import {n}" for n in names if _private(n)]
        parts = target.split(".")
        for i, part in enumerate(parts):
            owner = ".".join(parts[:i])
            if _private(part) and not (module == owner or module.startswith(owner + ".")):
                wrong.append(f"line {line}: {target} is private to {owner}")
    assert not wrong, f"{module} imports private names of other modules: {wrong}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: _module_name(p))
def test_private_timm_apis_only_in_the_adapter(path: Path) -> None:
    module = _module_name(path)
    if module == TIMM_ADAPTER:
        return
    wrong = [
        f"line {line}: {target} {names or ''}"
        for line, target, names in _imports(path)
        if target.split(".")[0] == "timm"
        and (any(map(_private, target.split("."))) or any(map(_private, names)))
    ]
    assert not wrong, (
        f"{module} imports private timm APIs {wrong}: use timm's public API, or add them to "
        f"{TIMM_ADAPTER} (and its contract test, tests/test_timm_compat.py)"
    )
