"""evaluate() feeds a model what timm's and torchvision's transforms feed it: ``ToTensor`` then
``Normalize``, ``(x / 255 - mean) / std`` in float32, so that its accuracy is the one timm's
``validate.py`` measures on the same images."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision import transforms

import cifarzoo
from cifarzoo.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from cifarzoo.data import DeviceLoader, Split
from cifarzoo.metrics import predict_logits

channel_values = st.tuples(*[st.floats(0.05, 0.95, allow_nan=False)] * 3)


def torchvision_batch(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``images`` (uint8 NCHW) as PIL images through ``ToTensor`` and ``Normalize``."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    return torch.stack([transform(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in images])


@settings(max_examples=25, deadline=None)
@given(mean=channel_values, std=channel_values, seed=st.integers(0, 2**31 - 1))
def test_evaluation_batches_are_torchvisions_normalized_images(
    mean: tuple[float, ...], std: tuple[float, ...], seed: int
) -> None:
    """Bit for bit, for any mean and std: no fused ``x * scale + bias``, which rounds
    differently."""
    images = torch.randint(
        0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )
    loader = DeviceLoader(images, torch.arange(6), batch_size=6, train=False, mean=mean, std=std)
    ((x, _),) = loader.epoch_batches(0)
    assert torch.equal(x, torchvision_batch(images, mean, std))


def test_training_batches_are_normalized_the_same_way() -> None:
    """Unaugmented training batches (no crop, no flip) are the evaluation's images."""
    images = torch.randint(
        0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    loader = DeviceLoader(
        images, torch.arange(4), batch_size=4, shuffle=False, augment=False, drop_last=False
    )
    ((x, _),) = loader.epoch_batches(0)
    assert torch.equal(x, torchvision_batch(images, CIFAR10_MEAN, CIFAR10_STD))


def write_image_folder(split: Split, root: Path) -> None:
    """``split`` as PNG files in the ImageFolder layout (``root/<class>/<index>.png``) that
    timm's ``validate.py`` reads."""
    for i, (image, label) in enumerate(zip(split.images, split.labels.tolist(), strict=True)):
        folder = root / CIFAR10_CLASSES[label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")


@pytest.mark.data
@pytest.mark.slow(seconds=8)
def test_evaluate_gives_the_logits_of_timms_validation_path(
    cifar10_root: Path, tmp_path: Path
) -> None:
    """The shipped resnet20 on 500 real test images read back from PNG files with timm's
    dataset and transform (``resolve_data_config``, ``create_transform``: what ``validate.py
    --pretrained --no-prefetcher`` does on a CPU) gives exactly the logits, and so the
    accuracy, of ``predict_logits``/``evaluate`` on the same images as tensors."""
    data = cifarzoo.load_cifar10(cifar10_root)
    split = data.test.subset(torch.arange(500))
    write_image_folder(split, tmp_path)
    model = cifarzoo.create_model("resnet20", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    dataset = timm.data.create_dataset("", root=str(tmp_path), transform=transform)
    assert dataset.reader.class_to_idx == {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    loader = torch.utils.data.DataLoader(dataset, batch_size=100)
    with torch.no_grad():
        batches = [(model(x), y) for x, y in loader]
    timm_logits = torch.cat([logits for logits, _ in batches])
    timm_labels = torch.cat([y for _, y in batches])
    # timm reads the files class by class: the index of each in the split is its name
    order = torch.tensor([int(Path(path).stem) for path, _ in dataset.reader.samples])
    assert torch.equal(timm_labels, split.labels[order])
    ours = predict_logits(model, split, device="cpu")[order]
    assert torch.equal(ours, timm_logits)
    timm_accuracy = (timm_logits.argmax(1) == timm_labels).double().mean().item()
    assert cifarzoo.evaluate(model, split, device="cpu").accuracy == pytest.approx(
        timm_accuracy, abs=0
    )
