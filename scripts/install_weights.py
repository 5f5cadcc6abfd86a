#!/usr/bin/env python
"""Install a ``cifarzoo train`` run's weights as a model's pretrained weights.

Weights up to 24 MB are shipped in the package
(``src/cifarzoo/weights/<arch>.<tag>.safetensors`` plus ``<arch>.<tag>.json`` with the sha256 and
the run's metrics; a big network in float16); larger ones are published with ``cifarzoo publish``
and registered here by their pinned Hub revision:

    python scripts/install_weights.py runs/resnet20
    python scripts/install_weights.py runs/resnet18 --hub-id ORG/cifarzoo-resnet18@<commit>
    python scripts/install_weights.py runs/gpu/resnet18 --unpublished   # metrics only, for now
    python scripts/install_weights.py runs/resnet18 --dtype float16      # a big one, packaged

(``runs/gpu/<model>`` as ``scripts/gpu_bundle.py unpack`` rebuilds a GPU session's finals.)

Then regenerate the table: ``python scripts/accuracy_table.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cifarzoo.install import DEFAULT_TAG, MAX_PACKAGED_MB, install_weights  # noqa: E402
from cifarzoo.pretrained import PretrainedWeightsError  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="output folder of `cifarzoo train`")
    parser.add_argument("--hub-id", help="published weights, pinned: ORG/NAME@<40-hex commit>")
    parser.add_argument(
        "--unpublished",
        action="store_true",
        help="record the metrics alone (trained weights not uploaded yet): recorded in the "
        "metadata only; the table lists them once they load",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"weights tag (default {DEFAULT_TAG})")
    parser.add_argument("--weights-dir", type=Path, help="default: src/cifarzoo/weights")
    parser.add_argument("--max-mb", type=float, default=MAX_PACKAGED_MB)
    parser.add_argument(
        "--dtype",
        choices=["as-trained", "float16"],
        default="as-trained",
        help="float16: ship the weights at half the size (then measure them again with "
        "scripts/measure_weights.py)",
    )
    args = parser.parse_args(argv)
    try:
        path = install_weights(
            args.run,
            weights_dir=args.weights_dir,
            tag=args.tag,
            hf_hub_id=args.hub_id,
            max_mb=args.max_mb,
            unpublished=args.unpublished,
            dtype=args.dtype,
        )
    except (FileNotFoundError, ValueError, PretrainedWeightsError) as err:
        print(f"error: {err}\nNothing was installed or changed.", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
