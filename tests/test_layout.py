"""The project's layout rules, on the real files: no module of the package over 500 lines, no
function or method over 80; and every test that reads the real CIFAR-10 data marked ``data``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cifarzoo"
TESTS = ROOT / "tests"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: The fixture that reads $CIFARZOO_TEST_DATA (conftest.py); a test needing it, directly or
#: through other fixtures, reads the real data.
REAL_DATA_FIXTURE = "cifar10_root"

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _modules() -> list[Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40  # the package was found
    return modules


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, FunctionNode]]:
    """Every function and method in ``tree``, nested ones too, by qualified name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def _long_functions(path: Path, root: Path = PACKAGE) -> dict[str, int]:
    """``module:qualified.name`` -> lines (from ``def`` to its last line) of each function of
    ``path`` over :data:`MAX_FUNCTION_LINES`; ``module`` relative to ``root``."""
    module = path.relative_to(root).as_posix()
    return {
        f"{module}:{name}": lines
        for name, node in _functions(ast.parse(path.read_text(), str(path)))
        if (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    }


def test_no_module_is_over_500_lines() -> None:
    long = {
        path.relative_to(PACKAGE).as_posix(): lines
        for path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, (
        f"modules of src/cifarzoo over {MAX_MODULE_LINES} lines (split them by job): {long}"
    )


def test_no_function_is_over_80_lines() -> None:
    long = {name: n for path in _modules() for name, n in _long_functions(path).items()}
    assert not long, (
        f"functions of src/cifarzoo over {MAX_FUNCTION_LINES} lines (split them): {long}"
    )


def test_a_long_method_and_a_long_nested_function_are_found(tmp_path: Path) -> None:
    def body(lines: int, indent: str) -> str:  # a def line and lines - 1 statements
        return "".join(f"{indent}x{i} = {i}\n" for i in range(lines - 1))

    limit = MAX_FUNCTION_LINES
    (tmp_path / "mod.py").write_text(
        f"def short():\n{body(limit, '    ')}\n\n"
        f"class C:\n    def long(self):\n{body(limit + 1, '        ')}\n\n"
        f"def outer():\n    def inner():\n{body(limit + 2, '        ')}"
    )
    assert _long_functions(tmp_path / "mod.py", tmp_path) == {
        "mod.py:C.long": limit + 1,
        "mod.py:outer": limit + 3,
        "mod.py:outer.inner": limit + 2,
    }


# --- the data marker --------------------------------------------------------------------------


def _marked_data(decorators: list[ast.expr]) -> bool:
    return any("pytest.mark.data" in ast.unparse(d) for d in decorators)


def _is_fixture(node: FunctionNode) -> bool:
    return any(ast.unparse(d).startswith("pytest.fixture") for d in node.decorator_list)


def _is_test(node: ast.stmt) -> TypeGuard[FunctionNode]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _tests(tree: ast.Module) -> Iterator[tuple[str, FunctionNode, list[ast.expr]]]:
    """Each test function of a module and of its classes: its name (``Class::test``), its
    node and its class's decorators."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                if _is_test(child):
                    yield f"{node.name}::{child.name}", child, node.decorator_list
        elif _is_test(node):
            yield node.name, node, []


def _unmarked_real_data_tests(files: list[Path]) -> list[str]:
    """``file::test`` of each test in ``files`` that needs :data:`REAL_DATA_FIXTURE` (through
    any chain of fixtures defined there) and is not marked ``data`` (itself, its class, or
    its module's ``pytestmark``)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    fixtures = {
        node.name: {a.arg for a in node.args.args}
        for tree in trees.values()
        for _, node in _functions(tree)
        if _is_fixture(node)
    }
    real = {REAL_DATA_FIXTURE}
    while grown := {f for f, args in fixtures.items() if args & real} - real:
        real |= grown
    unmarked = []
    for path, tree in trees.items():
        module_marked = any(
            isinstance(node, ast.Assign)
            and "pytestmark" in map(ast.unparse, node.targets)
            and "pytest.mark.data" in ast.unparse(node.value)
            for node in tree.body
        )
        unmarked += [
            f"{path.name}::{name}"
            for name, test, outer in _tests(tree)
            if {a.arg for a in test.args.args} & real
            and not (module_marked or _marked_data(test.decorator_list + outer))
        ]
    return unmarked


def test_every_test_of_the_real_data_is_marked_data() -> None:
    files = sorted(TESTS.glob("*.py"))
    assert TESTS / "conftest.py" in files
    unmarked = _unmarked_real_data_tests(files)
    assert not unmarked, f"tests that read the real data without @pytest.mark.data: {unmarked}"


def test_an_unmarked_real_data_test_is_found(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef cifar10_root(): ...\n\n\n"
        "@pytest.fixture(scope='module')\ndef loaded(cifar10_root): ...\n"
    )
    (tmp_path / "test_a.py").write_text(
        "import pytest\n\n\n@pytest.mark.data\ndef test_marked(cifar10_root): ...\n\n\n"
        "def test_through_a_fixture(loaded): ...\n\n\n"
        "def test_synthetic(tmp_path): ...\n\n\n"
        "@pytest.mark.data\nclass TestMarked:\n    def test_in_class(self, loaded): ...\n\n\n"
        "class TestUnmarked:\n    def test_in_class(self, cifar10_root): ...\n"
    )
    (tmp_path / "test_b.py").write_text(
        "import pytest\n\npytestmark = [pytest.mark.data]\n\n\ndef test_all(cifar10_root): ...\n"
    )
    files = sorted(tmp_path.glob("*.py"))
    assert _unmarked_real_data_tests(files) == [
        "test_a.py::test_through_a_fixture",
        "test_a.py::TestUnmarked::test_in_class",
    ]


def test_the_weights_are_published_under_the_packages_license() -> None:
    import tomllib

    from cifarzoo.constants import WEIGHTS_LICENSE
    from cifarzoo.models import create_model

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["license"].lower() == WEIGHTS_LICENSE
    assert create_model("lenet").pretrained_cfg["license"] == WEIGHTS_LICENSE
