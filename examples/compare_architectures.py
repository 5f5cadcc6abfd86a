"""Compare architectures with one recipe and write an HTML report.

    python examples/compare_architectures.py [OUT_DIR]

The same as ``cifarzoo compare lenet resnet20 seresnet20 --epochs 1 --train-subset 5000
--out OUT_DIR``.
"""

from __future__ import annotations

import sys
import tempfile

from _common import FAST, get_data

from cifarzoo.compare import compare


def main(out: str | None = None) -> None:
    out = out or tempfile.mkdtemp(prefix="cifarzoo-compare-")
    models = ["lenet", "seresnet20"] if FAST else ["lenet", "resnet20", "seresnet20"]
    data = get_data(train_images=5_000)
    report = compare(
        models,
        data,
        epochs=1,
        out=out,
        quiet=FAST,
        batch_size=64,
        device="cpu" if FAST else None,
        gate_images=64 if FAST else 1000,
    )
    print(report.table())
    se = report.models[-1]
    if se.se_gates:
        for stage, s in se.se_gates["stages"].items():
            print(
                f"{se.name} {stage}: gates mean {s['mean']:.3f}, 5-95% "
                f"[{s['quantiles']['q05']:.3f}, {s['quantiles']['q95']:.3f}]"
            )
    print(f"open {report.files['html']}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
