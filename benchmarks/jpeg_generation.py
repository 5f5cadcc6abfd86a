"""What one more JPEG generation costs: re-encode a CIFAR-10 folder the way the mirror was made.

The offline copy of CIFAR-10 is a JPEG mirror (quality 75, 4:2:0 chroma subsampling), and the
original pixels are not available, so the accuracy that JPEG costs cannot be measured directly.
This writes a second generation of a data folder: each image is reflect-padded by ``--shift``
pixels (so the 8x8 blocks and the chroma grid fall across the first generation's), encoded with
the same quality and subsampling, decoded and cropped back. Training and testing on it, against
the same run on the first generation, measures what one more generation costs.

    python benchmarks/jpeg_generation.py DATA OUT          # writes OUT/cifar-10-batches-py
    cifarzoo eval resnet20 --pretrained --data OUT         # the shipped weights on it
    cifarzoo train resnet20 --data OUT ...                 # trained and tested on it
"""

from __future__ import annotations

import argparse
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cifarzoo.batch_files import FOLDER, TEST_FILE, TRAIN_FILES, read_pickle

IMAGE_FILES = (*TRAIN_FILES, TEST_FILE)


def reencode(images: np.ndarray, quality: int, shift: int) -> np.ndarray:
    """JPEG-encode and decode ``images`` (uint8 ``[N, 32, 32, 3]``) with the block grid moved."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        padded = np.pad(image, ((shift, shift), (shift, shift), (0, 0)), mode="reflect")
        buffer = io.BytesIO()
        Image.fromarray(padded).save(buffer, "JPEG", quality=quality, subsampling=2)
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        out[i] = decoded[shift : shift + image.shape[0], shift : shift + image.shape[1]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="root holding cifar-10-batches-py")
    parser.add_argument("out", type=Path, help="root to write the second generation into")
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--shift", type=int, default=4, help="pixels the block grid moves by")
    args = parser.parse_args()
    src, dst = args.data / FOLDER, args.out / FOLDER
    if not src.is_dir():
        raise SystemExit(f"{src} does not exist: pass the root that holds {FOLDER}")
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.name not in IMAGE_FILES:
            shutil.copyfile(path, dst / path.name)
            continue
        batch = read_pickle(path)  # the library's reader: numpy arrays only, str keys
        images = np.asarray(batch["data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        again = reencode(images, args.quality, args.shift)
        batch["data"] = again.transpose(0, 3, 1, 2).reshape(len(again), -1)
        with open(dst / path.name, "wb") as f:
            pickle.dump(batch, f)
        change = np.abs(again.astype(np.int16) - images).mean()
        print(f"{path.name}: mean absolute change {change:.2f} grey levels")


if __name__ == "__main__":
    main()
