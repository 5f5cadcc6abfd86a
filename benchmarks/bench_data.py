"""One epoch of augmented, normalized CIFAR-10 training batches: DeviceLoader vs torchvision.

    python benchmarks/bench_data.py [--data ROOT] [--batch-size 512] [--workers 2]

The reference is the usual torchvision pipeline: a map-style dataset handing out PIL images,
``RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)`` and a
``DataLoader`` with 2 worker processes. Both sides produce the same thing: float32 normalized
batches of 512 randomly cropped and flipped images with int64 labels, on the CPU.
Without ``--data`` (and without ``$CIFARZOO_DATA``) random images of the same size are used.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cifarzoo.constants import CIFAR10_MEAN, CIFAR10_STD
from cifarzoo.data import DeviceLoader, load_cifar10


class PILDataset(Dataset[tuple[torch.Tensor, int]]):
    """What torchvision.datasets.CIFAR10 does per item: uint8 HWC -> PIL -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: object) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i])
        return self.transform(img), int(self.labels[i])  # type: ignore[operator]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("CIFARZOO_DATA"))
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="DeviceLoader epochs (best is reported)")
    args = ap.parse_args()
    import torchvision.transforms as T

    if args.data:
        split = load_cifar10(args.data).train
        images, labels = split.images, split.labels
        source = f"CIFAR-10 train from {args.data}"
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (50_000,), generator=g)
        source = "random uint8 images (50,000)"
    print(
        f"data: {source}; batch {args.batch_size}; torch {torch.__version__}; "
        f"{torch.get_num_threads()} threads; {os.cpu_count()} CPUs"
    )

    loader = DeviceLoader(
        images, labels, batch_size=args.batch_size, train=True, drop_last=False, pad_mode="zeros"
    )
    best = float("inf")
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        n = sum(len(y) for _, y in loader)
        best = min(best, time.perf_counter() - t0)
    assert n == len(labels)
    print(
        f"DeviceLoader (crop+flip+normalize, channels_last): {best:.3f} s/epoch "
        f"({n / best:,.0f} img/s)"
    )

    tf = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )
    ds = PILDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), tf)
    dl = DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=False,
    )
    t0 = time.perf_counter()
    m = sum(len(y) for _, y in dl)
    ref = time.perf_counter() - t0
    assert m == len(labels)
    print(
        f"torchvision DataLoader (PIL transforms, {args.workers} workers): {ref:.3f} s/epoch "
        f"({m / ref:,.0f} img/s)"
    )
    print(f"speed-up: {ref / best:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
