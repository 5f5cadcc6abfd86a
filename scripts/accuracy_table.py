#!/usr/bin/env python
"""Regenerate the model table (params, MACs, accuracy) from the shipped weights' metadata.

Rewrites the section between ``<!-- model-table:start -->`` and ``<!-- model-table:end -->`` in
README.md (and between ``.. model-table:start`` / ``.. model-table:end`` in any ``.rst`` file
given with ``--file``). The numbers come from ``src/cifarzoo/weights/<arch>.<tag>.json``, written by
``scripts/install_weights.py``; never edit the table by hand.

    python scripts/accuracy_table.py            # rewrite
    python scripts/accuracy_table.py --check    # exit 1 if a file is stale (CI)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cifarzoo.models import list_models  # noqa: E402
from cifarzoo.table import model_table, update_table_in_file  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument(
        "--file", action="append", type=Path, help="file(s) to update (default: README.md)"
    )
    parser.add_argument("--models", nargs="+", help="model globs (default: every model)")
    parser.add_argument("--weights-dir", type=Path, help="metadata folder (default: the package's)")
    args = parser.parse_args(argv)

    names = None
    if args.models:
        names = sorted({n for pattern in args.models for n in list_models(pattern)})
    rows = model_table(names, weights_dir=args.weights_dir)
    stale = []
    for path in args.file or [ROOT / "README.md"]:
        try:
            if update_table_in_file(path, rows, check=args.check):
                stale.append(path)
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 1
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'updated'}")
    if args.check and stale:
        print("run `python scripts/accuracy_table.py` to regenerate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
