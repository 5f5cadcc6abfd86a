"""What the subcommands of the ``cifarzoo`` command line share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["Subparsers", "check_out_folder", "folder_problem"]

Subparsers = Any  # argparse._SubParsersAction is private


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), or ``None``."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so no folder can be created in it"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"there is no permission to write in {existing}"
    return None


def check_out_folder(folder: Path, flag: str) -> None:
    """Refuse ``folder`` (given by ``flag``) when files cannot be written into it."""
    problem = folder_problem(folder)
    if problem is not None:
        raise ValueError(f"{flag} {folder}: {problem}; pass a folder that can be written to")
