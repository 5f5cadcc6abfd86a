"""Command-line options generated from the declarations of :class:`~cifarzoo.training.Recipe`
and :class:`~cifarzoo.training.RunOptions` (:mod:`cifarzoo.training.fields`), and the options
that every command shares (data, device, threads, bf16).

``cifarzoo train``, ``cifarzoo compare`` and the GPU scripts in ``benchmarks/`` all call
:func:`add_setting_options`, so a recipe field has one help text, one rule and one spelling
everywhere (``--batch-size``; an on/off field is ``--flip`` / ``--no-flip``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..batch_files import FOLDER
from ..data import DEFAULT_DATA_ROOT, ENV_DATA, OFFICIAL_NAME, UNVERIFIED_NAME
from ..training import AMP_MODES, RunOptions
from ..training.fields import Setting, setting_of
from .argtypes import argument_type, thread_count

__all__ = [
    "AMP_HELP",
    "add_amp_argument",
    "add_common_options",
    "add_setting_options",
    "check_data_sizes",
    "flag_text",
    "given_settings",
    "run_option_help",
    "setting_flags",
    "use_threads",
]


def run_option_help(name: str) -> str:
    """The help text that the :class:`~cifarzoo.training.RunOptions` field ``name`` declares,
    for an option a command adds by hand (its default or its choices differ)."""
    return setting_of(next(f for f in dataclasses.fields(RunOptions) if f.name == name)).help


#: Help of the ``--amp`` option.
AMP_HELP = run_option_help("amp")


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def _flag(field: dataclasses.Field[Any]) -> str:
    return setting_of(field).flag or "--" + field.name.replace("_", "-")


def setting_flags(settings: type[Any], names: Collection[str] | None = None) -> dict[str, str]:
    """``{field: flag}`` of the fields ``names`` (default: all) of the dataclass ``settings``:
    the options that :func:`add_setting_options` adds for them."""
    return {
        f.name: _flag(f) for f in dataclasses.fields(settings) if names is None or f.name in names
    }


def _checked_parse(s: Setting) -> Callable[[str], Any]:
    """``s.parse`` that also applies the field's rule, as an argparse type, so that argparse
    names the option (``argument --momentum: must be in [0, 1), got 2``) before anything runs."""
    parse, ok = s.parse, s.ok
    assert parse is not None

    def checked(text: str) -> Any:
        value = parse(text)
        if ok is not None and not ok(value):
            raise ValueError(f"{s.rule}, got {text}")
        return value

    checked.__name__ = getattr(parse, "__name__", "value")
    return argument_type(checked)


def add_setting_options(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: type[Any],
    names: Collection[str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    left_out: bool = False,
    default_text: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Add an option for each field ``names`` (default: all) of the dataclass ``settings``
    (:class:`~cifarzoo.training.Recipe`, :class:`~cifarzoo.training.RunOptions`) and return
    ``{field: flag}``. An option takes the field's ``defaults`` value, else its declared
    default; with ``left_out=True`` a field not given is absent from the namespace (a resume
    fills it from the checkpoint), its default only named in the help (``default_text``
    overrides how)."""
    flags = setting_flags(settings, names)
    for f in dataclasses.fields(settings):
        if f.name not in flags:
            continue
        s, flag = setting_of(f), flags[f.name]
        default = (defaults or {}).get(f.name, f.default)
        shown = (default_text or {}).get(f.name) or (
            _on_off(default) if isinstance(f.default, bool) else s.shown(default)
        )
        value = argparse.SUPPRESS if left_out else default
        help_text = f"{s.help} (default: {shown})"
        if isinstance(f.default, bool):
            help_text = f"{s.help}; --no-{flag[2:]}: off (default: {shown})"
            both = p.add_mutually_exclusive_group()
            both.add_argument(
                flag, dest=f.name, action="store_const", const=True, default=value, help=help_text
            )
            both.add_argument(
                f"--no-{flag[2:]}",
                dest=f.name,
                action="store_const",
                const=False,
                default=value,
                help=argparse.SUPPRESS,
            )
        else:
            kwargs: dict[str, Any] = {"type": _checked_parse(s)} if s.parse is not None else {}
            if s.choices is not None:
                kwargs["metavar"] = "{" + ",".join(s.shown(c) for c in s.choices) + "}"
                if s.parse is None:
                    kwargs["choices"] = list(s.choices)
            p.add_argument(flag, dest=f.name, default=value, help=help_text, **kwargs)
    return flags


def check_data_sizes(val_size: int, train_subset: int) -> None:
    """Refuse a ``--val-size`` or ``--train-subset`` that CIFAR-10's training images cannot
    give (``train_subset`` 0 means all of them), before the data is read."""
    from ..data import NUM_TRAIN

    if not 0 <= val_size < NUM_TRAIN:
        raise ValueError(
            f"--val-size must be between 0 (no validation split) and {NUM_TRAIN - 1:,}, got "
            f"{val_size:,}"
        )
    left = NUM_TRAIN - val_size
    if not 0 <= train_subset <= left:
        raise ValueError(
            f"--train-subset must be between 1 and {left:,} (the {NUM_TRAIN:,} training images "
            f"less --val-size {val_size:,}) or 0 for all of them, got {train_subset:,}"
        )


def given_settings(args: argparse.Namespace, flags: Mapping[str, str]) -> dict[str, Any]:
    """The fields among ``flags`` that the command line set (with ``left_out=True``)."""
    return {name: getattr(args, name) for name in flags if hasattr(args, name)}


def flag_text(settings: type[Any], name: str, value: Any) -> str:
    """How the command line writes ``name = value``: ``--epochs 3``, ``--no-flip``."""
    f = next(f for f in dataclasses.fields(settings) if f.name == name)
    flag = _flag(f)
    if isinstance(f.default, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {setting_of(f).shown(value)}"


def add_amp_argument(
    p: argparse.ArgumentParser, *, default: str | None = "auto", default_help: str = "auto"
) -> None:
    """``--amp {auto,bf16,off}`` as its word (see :data:`~cifarzoo.training.AMP_MODES`);
    ``default`` is the value when not given (``None``: the caller decides, described by
    ``default_help``)."""
    p.add_argument(
        "--amp",
        choices=list(AMP_MODES),
        default=default,
        help=f"{AMP_HELP} (default: {default_help})",
    )


def add_common_options(
    p: argparse.ArgumentParser,
    *,
    data_required: bool = False,
    download: bool = False,
) -> None:
    """The options of every command that reads CIFAR-10 and runs models: ``--data``,
    ``--data-name``, ``--device``, ``--threads`` (:func:`use_threads` applies it), and
    ``--download`` when the command may fetch the data. ``--amp`` is
    :func:`add_amp_argument` (its default differs between commands)."""
    p.add_argument(
        "--data",
        metavar="DIR",
        required=data_required,
        default=None,
        help=f"data root holding {FOLDER}"
        + ("" if data_required else f"; unset: ${ENV_DATA}, else {DEFAULT_DATA_ROOT}"),
    )
    if download:
        p.add_argument(
            "--download",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="download CIFAR-10 through torchvision when the folder is missing",
        )
    p.add_argument(
        "--data-name",
        default=None,
        help="how the data is named in the results, e.g. 'CIFAR-10 (JPEG mirror)' (default: "
        f"{OFFICIAL_NAME!r} for the official release, recognised by its files' md5 sums, else "
        f"{UNVERIFIED_NAME!r})",
    )
    p.add_argument("--device", default=None, help=run_option_help("device"))
    p.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="torch CPU threads, at most the CPUs available; unset: torch's default",
    )


def use_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads to ``--threads``, when given."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
