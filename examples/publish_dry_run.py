"""Publish a training run to the Hugging Face Hub -- as a dry run, which uploads nothing.

    python examples/publish_dry_run.py [ORG/NAME]

Trains a tiny LeNet, writes its run folder as ``cifarzoo train`` does
(:func:`cifarzoo.runs.write_run`: weights + sha256 sidecar, history, metrics.json), then builds
and checks the Hub folder. For a real upload, train with
``cifarzoo train`` and run ``cifarzoo publish --run RUN --repo-id ORG/NAME`` (after
``hf auth login``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import FAST, get_data

import cifarzoo
from cifarzoo.hub import publish
from cifarzoo.runs import write_run
from cifarzoo.training import Recipe, RunOptions, fit


def main(repo_id: str = "your-org/cifar_lenet") -> None:
    data = get_data(train_images=5_000)
    model = cifarzoo.lenet()
    recipe = Recipe(epochs=1, batch_size=64, ema_decay=0.0)
    t0 = time.perf_counter()
    history = fit(model, data, recipe, RunOptions(quiet=FAST, device="cpu" if FAST else None))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        wall = time.perf_counter() - t0
        write_run(
            run, "lenet", model, history, data, recipe.to_dict(), wall_seconds=wall, quiet=FAST
        )
        result = publish(run, repo_id, out_dir=Path(tmp) / "hub", dry_run=True)
        print(
            f"dry run: built {result.folder.name}/ with "
            f"{', '.join(sorted(p.name for p in result.folder.iterdir()))}; nothing uploaded"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
