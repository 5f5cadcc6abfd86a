"""``--model-kwargs KEY=VALUE ...``: the model's constructor arguments on the command line, as
timm's ``train.py`` takes them. A value is a Python literal (``False``, ``0.1``, ``[1, 2]``)
where it reads as one, else the text itself (``conv_init=pytorch``).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Mapping
from typing import Any

__all__ = ["MODEL_KWARGS_FLAG", "model_kwarg", "model_kwargs_words"]

MODEL_KWARGS_FLAG = "--model-kwargs"


def model_kwarg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)`` (an argparse ``type=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        hint = "" if sep else " (the model name goes before --model-kwargs, the options after)"
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY an argument name (e.g. conv_init=pytorch), got "
            f"{text!r}{hint}"
        )
    return key, _value(value)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _value_text(value: Any) -> str:
    """The text that :func:`model_kwarg` reads back as ``value``: a string as itself where it
    does not read as another literal, else its ``repr``."""
    if isinstance(value, str) and _value(value) == value:
        return value
    return repr(value)


def model_kwargs_words(model_args: Mapping[str, Any]) -> list[str]:
    """The command-line words that give ``model_args`` (none for none)."""
    if not model_args:
        return []
    return [MODEL_KWARGS_FLAG, *(f"{k}={_value_text(v)}" for k, v in model_args.items())]
