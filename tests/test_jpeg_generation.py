"""benchmarks/jpeg_generation.py: a second JPEG generation of a CIFAR-10 folder."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_script, write_batch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "jpeg_generation.py"


def _photo_like(n: int, seed: int) -> np.ndarray:
    """Smooth random images (upsampled noise plus a little grain), uint8 ``[N, 32, 32, 3]``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    smooth = F.interpolate(coarse, size=32, mode="bicubic", align_corners=False)
    grain = 0.04 * torch.randn(n, 3, 32, 32, generator=g)
    images = ((smooth + grain).clamp(0, 1) * 255).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).numpy()


def test_a_moved_block_grid_changes_an_encoded_image_more_than_re_encoding_in_place() -> None:
    jpeg = load_script(SCRIPT)
    first = jpeg.reencode(_photo_like(16, seed=0), quality=75, shift=0)
    in_place = jpeg.reencode(first, quality=75, shift=0)
    moved = jpeg.reencode(first, quality=75, shift=4)
    assert moved.shape == first.shape and moved.dtype == np.uint8

    def change(x: np.ndarray) -> float:
        return float(np.abs(x.astype(np.int16) - first).mean())

    assert 0.0 < change(in_place) < change(moved)
    # A flat image survives JPEG almost untouched wherever the grid lies.
    flat = np.full((2, 32, 32, 3), 120, dtype=np.uint8)
    assert np.abs(jpeg.reencode(flat, quality=75, shift=4).astype(np.int16) - 120).max() <= 2


@pytest.mark.slow
def test_writes_the_standard_layout_with_labels_and_metadata_kept(tmp_path: Path) -> None:
    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        images = _photo_like(10, seed=k).transpose(0, 3, 1, 2).reshape(10, -1)
        write_batch(src / name, images, [(i + k) % 10 for i in range(10)])
    (src / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a"] * 10}))

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "src"), str(out), "--shift", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    dst = out / "cifar-10-batches-py"
    assert (dst / "batches.meta").read_bytes() == (src / "batches.meta").read_bytes()
    for name in names:
        before = pickle.loads((src / name).read_bytes())
        after = pickle.loads((dst / name).read_bytes())
        assert after["labels"] == before["labels"]
        assert after["filenames"] == before["filenames"]
        assert after["data"].shape == (10, 3072) and after["data"].dtype == np.uint8
        assert not np.array_equal(after["data"], before["data"])
        assert f"{name}: mean absolute change" in proc.stdout


@pytest.mark.slow
def test_a_missing_folder_is_named_in_the_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "nowhere"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr and "cifar-10-batches-py" in proc.stderr
    with pytest.raises(FileNotFoundError):
        next((tmp_path / "out").iterdir())
