"""Train a small model for a short run, save its weights and load them back.

python examples/train_small.py [MODEL] [EPOCHS]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import FAST, get_data

import cifarzoo
from cifarzoo.checkpoint import save_weights
from cifarzoo.metrics import evaluate
from cifarzoo.training import Recipe, RunOptions, fit


def main(name: str = "resnet20", epochs: int = 2) -> None:
    if FAST:
        name, epochs = "lenet", 1
    data = get_data(train_images=10_000)
    print(data.describe())
    model = cifarzoo.create_model(name)
    history = fit(
        model,
        data,
        Recipe(epochs=epochs, batch_size=64 if FAST else 128, ema_decay=0.0),
        RunOptions(quiet=FAST, device="cpu" if FAST else None),
    )
    for e, loss, acc in zip(history.epoch, history.train_loss, history.eval_acc, strict=True):
        print(
            f"epoch {e}: train loss {loss:.3f}, {history.eval_split} accuracy "
            f"{100 * (acc or 0):.2f}%"
        )
    print(evaluate(model, data.test).table())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_weights(model.state_dict(), path)
        again = cifarzoo.create_model(name, weights=path)  # checked against path.sha256
        print(
            f"reloaded {name} from {path.name}: "
            f"{sum(p.numel() for p in again.parameters()):,} parameters"
        )


if __name__ == "__main__":
    main(*(sys.argv[1:2]), *(int(a) for a in sys.argv[2:3]))
