#!/usr/bin/env python
"""Carry a GPU session's trained weights back from the GPU machine in a few small files, and
rebuild them as ``cifarzoo train`` run folders on the machine that keeps them.

For a GPU machine whose results come back through a limited transfer: by default (``Limits``)
at most 8 files per copy, 16 MiB each, 64 MiB in all, named with ``[A-Za-z0-9._-]`` only.
``pack`` (run on the GPU machine, by ``scripts/gpu_session.sh``) splits each run's
``model.safetensors`` into parts of at most 15 MiB and writes one manifest, ``bundle.json``,
holding every run's metrics, history, sha256 (of the whole file and of each part) and part list,
plus the tail of the session log. Runs that do not fit in one copy go, whole, into later batches
(``LATER/batch-2``, ...), which ``bash scripts/gpu_session.sh --collect N`` copies to the packed
folder for a further copy. Three float16 models fit in one: resnet18 (21.3 MiB: 2 parts),
seresnet18 (21.5 MiB: 2), densenet121 (13.5 MiB: 1), 56.4 MiB in 7 files with the manifest and
the log.

``unpack`` (run where the files were copied to) checks every part's sha256, joins them, checks
the whole file's sha256 against the manifest and the run's metrics, and writes
``RUNS/<model>/`` (model.safetensors, its .sha256, metrics.json, history.json) atomically; an
existing run folder is replaced only with ``--overwrite``. Nothing is written unless every run
in the bundle checks out.

    python3 scripts/gpu_bundle.py pack OUT runs/session/final/*/ --log runs/session.log \\
        --session runs/session/session.json --later runs/session/later   # on the GPU machine
    python scripts/gpu_bundle.py unpack OUT_COPY runs/gpu --install       # where OUT was copied

``--install`` then installs each run into the package (``scripts/install_weights.py RUN``
for each), after which ``python scripts/accuracy_table.py`` regenerates the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cifarzoo.checkpoint import atomic_write, save_json  # noqa: E402
from cifarzoo.install import MAX_PACKAGED_MB  # noqa: E402
from cifarzoo.pretrained import PretrainedWeightsError  # noqa: E402
from cifarzoo.runs import (  # noqa: E402
    is_finished,
    read_metrics,
    read_run,
    recorded_accuracy,
    restore_run,
)

MiB = 2**20
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # names a limited copy keeps, no leading dot
MANIFEST = "bundle.json"
LOG = "session.log"
FORMAT = 1


class BundleError(ValueError):
    """A bundle that cannot be packed within the limits, or whose files do not check out."""


@dataclass(frozen=True)
class Limits:
    """What one copy may bring back; the defaults keep a margin below a transfer of 8 files,
    16 MiB a file and 64 MiB in all (the manifest and the log take the rest)."""

    files: int = 8
    part_bytes: int = 15 * MiB
    total_bytes: int = 60 * MiB
    log_bytes: int = 256 * 1024


def split_bytes(data: bytes, part_bytes: int) -> list[bytes]:
    """``data`` cut into consecutive pieces of ``part_bytes`` (the last one shorter)."""
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be at least 1, got {part_bytes}")
    return [data[i : i + part_bytes] for i in range(0, max(len(data), 1), part_bytes)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# pack (on the GPU machine)
# --------------------------------------------------------------------------------------------


@dataclass
class PackedRun:
    name: str
    record: dict[str, Any]  # the manifest's entry: metrics, history, sha256, parts
    parts: dict[str, bytes]  # file name -> bytes

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts.values())


def pack_run(run_dir: Path, limits: Limits) -> PackedRun:
    """One run folder, checked as ``install_weights`` checks it (its weights against their
    sha256 sidecar) and split into named parts."""
    run = read_run(run_dir)
    name = run_dir.name
    data = run.weights.read_bytes()
    pieces = split_bytes(data, limits.part_bytes)
    parts = {f"{name}.part{i}": piece for i, piece in enumerate(pieces)}
    record = {
        "sha256": run.sha256,
        "bytes": len(data),
        "parts": [{"file": f, "sha256": sha256(b), "bytes": len(b)} for f, b in parts.items()],
        "metrics": run.metrics,
        "history": run.history(),
    }
    return PackedRun(name, record, parts)


def plan_batches(runs: list[PackedRun], log_size: int, limits: Limits) -> list[list[PackedRun]]:
    """Runs in order, each whole in the first batch with room for it; batch 1 also holds the
    log, every batch its manifest."""
    batches: list[list[PackedRun]] = [[]]
    for run in runs:
        if len(run.parts) + 1 > limits.files or run.size > limits.total_bytes:
            raise BundleError(
                f"{run.name}: {len(run.parts)} parts, {run.size / MiB:.1f} MiB, cannot come back "
                f"in one command (at most {limits.files - 1} parts and "
                f"{limits.total_bytes / MiB:g} MiB beside the manifest)"
            )
        for i, batch in enumerate(batches):
            extra = log_size if i == 0 else 0
            files = 1 + (i == 0) + sum(len(r.parts) for r in batch) + len(run.parts)
            size = extra + sum(r.size for r in batch) + run.size
            if files <= limits.files and size <= limits.total_bytes:
                batch.append(run)
                break
        else:
            batches.append([run])
    return batches


def pack(
    dest: Path,
    run_dirs: Sequence[Path],
    *,
    later: Path | None = None,
    session: Path | None = None,
    log: Path | None = None,
    limits: Limits = Limits(),
) -> list[Path]:
    """Write batch 1 into ``dest`` and any further batch into ``later/batch-N``; returns the
    folders written."""
    runs = [pack_run(Path(d), limits) for d in run_dirs]
    log_tail = log.read_bytes()[-limits.log_bytes :] if log and log.is_file() else b""
    batches = plan_batches(runs, len(log_tail), limits)
    if len(batches) > 1 and later is None:
        raise BundleError(f"{len(batches)} batches needed: pass --later DIR for batches 2 on")
    session_record = json.loads(session.read_text()) if session and session.is_file() else None
    folders = []
    for number, batch in enumerate(batches, start=1):
        folder = dest if number == 1 else Path(later or dest) / f"batch-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        for run in batch:
            for file, data in run.parts.items():
                with atomic_write(folder / file) as f:
                    f.write(data)
        if number == 1 and log_tail:
            with atomic_write(folder / LOG) as f:
                f.write(log_tail)
        manifest = {
            "format": FORMAT,
            "batch": number,
            "batches": len(batches),
            "runs": {run.name: run.record for run in batch},
            "in_other_batches": [r.name for b in batches if b is not batch for r in b],
            "session": session_record,
        }
        save_json(manifest, folder / MANIFEST)
        folders.append(folder)
    return folders


# --------------------------------------------------------------------------------------------
# unpack (where the packed files were copied to)
# --------------------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(
            f"{path} not found: expected the files a GPU session packed (the copy of its OUT "
            "folder, holding bundle.json and the weight parts)"
        )
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r}, expected {FORMAT}")
    for name, record in manifest["runs"].items():
        for file in (name, *(part["file"] for part in record["parts"])):
            if not SAFE_NAME.fullmatch(file):  # they become paths: nothing outside the folders
                raise BundleError(f"{path}: {file!r} is not a plain file name")
    return manifest


def join_parts(folder: Path, name: str, record: dict[str, Any]) -> bytes:
    """The run's whole weights file, every part and the whole checked against the manifest."""
    pieces = []
    for part in record["parts"]:
        path = folder / part["file"]
        if not path.is_file():
            raise BundleError(
                f"{name}: part {part['file']} is missing from {folder}; the bundle is incomplete "
                "(bring the batch back again, e.g. `bash scripts/gpu_session.sh --collect N`)"
            )
        data = path.read_bytes()
        if sha256(data) != part["sha256"]:
            raise BundleError(
                f"{name}: part {part['file']} is corrupt (sha256 {sha256(data)}, the manifest "
                f"records {part['sha256']}); bring it back again, nothing was written"
            )
        pieces.append(data)
    whole = b"".join(pieces)
    recorded = {record["sha256"], record["metrics"].get("sha256", record["sha256"])}
    if {sha256(whole)} != recorded:
        raise BundleError(
            f"{name}: the joined weights hash to {sha256(whole)}, not the recorded "
            f"{' / '.join(sorted(recorded))}; nothing was written"
        )
    return whole


