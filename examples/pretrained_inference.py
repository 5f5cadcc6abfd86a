"""Classify CIFAR-10 images with a pretrained model (or say clearly that there is none).

python examples/pretrained_inference.py [MODEL]
"""

from __future__ import annotations

import sys

import torch
from _common import get_data

import cifarzoo
from cifarzoo.metrics import evaluate, model_mean_std


def main(name: str = "resnet20") -> None:
    with_weights = cifarzoo.list_models(pretrained=True)
    if name in with_weights:
        model = cifarzoo.create_model(name, pretrained=True)
        print(f"{name}: loaded the pretrained weights")
    else:
        model = cifarzoo.create_model(name)
        print(
            f"NOTE: no pretrained weights for {name!r} in this installation "
            f"(models with weights: {', '.join(with_weights) or 'none yet'}). Using a randomly "
            "initialized model: its predictions are chance level."
        )
    model.eval()
    data = get_data()
    # Normalize a few raw uint8 images the way the model expects (its pretrained_cfg mean/std).
    images = data.test.images[:8].float() / 255
    mean, std = model_mean_std(model)
    x = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = model(x).softmax(1)
    conf, pred = probs.max(1)
    for i, (p, c, y) in enumerate(
        zip(pred.tolist(), conf.tolist(), data.test.labels[:8].tolist(), strict=True)
    ):
        print(
            f"image {i}: predicted {data.classes[p]:<10} ({100 * c:4.1f}%), true {data.classes[y]}"
        )
    result = evaluate(model, data.test, batch_size=500)
    print(
        f"accuracy on {len(data.test):,} test images of {data.name}: {100 * result.accuracy:.2f}%"
    )


if __name__ == "__main__":
    main(*sys.argv[1:2])
