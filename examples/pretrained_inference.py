"""Classify images with a pretrained model: timm's transform on PIL images, the class names from
the model's pretrained_cfg (or say clearly that the model has no weights).

python examples/pretrained_inference.py [MODEL [IMAGE ...]]

Without IMAGEs it classifies the first CIFAR-10 test images and measures the test accuracy.
"""

from __future__ import annotations

import sys

import timm
import torch
from _common import get_data
from PIL import Image
from torch import nn

import cifarzoo
from cifarzoo.metrics import evaluate


def load(name: str) -> nn.Module:
    """The model with its pretrained weights, or randomly initialized (with a note) without."""
    with_weights = cifarzoo.list_models(pretrained=True)
    if name in with_weights:
        print(f"{name}: loaded the pretrained weights")
        return cifarzoo.create_model(name, pretrained=True).eval()
    print(
        f"NOTE: no pretrained weights for {name!r} in this installation "
        f"(models with weights: {', '.join(with_weights) or 'none yet'}). Using a randomly "
        "initialized model: its predictions are chance level."
    )
    return cifarzoo.create_model(name).eval()


def classify(model: nn.Module, images: list[Image.Image]) -> list[tuple[str, float]]:
    """The predicted class and its probability for each image, whatever its size."""
    config = timm.data.resolve_data_config({}, model=model)  # 32x32, CIFAR-10 mean and std
    transform = timm.data.create_transform(**config)
    batch = torch.stack([transform(image.convert("RGB")) for image in images])
    with torch.no_grad():
        probabilities = model(batch).softmax(dim=1)
    names = model.pretrained_cfg.get("label_names") or cifarzoo.CIFAR10_CLASSES
    confidence, predicted = probabilities.max(dim=1)
    return [(names[p], c) for p, c in zip(predicted.tolist(), confidence.tolist(), strict=True)]


def main(name: str = "resnet20", *paths: str) -> None:
    model = load(name)
    if paths:
        for path, (label, p) in zip(
            paths, classify(model, [Image.open(p) for p in paths]), strict=True
        ):
            print(f"{path}: {label} ({100 * p:.1f}%)")
        return
    data = get_data()
    images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in data.test.images[:8]]
    truth = [data.classes[y] for y in data.test.labels[:8].tolist()]
    for i, ((label, p), true) in enumerate(zip(classify(model, images), truth, strict=True)):
        print(f"image {i}: predicted {label:<10} ({100 * p:4.1f}%), true {true}")
    result = evaluate(model, data.test)
    print(
        f"accuracy on {len(data.test):,} test images of {data.name}: {100 * result.accuracy:.2f}%"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