def unpack(folder: Path, runs_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Rebuild every run of the bundle in ``folder`` under ``runs_dir``; returns their folders."""
    manifest = read_manifest(folder)
    joined = {name: join_parts(folder, name, rec) for name, rec in manifest["runs"].items()}
    targets = {name: runs_dir / name for name in joined}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise BundleError(
            f"{', '.join(existing)} already exist(s); pass --overwrite to replace, or pick "
            "another RUNS folder. Nothing was written."
        )
    for name, target in targets.items():
        rec = manifest["runs"][name]
        if not target.exists():
            restore_run(target, joined[name], rec["history"], rec["metrics"])
            continue
        fresh = target.with_name(f".{target.name}.new")
        shutil.rmtree(fresh, ignore_errors=True)
        restore_run(fresh, joined[name], rec["history"], rec["metrics"])
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(fresh, target)
        shutil.rmtree(old)
    return list(targets.values())


def describe(target: Path) -> str:
    metrics = read_metrics(target)
    acc = recorded_accuracy(metrics)

    def pct(x: float | None) -> str:
        return "--" if x is None else f"{100 * x:.2f}%"

    return (
        f"{target}: test {pct(acc.test)}, val {pct(acc.val)} (single pass; {acc.tta or 'no'} "
        f"TTA test {pct(acc.tta_test)}, val {pct(acc.tta_val)}), {metrics['epochs']} epochs, "
        f"{metrics['data']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "pack", help="on the GPU machine: run folders -> parts + bundle.json in DEST"
    )
    p.add_argument("dest", type=Path, help="the folder to copy back")
    p.add_argument("runs", type=Path, nargs="*", help="run folders (model.safetensors, ...)")
    p.add_argument("--later", type=Path, help="where batches 2, 3, ... wait for --collect")
    p.add_argument("--session", type=Path, help="session.json to include in the manifest")
    p.add_argument("--log", type=Path, help="log whose tail comes back as session.log")
    p.add_argument(
        "--part-bytes",
        type=int,
        default=Limits.part_bytes,
        help=f"largest part, at most the default {Limits.part_bytes} (smaller: the smoke test "
        "splits small models)",
    )
    u = sub.add_parser("unpack", help="the files copied back -> run folders")
    u.add_argument("files", type=Path, help="the folder the packed files were copied to")
    u.add_argument("runs_dir", type=Path, help="where to write RUNS_DIR/<model>/")
    u.add_argument("--overwrite", action="store_true", help="replace existing run folders")
    u.add_argument(
        "--install",
        action="store_true",
        help="then install each run's weights into the package, as scripts/install_weights.py "
        "RUN --max-mb MAX_MB does (sha256 checked again, the model table's JSON written)",
    )
    u.add_argument("--max-mb", type=float, default=MAX_PACKAGED_MB, help="with --install")
    u.add_argument("--weights-dir", type=Path, help="with --install; default src/cifarzoo/weights")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            if not 1 <= args.part_bytes <= Limits.part_bytes:
                raise ValueError(
                    f"--part-bytes must be in 1..{Limits.part_bytes} (what one copy brings "
                    f"back), got {args.part_bytes}"
                )
            runs = [r for r in args.runs if is_finished(r)]
            for skipped in sorted(set(args.runs) - set(runs)):
                print(f"not packed: {skipped} is no finished run (cut short?)", file=sys.stderr)
            limits = Limits(part_bytes=args.part_bytes)
            for folder in pack(
                args.dest, runs, later=args.later, session=args.session, log=args.log, limits=limits
            ):
                print(f"packed {folder}: " + ", ".join(sorted(read_manifest(folder)["runs"])))
        else:
            for target in unpack(args.files, args.runs_dir, overwrite=args.overwrite):
                print(describe(target))
                if args.install:
                    from cifarzoo.install import install_weights

                    meta = install_weights(target, weights_dir=args.weights_dir, max_mb=args.max_mb)
                    print(f"installed {target.name}: wrote {meta}")
    except (BundleError, FileNotFoundError, ValueError, PretrainedWeightsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
