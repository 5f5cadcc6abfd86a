#!/usr/bin/env python
"""Measure the shipped weights' accuracies again and record them in their metadata.

For each of the weights (default: every ``<arch>.<tag>.safetensors`` in the weights folder), on
the data its ``<arch>.<tag>.json`` says it was measured on, with the validation split its
training run held out (the recipe's seed; the training images beyond the recorded ``train_images``):
``test_accuracy``, ``val_accuracy`` and the per-class accuracy are one forward pass in float32,
as timm's ``validate.py`` measures them, and the recorded test-time augmentation's figures are
measured from the same forward passes. The JSON's accuracy fields are rewritten in the layout
``cifarzoo train`` records today (``cifarzoo.runs.recorded``); the other seeds' runs keep their
figures, in that layout. The weights files are only read (checked against the recorded sha256).

    python scripts/measure_weights.py --data ROOT --data-name "CIFAR-10 (JPEG mirror)"
    python scripts/measure_weights.py --data ROOT --data-name ... --dry-run resnet20.c10

Then regenerate the table: ``python scripts/accuracy_table.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cifarzoo.checkpoint import atomic_write, json_text, verify_sha256  # noqa: E402
from cifarzoo.data import load_cifar10  # noqa: E402
from cifarzoo.metrics import EvalResult, evaluate, tta_views  # noqa: E402
from cifarzoo.models import create_model  # noqa: E402
from cifarzoo.pretrained import PACKAGED_WEIGHTS_DIR, weights_tags  # noqa: E402
from cifarzoo.runs import (  # noqa: E402
    RecordedAccuracy,
    recorded_accuracy,
    recorded_seed_runs,
    recorded_split,
    recorded_tta,
)

#: The metadata's accuracy fields, in every layout: replaced by the ones measured.
ACCURACY_KEYS = (
    "test_accuracy", "val_accuracy", "tta", "tta_test_accuracy", "tta_val_accuracy",
    "single_pass_test_accuracy", "single_pass_val_accuracy", "per_class_accuracy",
    "tta_per_class_accuracy", "bf16", "tta_flip", "tta_translate", "seed_runs",
)  # fmt: skip


def measure(
    arch: str, weights: Path, metrics: dict[str, Any], data_root: str, data_name: str | None
) -> tuple[EvalResult, EvalResult]:
    """The test and validation results (one forward pass, and the recorded TTA's beside it)
    of ``arch`` with the weights file ``weights``, whose recorded metrics are ``metrics``."""
    data = load_cifar10(data_root, name=data_name)
    if data.name != metrics["data"]:
        raise SystemExit(
            f"{weights.name} was measured on {metrics['data']}, and this data is named "
            f"{data.name}: pass --data-name {metrics['data']!r} if it is the same data"
        )
    data = recorded_split(data, metrics)
    if data.val is None:
        raise SystemExit(f"{weights.name} records no held-out split to measure again")
    model = create_model(arch, weights=str(weights)).eval()
    flip, translate = recorded_tta(metrics) or (False, False)
    test, val = (
        evaluate(
            model,
            split,
            tta_flip=flip,
            tta_translate=translate,
            amp=False,
            device="cpu",
            classes=data.classes,
            single_pass=True,
        )
        for split in (data.test, data.val)
    )
    return test, val


def remeasured(metrics: dict[str, Any], test: EvalResult, val: EvalResult) -> dict[str, Any]:
    """``metrics`` with the accuracies of ``test`` and ``val`` (as :func:`measure` gives them)
    in today's layout; the runs of other seeds keep theirs."""
    single_test, single_val = test.one_pass or test, val.one_pass or val
    views = tta_views(test.tta_flip, test.tta_translate) or None
    measured = RecordedAccuracy(
        single_test.accuracy,
        single_val.accuracy,
        views,
        None if views is None else test.accuracy,
        None if views is None else val.accuracy,
    )
    seed_runs = [
        {
            "seed": run["seed"],
            **(measured if run["kept"] else recorded).fields(),
            "kept": run["kept"],
        }
        for run, recorded in zip(metrics["seed_runs"], recorded_seed_runs(metrics), strict=True)
    ]
    kept = {k: v for k, v in metrics.items() if k not in ACCURACY_KEYS}
    return {
        **measured.fields(),
        "per_class_accuracy": dict(zip(test.classes, single_test.per_class_accuracy, strict=True)),
        "bf16": False,
        "tta_flip": test.tta_flip,
        "tta_translate": test.tta_translate,
        **kept,
        "seed_runs": seed_runs,
    }


def describe(arch: str, before: RecordedAccuracy, after: RecordedAccuracy) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f}%"

    figures = [("test", before.test, after.test), ("val", before.val, after.val)]
    if after.tta is not None:
        figures += [
            (f"{after.tta} TTA test", before.tta_test, after.tta_test),
            (f"{after.tta} TTA val", before.tta_val, after.tta_val),
        ]
    changes = [f"{name} {pct(old)} -> {pct(new)}" for name, old, new in figures]
    return f"{arch}: " + ", ".join(changes)


def weights_names(given: Sequence[str], folder: Path) -> list[str]:
    """``ARCH.TAG`` for each name given (an ``ARCH`` alone: each of its tags), or for every
    weights file in ``folder`` when none is given."""
    if not given:
        return sorted(p.stem for p in folder.glob("*.safetensors"))
    return [
        name
        for arch in given
        for name in ([arch] if "." in arch else [f"{arch}.{t}" for t in weights_tags(arch, folder)])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "weights",
        nargs="*",
        help="weights as ARCH.TAG (resnet20.c10), or ARCH for all of its tags (default: all)",
    )
    parser.add_argument("--data", required=True, help="data root holding cifar-10-batches-py")
    parser.add_argument("--data-name", help="the data's name, as the metadata records it")
    parser.add_argument("--weights-dir", type=Path, default=PACKAGED_WEIGHTS_DIR)
    parser.add_argument("--dry-run", action="store_true", help="measure and print, write nothing")
    args = parser.parse_args(argv)
    folder: Path = args.weights_dir
    for name in weights_names(args.weights, folder):
        arch = name.partition(".")[0]
        meta_path = folder / f"{name}.json"
        meta = json.loads(meta_path.read_text())
        weights = folder / meta["file"]
        verify_sha256(weights, meta["sha256"])
        test, val = measure(arch, weights, meta["metrics"], args.data, args.data_name)
        metrics = remeasured(meta["metrics"], test, val)
        before, after = recorded_accuracy(meta["metrics"]), recorded_accuracy(metrics)
        print(describe(name, before, after), flush=True)
        if not args.dry_run:
            with atomic_write(meta_path) as f:
                f.write(json_text({**meta, "metrics": metrics}).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
