"""Settings declared once: each dataclass field carries its rule and help text.

:func:`setting` declares a field of :class:`~cifarzoo.training.Recipe` or
:class:`~cifarzoo.training.RunOptions` together with what checks it (a rule such as ``>= 1``),
what the command line parses it with and how its help reads. :func:`check_fields` enforces the
rules when an object is made; :mod:`cifarzoo.cli.options` builds the command-line options
from the same declarations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Setting", "check_fields", "setting", "setting_of"]


@dataclass(frozen=True)
class Setting:
    """What a field declares besides its default.

    ``rule`` is how an error words the allowed values (``"must be >= 1"``) and ``ok`` tests a
    value against it; ``parse`` turns a command-line word into a value (a ``ValueError`` says
    why a word is refused: :mod:`cifarzoo.training.parsing`);
    ``choices`` lists the allowed values of a categorical field; ``shown`` is how the
    command line writes a value (``--amp auto`` for ``None``); ``flag`` overrides the option
    name (``--`` and the field name with dashes otherwise).
    """

    help: str
    rule: str = ""
    ok: Callable[[Any], bool] | None = None
    parse: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    shown: Callable[[Any], str] = str
    flag: str | None = None


def setting(default: Any, help: str, **declared: Any) -> Any:
    """A dataclass field with ``default`` and a :class:`Setting` (see its attributes)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(help, **declared)})


def setting_of(f: dataclasses.Field[Any]) -> Setting:
    found = f.metadata.get("setting")
    if not isinstance(found, Setting):
        raise TypeError(f"{f.name} is not declared with cifarzoo.training.fields.setting")
    return found


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _choices_text(choices: Sequence[Any]) -> str:
    words = [repr(c) for c in choices]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_fields(obj: Any) -> None:
    """Raise ``ValueError("<field> <rule>, got <value>")`` for the first field of the dataclass
    ``obj`` whose value breaks its declared rule or choices."""
    for f in dataclasses.fields(obj):
        s = setting_of(f)
        value = getattr(obj, f.name)
        if s.choices is not None and value not in s.choices:
            raise ValueError(f"{f.name} must be {_choices_text(s.choices)}, got {value!r}")
        if s.ok is not None and not (_finite(value) and s.ok(value)):
            raise ValueError(f"{f.name} {s.rule}, got {value!r}")
