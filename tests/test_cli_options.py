"""The command line's options: parsed by the cli package alone, from the settings' declarations."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import runpy
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cifarzoo
import cifarzoo.cli.train
from cifarzoo.cli import main
from cifarzoo.cli.argtypes import positive_int as positive_int_option
from cifarzoo.training.options import amp_mode
from cifarzoo.training.parsing import fraction, positive_int

PACKAGE = Path(cifarzoo.__file__).parent


def _imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def test_only_the_cli_package_imports_argparse() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if (PACKAGE / "cli") not in p.parents]
    assert [p.relative_to(PACKAGE) for p in outside if _imports_argparse(p)] == []
    assert _imports_argparse(PACKAGE / "cli" / "options.py")  # the check sees an import


def test_importing_the_train_command_builds_no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a parser was built at import time")

    path = Path(cifarzoo.cli.train.__file__)
    spec = importlib.util.spec_from_file_location("cifarzoo.cli.fresh_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(argparse.ArgumentParser, "__init__", refuse)
    spec.loader.exec_module(module)
    assert module.RECIPE_FLAGS == cifarzoo.cli.train.RECIPE_FLAGS
    assert module.OPTION_FLAGS["eval_every"] == "--eval-every"


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["--amp", "maybe"], "argument --amp: must be one of auto, bf16, off, got 'maybe'"),
        (["--epochs", "abc"], "argument --epochs: must be a positive integer, got 'abc'"),
        (["--grad-clip", "abc"], "argument --grad-clip: must be a number > 0, got 'abc'"),
        (["--momentum", "2"], "argument --momentum: must be in [0, 1), got 2"),
        (["--eval-every", "0"], "argument --eval-every: must be a positive integer, got 0"),
        (["--val-size", "-1"], "argument --val-size: must be an integer >= 0, got -1"),
    ],
)
def test_a_refused_word_is_one_line_naming_the_option(
    words: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "lenet", *words])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"cifarzoo train: error: {said}"


@settings(deadline=None)  # the first example pays for imports
@given(st.integers(-(10**6), 10**6))
def test_word_parsers_raise_value_errors_that_the_options_report(n: int) -> None:
    if n >= 1:
        assert positive_int(str(n)) == positive_int_option(str(n)) == n
        return
    with pytest.raises(ValueError, match=rf"^must be a positive integer, got {n}$"):
        positive_int(str(n))
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^must be a positive integer, got {n}$"):
        positive_int_option(str(n))


def test_setting_parsers_refuse_with_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^must be one of auto, bf16, off, got 'maybe'$"):
        amp_mode("maybe")
    with pytest.raises(ValueError, match=r"^must be a number from 0 to 1, got nan$"):
        fraction("nan")
    assert (amp_mode("bf16"), fraction("0.25")) == (True, 0.25)


def test_python_m_cifarzoo_compare_is_the_compare_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["cifarzoo.compare", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("cifarzoo.compare", run_name="__main__")
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: cifarzoo compare [-h] --out DIR")
