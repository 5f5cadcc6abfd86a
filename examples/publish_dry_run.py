"""Publish a training run to the Hugging Face Hub -- as a dry run, which uploads nothing.

    python examples/publish_dry_run.py [ORG/NAME]

Trains a tiny LeNet, writes a run folder as ``cifarzoo train`` does (weights + sha256 sidecar,
metrics.json), then builds and checks the Hub folder. For a real upload, train with
``cifarzoo train`` and run ``cifarzoo publish --run RUN --repo-id ORG/NAME`` (after
``hf auth login``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import FAST, get_data

import cifarzoo
from cifarzoo.checkpoint import save_json, save_weights
from cifarzoo.hub import publish
from cifarzoo.metrics import evaluate
from cifarzoo.training import Recipe, RunOptions, fit


def main(repo_id: str = "your-org/cifar_lenet") -> None:
    data = get_data(train_images=5_000)
    model = cifarzoo.lenet()
    history = fit(
        model,
        data,
        Recipe(epochs=1, batch_size=64, ema_decay=0.0),
        RunOptions(quiet=FAST, device="cpu" if FAST else None),
    )
    test = evaluate(model, data.test)
    val = evaluate(model, data.val) if data.val is not None else test
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        save_weights(
            model.state_dict(),
            run / "model.safetensors",
            metadata={"model": "lenet", "data": data.name},
        )
        history.save(run / "history.json")
        save_json(
            {
                "model": "lenet",
                "data": data.name,
                "test_accuracy": test.accuracy,
                "val_accuracy": val.accuracy,
                "epochs": len(history),
                "seconds": history.total_seconds,
                "hardware": "example",
                "per_class_accuracy": dict(zip(test.classes, test.per_class_accuracy, strict=True)),
            },
            run / "metrics.json",
        )
        result = publish(run, repo_id, out_dir=Path(tmp) / "hub", dry_run=True)
        print(
            f"dry run: built {result.folder.name}/ with "
            f"{', '.join(sorted(p.name for p in result.folder.iterdir()))}; nothing uploaded"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
