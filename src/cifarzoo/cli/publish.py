"""``cifarzoo publish``: publish a training run or the shipped weights to the Hugging Face Hub
(:mod:`cifarzoo.hub`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub import publish
from ..hub_source import shipped_source
from .common import Subparsers

__all__ = ["add_publish_parser", "run_publish_command"]


def add_publish_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``publish`` to a CLI's subparsers (``parser.add_subparsers()``); the handler is
    set as ``func`` (:func:`run_publish_command`, returns an exit code)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="publish a training run or shipped weights to the Hugging Face Hub",
        description=(
            "Build a Hub repository folder (model.safetensors, timm config.json, model card, "
            "metrics, training record and curves) from a `cifarzoo train` output folder or "
            "from weights shipped in the package, and upload it."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="output folder of cifarzoo train")
    source.add_argument(
        "--pretrained",
        metavar="ARCH.TAG",
        help="weights shipped in the package, e.g. lenet.lab (ARCH alone: its default ones)",
    )
    parser.add_argument("--repo-id", required=True, help="Hub repository, as ORG/NAME")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to build the folder, kept (default: a temporary folder, removed after upload)",
    )
    parser.add_argument("--dry-run", action="store_true", help="build and check, don't upload")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.set_defaults(func=run_publish_command)
    return parser


def run_publish_command(args: argparse.Namespace) -> int:
    """The ``cifarzoo publish`` handler."""
    source = args.run if args.pretrained is None else shipped_source(args.pretrained)
    result = publish(
        source, args.repo_id, out_dir=args.out, dry_run=args.dry_run, private=args.private
    )
    if result.folder.exists():
        print(f"built {result.folder}")
    if result.commit is None:
        print("dry run: nothing uploaded")
        return 0
    print(f"uploaded {result.url}")
    print(f"pinned revision: {result.pinned_id}")
    if args.run is not None:
        print(f"register: python scripts/install_weights.py {args.run} --hub-id {result.pinned_id}")
    return 0
