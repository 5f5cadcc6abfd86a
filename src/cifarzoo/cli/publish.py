"""``cifarzoo publish``: publish a training run to the Hugging Face Hub (:mod:`cifarzoo.hub`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub import publish
from .common import Subparsers

__all__ = ["add_publish_parser", "run_publish_command"]


def add_publish_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``publish`` to a CLI's subparsers (``parser.add_subparsers()``); the handler is
    set as ``func`` (:func:`run_publish_command`, returns an exit code)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="publish a training run to the Hugging Face Hub",
        description=(
            "Build a Hub repository folder (model.safetensors, timm config.json, model card, "
            "metrics, curves) from a `cifarzoo train` output folder and upload it."
        ),
    )
    parser.add_argument("--run", required=True, type=Path, help="output folder of cifarzoo train")
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
    result = publish(
        args.run, args.repo_id, out_dir=args.out, dry_run=args.dry_run, private=args.private
    )
    if result.folder.exists():
        print(f"built {result.folder}")
    if result.commit is None:
        print("dry run: nothing uploaded")
    else:
        print(f"uploaded {result.url}")
        print(f"pinned revision: {result.pinned_id}")
        print(f"register: python scripts/install_weights.py {args.run} --hub-id {result.pinned_id}")
    return 0
