"""The ``cifarzoo`` command line: ``list``, ``train``, ``eval``, ``compare`` and ``publish``.

Each subcommand is registered by an ``add_<name>_parser(subparsers)`` function that sets
``func`` (the handler, ``args -> exit code``) as a parser default; :data:`SUBCOMMANDS` lists
them in order. Adding a command means writing one more such function and appending it.
``train`` lives in :mod:`cifarzoo.cli.train`, ``eval`` in :mod:`cifarzoo.cli.eval`, ``compare``
in :mod:`cifarzoo.cli.compare` and ``publish`` in :mod:`cifarzoo.cli.publish`. The package is the
only one that knows argparse: the options of the training settings are generated from their
declarations (:mod:`cifarzoo.cli.options`), the option types are :mod:`cifarzoo.cli.argtypes`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .common import Subparsers
from .compare import add_compare_parser
from .eval import add_eval_parser, run_eval
from .publish import add_publish_parser
from .train import OPTION_FLAGS, RECIPE_FLAGS, add_train_parser, run_train

__all__ = [
    "OPTION_FLAGS",
    "RECIPE_FLAGS",
    "SUBCOMMANDS",
    "add_eval_parser",
    "add_list_parser",
    "add_train_parser",
    "build_parser",
    "main",
    "run_eval",
    "run_list",
    "run_train",
]


def add_list_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "list",
        help="list the model names, marking those with pretrained weights",
        description="List the models cifarzoo can build, one a line; a model with pretrained "
        "weights is marked with its test accuracy (one forward pass), and its weights of other "
        "tags follow it as ARCH.TAG (load them by that name).",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--pretrained", action="store_true", help="only models with weights")
    p.set_defaults(func=run_list)
    return p


def run_list(args: argparse.Namespace) -> int:
    from ..models import list_models
    from ..pretrained import WeightsEntry, list_weights
    from ..table import weights_note

    weights: dict[str, list[WeightsEntry]] = {}
    for entry in list_weights():  # each architecture's default first
        weights.setdefault(entry.arch, []).append(entry)
    notes: dict[str, str | None] = {}
    for arch in list_models(args.pattern, pretrained=args.pretrained):
        entries = weights.get(arch, [])
        notes[arch] = weights_note(entries[0]) if entries else None
        notes |= {e.name: weights_note(e) for e in entries[1:] if e.loads}  # its other tags
    width = max((len(n) for n in notes), default=0)
    for name, note in notes.items():
        print(name if note is None else f"{name:<{width}}  {note}")
    return 0


SUBCOMMANDS: list[Callable[[Subparsers], argparse.ArgumentParser]] = [
    add_list_parser,
    add_train_parser,
    add_eval_parser,
    add_compare_parser,
    add_publish_parser,
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cifarzoo", description="CIFAR-10 model zoo: list, train and evaluate models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cifarzoo`` console script and ``python -m cifarzoo``."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.command_line = words  # for the resume hint after Ctrl-C
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cifarzoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"cifarzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions...: one line, not a traceback
        print(f"cifarzoo {args.command}: error: {_os_error_text(e)}", file=sys.stderr)
        return 2
    except MemoryError as e:
        said = " ".join(str(e).split()) or "out of memory: free some memory, or ask for less"
        print(f"cifarzoo {args.command}: error: {said}", file=sys.stderr)
        return 2


def _os_error_text(e: OSError) -> str:
    if e.strerror and e.filename is not None:
        where = str(e.filename) + (f" -> {e.filename2}" if e.filename2 is not None else "")
        text = f"{e.strerror}: {where}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())
