"""cifarzoo.data: reading and validating the standard layout, splits, and the DeviceLoader."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FAKE_PER_FILE, write_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifarzoo.constants import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from cifarzoo.data import (
    OFFICIAL_NAME,
    UNVERIFIED_NAME,
    CIFAR10Data,
    DataFormatError,
    DeviceLoader,
    Split,
    is_official_release,
    load_cifar10,
    official_checksums,
    resolve_data_root,
    stratified_split,
)

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
N = FAKE_PER_FILE


def _copy_with(root: Path, tmp_path: Path, name: str, obj: object) -> Path:
    """A copy of the fake folder (links) in which file ``name`` holds the pickled ``obj``."""
    dest = tmp_path / "copy" / "cifar-10-batches-py"
    dest.mkdir(parents=True)
    for f in FILES:
        if f != name:
            os.symlink(root / "cifar-10-batches-py" / f, dest / f)
    if obj is not None:
        with (dest / name).open("wb") as fh:
            pickle.dump(obj, fh)
    return dest.parent


# -- reading ---------------------------------------------------------------------------------


def test_load_reads_layout(fake_cifar_root: Path) -> None:
    data = load_cifar10(fake_cifar_root, name="synthetic CIFAR-10")
    assert isinstance(data, CIFAR10Data)
    assert data.train.images.shape == (5 * FAKE_PER_FILE, 3, 32, 32)
    assert data.train.images.dtype == torch.uint8
    assert data.test.labels.dtype == torch.int64 and len(data.test) == FAKE_PER_FILE
    assert data.val is None and data.eval_split is data.test and data.eval_split_name == "test"
    assert data.classes == CIFAR10_CLASSES
    assert data.name == "synthetic CIFAR-10"
    assert data.train.class_counts() == [FAKE_PER_FILE // 2] * 10
    # rows are channel-major: the first byte of a row is the red value of pixel (0, 0)
    assert int(data.train.images[3, 0, 0, 0]) == 75
    assert f"train {5 * FAKE_PER_FILE:,}" in data.describe()


# -- naming ----------------------------------------------------------------------------------


def _md5_sums(root: Path) -> dict[str, str]:
    folder = root / "cifar-10-batches-py"
    return {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in FILES[:-1]}


def test_data_is_named_cifar10_only_when_its_files_are_the_official_release(
    fake_cifar_root: Path,
) -> None:
    """Files that are not the official release's (by the md5 sums torchvision checks them
    with) are not called plain "CIFAR-10" unless the user names them so."""
    assert not is_official_release(fake_cifar_root)
    assert load_cifar10(fake_cifar_root).name == UNVERIFIED_NAME != OFFICIAL_NAME
    assert load_cifar10(fake_cifar_root, name="CIFAR-10").name == "CIFAR-10"  # the user's word
    # the same check with these files' own sums as the expected ones: the files are recognised
    assert is_official_release(fake_cifar_root, checksums=_md5_sums(fake_cifar_root))


def test_every_data_file_is_checked(fake_cifar_root: Path) -> None:
    """One data file that differs is enough to tell a copy; the default sums are
    torchvision's, for the files cifarzoo reads."""
    from torchvision.datasets import CIFAR10

    sums = _md5_sums(fake_cifar_root)
    assert official_checksums() == dict(CIFAR10.train_list + CIFAR10.test_list)
    assert official_checksums().keys() == sums.keys()
    for name in sums:
        assert not is_official_release(fake_cifar_root, checksums={**sums, name: "0" * 32})


def test_unnamed_tensors_are_not_called_cifar10() -> None:
    split = Split(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10))
    assert CIFAR10Data(train=split, test=split).name == UNVERIFIED_NAME


@pytest.mark.data
def test_the_jpeg_mirror_is_not_the_official_release(cifar10_root: Path) -> None:
    assert load_cifar10(cifar10_root).name == UNVERIFIED_NAME


def test_load_accepts_the_batches_folder_itself(fake_cifar_root: Path) -> None:
    data = load_cifar10(fake_cifar_root / "cifar-10-batches-py")
    assert len(data.test) == FAKE_PER_FILE


def test_val_split_is_stratified_and_seeded(fake_cifar_root: Path) -> None:
    val_size = FAKE_PER_FILE // 2
    a = load_cifar10(fake_cifar_root, val_size=val_size, seed=1)
    b = load_cifar10(fake_cifar_root, val_size=val_size, seed=1)
    c = load_cifar10(fake_cifar_root, val_size=val_size, seed=2)
    assert a.val is not None and b.val is not None and c.val is not None
    assert len(a.train) == 5 * FAKE_PER_FILE - val_size and len(a.val) == val_size
    assert a.val.class_counts() == [val_size // 10] * 10
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    assert a.eval_split is a.val and a.eval_split_name == "val"


def test_hold_out_is_the_split_load_makes(fake_cifar_root: Path) -> None:
    full = load_cifar10(fake_cifar_root, name="mine")
    held = full.hold_out(250, seed=1)
    loaded = load_cifar10(fake_cifar_root, val_size=250, seed=1, name="mine")
    assert held.val is not None and loaded.val is not None and full.val is None
    assert torch.equal(held.val.images, loaded.val.images)
    assert torch.equal(held.train.labels, loaded.train.labels)
    assert (len(held.train), held.name, held.test) == (5 * FAKE_PER_FILE - 250, "mine", full.test)
    with pytest.raises(ValueError, match="already holds out 250 images"):
        held.hold_out(100)


@given(st.lists(st.integers(0, 4), min_size=20, max_size=200), st.data())
@settings(max_examples=40, deadline=None)
def test_stratified_split_properties(labels_list: list[int], data: st.DataObject) -> None:
    labels = torch.tensor(labels_list)
    n = len(labels)
    val_size = data.draw(st.integers(1, n - 1))
    train, val = stratified_split(labels, val_size, seed=0)
    assert len(val) == val_size and len(train) + len(val) == n
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    counts = torch.bincount(labels, minlength=5).double()
    got = torch.bincount(labels[val], minlength=5).double()
    assert torch.all((got - counts * val_size / n).abs() < 1.0 + 1e-9)


def test_stratified_split_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(torch.arange(10) % 2, 10)


def test_missing_folder_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        load_cifar10(tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "does not exist" in msg and "download=True" in msg and "CIFARZOO_DATA" in msg


def test_missing_file_is_named(fake_cifar_root: Path, tmp_path: Path) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_3", None)
    with pytest.raises(FileNotFoundError, match="missing data_batch_3"):
        load_cifar10(root)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"data": np.zeros((N, 3000), np.uint8), "labels": [0] * N}, r"\(N, 3072\)"),
        ({"data": np.zeros((N, 3072), np.int8), "labels": [0] * N}, "uint8"),
        ({"data": np.zeros((N, 3072), np.uint8), "labels": [11] * N}, "0..9"),
        ({"data": np.zeros((N, 3072), np.uint8), "labels": [0] * (N - 1)}, "labels"),
        ({"labels": [0] * N}, "lacks the key"),
        ([1, 2, 3], "expected a dict"),
    ],
)
def test_malformed_batch_is_explained(
    fake_cifar_root: Path, tmp_path: Path, obj: object, match: str
) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_2", obj)
    with pytest.raises(DataFormatError, match=match):
        load_cifar10(root)


@pytest.mark.parametrize("name", ["test_batch", "data_batch_5"])
def test_wrong_count_is_explained(fake_cifar_root: Path, tmp_path: Path, name: str) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, name, None)
    short = FAKE_PER_FILE - 40  # still balanced: only the count is wrong
    write_batch(
        root / "cifar-10-batches-py" / name,
        np.zeros((short, 3072), np.uint8),
        [i % 10 for i in range(short)],
    )
    expected = rf"{name} has {short} images, expected {FAKE_PER_FILE} \(num_cases_per_batch in"
    with pytest.raises(DataFormatError, match=expected):
        load_cifar10(root)


def test_folder_of_another_size_is_read_with_the_size_its_meta_declares(
    fake_cifar_root: Path, tmp_path: Path
) -> None:
    # without batches.meta (left out of the copy), each file must hold the official 10,000
    root = _copy_with(fake_cifar_root, tmp_path, "batches.meta", None)
    official = rf"has {FAKE_PER_FILE} images, expected 10,000 \(the official count; there is no"
    with pytest.raises(DataFormatError, match=official):
        load_cifar10(root)
    meta = root / "cifar-10-batches-py" / "batches.meta"
    for declared in (0, "400", 2.5, True):
        with meta.open("wb") as f:
            pickle.dump({"num_cases_per_batch": declared}, f)
        with pytest.raises(DataFormatError, match="'num_cases_per_batch' must be a positive"):
            load_cifar10(root)
    with meta.open("wb") as f:
        pickle.dump({"num_cases_per_batch": np.int64(FAKE_PER_FILE)}, f)
    assert len(load_cifar10(root).train) == 5 * FAKE_PER_FILE
    with meta.open("wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)  # no count: the official one
    with pytest.raises(DataFormatError, match=r"batches\.meta has no num_cases_per_batch"):
        load_cifar10(root)


def test_unbalanced_labels_are_explained(fake_cifar_root: Path, tmp_path: Path) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, "test_batch", None)
    write_batch(
        root / "cifar-10-batches-py" / "test_batch",
        np.zeros((FAKE_PER_FILE, 3072), np.uint8),
        [0] * FAKE_PER_FILE,
    )
    with pytest.raises(DataFormatError, match=rf"test split \({N} images\) .* per class"):
        load_cifar10(root)


def test_pickles_cannot_run_code(fake_cifar_root: Path, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_1", {"data": Evil()})
    with pytest.raises(DataFormatError, match="refusing to load"):
        load_cifar10(root)


def test_garbage_file(fake_cifar_root: Path, tmp_path: Path) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_1", None)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError, match="not a CIFAR-10 python pickle"):
        load_cifar10(root)


def test_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIFARZOO_DATA", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("CIFARZOO_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root(None) == tmp_path / "home" / ".cache" / "cifarzoo"


def test_env_root_is_used(monkeypatch: pytest.MonkeyPatch, fake_cifar_root: Path) -> None:
    monkeypatch.setenv("CIFARZOO_DATA", str(fake_cifar_root))
    assert load_cifar10().root == fake_cifar_root


def test_download_failure_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision

    calls: list[tuple[str, bool]] = []

    def fake(root: str, train: bool = True, download: bool = False) -> None:
        calls.append((root, download))
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    with pytest.raises(RuntimeError, match=r"could not download CIFAR-10.*network unreachable"):
        load_cifar10(tmp_path, download=True)
    # torchvision fetches into a hidden folder in the root, removed after the failure
    assert [(Path(root).parent, download) for root, download in calls] == [(tmp_path, True)]
    assert not list(tmp_path.iterdir())


def test_split_validation() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        Split(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


# -- DeviceLoader ----------------------------------------------------------------------------


def _indexed_images(n: int) -> torch.Tensor:
    """Image i has pixel (0, 0) = (i % 256, i // 256, 0): indices survive the loader."""
    x = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n) % 256
    x[:, 1, 0, 0] = torch.arange(n) // 256
    return x


def _denorm(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return (x * std + mean) * 255


def _indexed_images_norm(n: int) -> torch.Tensor:
    return torch.cat(
        [x for x, _ in DeviceLoader(_indexed_images(n), torch.arange(n), batch_size=64)]
    )


def _decode_indices(x: torch.Tensor) -> list[int]:
    px = _denorm(x)[:, :, 0, 0].round().long()
    return (px[:, 0] + 256 * px[:, 1]).tolist()


@given(n=st.integers(1, 300), batch=st.integers(1, 64), drop_last=st.booleans(), nhwc=st.booleans())
@settings(max_examples=30, deadline=None)
def test_shapes_dtype_layout_and_len(n: int, batch: int, drop_last: bool, nhwc: bool) -> None:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    src = images.permute(0, 2, 3, 1).contiguous() if nhwc else images
    loader = DeviceLoader(src, labels, batch_size=batch, train=True, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader) == (n // batch if drop_last else -(-n // batch))
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32) and x.shape[0] == y.shape[0]
        assert x.is_contiguous(memory_format=torch.channels_last)
    total = sum(len(y) for _, y in batches)
    assert total == (n // batch * batch if drop_last else n)


@given(n=st.integers(1, 200), seed=st.integers(0, 2**31), batch=st.integers(1, 50))
@settings(max_examples=30, deadline=None)
def test_labels_follow_their_images(n: int, seed: int, batch: int) -> None:
    """Constant images stay constant under reflect-padded crops and flips: the value names the
    image, and its label must come with it."""
    values = torch.randperm(256)[:n] if n <= 256 else torch.randint(0, 256, (n,))
    images = values.view(-1, 1, 1, 1).expand(n, 3, 32, 32).to(torch.uint8).contiguous()
    labels = torch.randint(0, 10, (n,))
    loader = DeviceLoader(
        images, labels, batch_size=batch, train=True, drop_last=False, seed=seed, pad_mode="reflect"
    )
    lookup = {}
    for v, lab in zip(values.tolist(), labels.tolist(), strict=True):
        lookup.setdefault(v, set()).add(lab)
    seen = 0
    for x, y in loader:
        px = _denorm(x).round()
        assert torch.all(px == px[:, :1, :1, :1])  # still constant
        for v, lab in zip(px[:, 0, 0, 0].long().tolist(), y.tolist(), strict=True):
            assert lab in lookup[v]
        seen += len(y)
    assert seen == n


@given(seed=st.integers(0, 10_000), mode=st.sampled_from(["zeros", "reflect"]))
@settings(max_examples=15, deadline=None)
def test_crop_and_flip_are_translations_and_mirrors(seed: int, mode: str) -> None:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(24)
    loader = DeviceLoader(images, labels, batch_size=24, train=True, seed=seed, pad_mode=mode)  # type: ignore[arg-type]
    x, y = next(iter(loader))
    got = _denorm(x).round().to(torch.uint8)
    fmode = "constant" if mode == "zeros" else "reflect"
    padded = F.pad(images.float(), (4, 4, 4, 4), mode=fmode).to(torch.uint8)
    for out, i in zip(got, y.tolist(), strict=True):
        src = padded[i]
        found = any(
            torch.equal(out, cand) or torch.equal(out, cand.flip(2))
            for dy in range(9)
            for dx in range(9)
            for cand in [src[:, dy : dy + 32, dx : dx + 32]]
        )
        assert found


def test_flips_and_shifts_actually_happen() -> None:
    images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8)
    loader = DeviceLoader(
        images, torch.zeros(512, dtype=torch.long), batch_size=512, train=True, shuffle=False
    )
    x, _ = next(iter(loader))
    got = _denorm(x).round().to(torch.uint8)
    same = sum(torch.equal(a, b) for a, b in zip(got, images, strict=True))
    assert same < 30  # identity (no shift, no flip) has probability 1/162


@given(n=st.integers(2, 200), seed=st.integers(0, 2**31), batch=st.integers(1, 64))
@settings(max_examples=20, deadline=None)
def test_alternate_flip_mirrors_each_image_every_other_epoch(n: int, seed: int, batch: int) -> None:
    """With alternate_flip (and no crops), every image comes out mirrored in exactly one of two
    consecutive epochs, the same way two epochs later, and the order is still shuffled."""
    images = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    images[:, 2, :, 0] = 255  # a bright left column tells a mirrored image (bright right column)
    loader = DeviceLoader(
        images,
        torch.arange(n),
        batch_size=batch,
        train=True,
        drop_last=False,
        crop_padding=0,
        alternate_flip=True,
        seed=seed,
    )

    def flipped_by_image(epoch: int) -> tuple[torch.Tensor, list[int]]:
        state = torch.zeros(n, dtype=torch.bool)
        order = []
        for x, y in loader.epoch_batches(epoch):
            blue = _denorm(x)[:, 2].round()
            assert torch.all((blue[:, :, 0] == 255) ^ (blue[:, :, -1] == 255))
            state[y] = blue[:, 0, -1] == 255
            order += y.tolist()
        return state, order

    (e0, order0), (e1, order1), (e2, _) = (flipped_by_image(e) for e in range(3))
    assert torch.equal(e0, ~e1) and torch.equal(e0, e2)
    assert sorted(order0) == list(range(n)) and (n < 8 or order0 != order1)


def test_eval_loader_is_identity_plus_normalization() -> None:
    images = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.arange(100), batch_size=33)
    xs = torch.cat([x for x, _ in loader])
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, torch.arange(100))
    assert _decode_indices(_indexed_images_norm(100)) == list(range(100))
    assert torch.allclose(_denorm(xs), images.float(), atol=1e-3)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255
    assert torch.allclose(xs, (images.float() - mean) / std, atol=1e-5)


@given(size=st.integers(1, 16), seed=st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_cutout_zeroes_one_clipped_square(size: int, seed: int) -> None:
    images = torch.full((16, 3, 32, 32), 255, dtype=torch.uint8)
    loader = DeviceLoader(
        images,
        torch.zeros(16, dtype=torch.long),
        batch_size=16,
        train=True,
        cutout=size,
        crop_padding=0,
        flip=False,
        seed=seed,
    )
    x, _ = next(iter(loader))
    hole = x[:, 0] == 0
    assert torch.equal(hole, (x == 0).all(1))  # the same hole in every channel
    for h in hole:
        rows, cols = h.any(1).nonzero().flatten(), h.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= size and 1 <= len(cols) <= size
        assert h.sum() == len(rows) * len(cols)  # a rectangle
        assert rows.max() - rows.min() + 1 == len(rows)
        if rows.min() > 0 and rows.max() < 31:
            assert len(rows) == size


def test_same_seed_same_batches_new_epoch_new_order() -> None:
    images = _indexed_images(300)
    a = DeviceLoader(images, torch.arange(300), batch_size=64, train=True, seed=5)
    b = DeviceLoader(images, torch.arange(300), batch_size=64, train=True, seed=5)
    e0 = [x for x, _ in a]
    assert all(torch.equal(p, q) for p, q in zip(e0, [x for x, _ in b], strict=True))
    e1 = [y for _, y in a]  # the next iteration is epoch 1
    b.set_epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(e1, [y for _, y in b], strict=True))
    b.set_epoch(0)
    assert not torch.equal(next(iter(b))[1], e1[0])
    # resuming mid-epoch gives the remaining batches
    tail = list(a.epoch_batches(1, start=2))
    assert torch.equal(tail[0][1], e1[2]) and len(tail) == len(e1) - 2


@given(
    world=st.integers(1, 4),
    local=st.integers(1, 16),
    n=st.integers(1, 400),
    seed=st.integers(0, 100),
    epoch=st.integers(0, 3),
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sharding_partitions_each_global_batch(
    world: int, local: int, n: int, seed: int, epoch: int
) -> None:
    batch = world * local
    images = _indexed_images(n)
    labels = torch.arange(n)
    kw = dict(batch_size=batch, train=True, seed=seed)
    single = DeviceLoader(images, labels, **kw)  # type: ignore[arg-type]
    ranks = [
        DeviceLoader(images, labels, rank=r, world_size=world, **kw)  # type: ignore[arg-type]
        for r in range(world)
    ]
    assert all(len(r) == len(single) for r in ranks)
    full = list(single.epoch_batches(epoch))
    shards = [list(r.epoch_batches(epoch)) for r in ranks]
    used: set[int] = set()
    for step, (x, y) in enumerate(full):
        parts = [shards[r][step] for r in range(world)]
        assert all(len(p[1]) == local for p in parts)
        ids = [i for p in parts for i in p[1].tolist()]
        assert len(set(ids)) == len(ids)  # disjoint across ranks
        assert ids == y.tolist()  # the union is the single-process batch, in order
        assert torch.equal(torch.cat([p[0] for p in parts]), x)  # same augmentation too
        assert set(ids).isdisjoint(used)
        used.update(ids)


def test_bad_arguments() -> None:
    im = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    lab = torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="divisible"):
        DeviceLoader(im, lab, batch_size=5, world_size=2)
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(im.float(), lab, batch_size=5)
    with pytest.raises(ValueError, match="labels"):
        DeviceLoader(im, lab[:5], batch_size=5)
    with pytest.raises(ValueError, match="pad_mode"):
        DeviceLoader(im, lab, batch_size=5, pad_mode="edge")  # type: ignore[arg-type]


@pytest.mark.data
def test_real_data_is_valid(cifar10_root: Path) -> None:
    data = load_cifar10(cifar10_root, val_size=5000)
    assert data.val is not None and len(data.val) == 5000 and len(data.train) == 45_000
    mean = data.train.images.float().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(CIFAR10_MEAN), atol=0.01)


# -- damaged files ---------------------------------------------------------------------------


def _damaged_copy(root: Path, tmp_path: Path, name: str, edit: Callable[[bytes], bytes]) -> Path:
    """A copy of the folder (links) in which ``name`` is a damaged copy of the real file."""
    original = (root / "cifar-10-batches-py" / name).read_bytes()
    copy = _copy_with(root, tmp_path, name, None)
    (copy / "cifar-10-batches-py" / name).write_bytes(edit(original))
    return copy


def _set_byte(pos: int, value: int) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        return data[:pos] + bytes([value]) + data[pos + 1 :]

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:100],
        _set_byte(10, 0xFF),  # frame length beyond any size: was an OverflowError
        _set_byte(7, 0x7F),  # a frame of ~500 GB: was a MemoryError
        _set_byte(2, 0xFF),  # not an opcode
    ],
    ids=["half", "100-bytes", "frame-overflow", "frame-huge", "bad-opcode"],
)
def test_damaged_batch_file_is_a_data_format_error(
    fake_cifar_root: Path, tmp_path: Path, edit: Callable[[bytes], bytes]
) -> None:
    root = _damaged_copy(fake_cifar_root, tmp_path, "test_batch", edit)
    with pytest.raises(DataFormatError) as e:
        load_cifar10(root, download=True)  # download only fetches missing files: not called
    msg = str(e.value)
    assert "test_batch is not a CIFAR-10 python pickle file" in msg
    assert "delete (or replace) the whole cifar-10-batches-py folder" in msg


def test_every_damaged_header_byte_is_a_data_format_error(tmp_path: Path) -> None:
    """Whatever byte of the header is damaged, reading either works or raises DataFormatError
    (never OverflowError, MemoryError, IndexError...)."""
    from cifarzoo.batch_files import read_batch

    good = tmp_path / "good"
    write_batch(good, np.zeros((20, 3072), np.uint8), [i % 10 for i in range(20)])
    original = good.read_bytes()
    bad = tmp_path / "bad"
    outcomes = {"ok": 0, "error": 0}
    for pos in range(64):
        for value in (0x00, 0x7F, 0xFF):
            bad.write_bytes(_set_byte(pos, value)(original))
            try:
                read_batch(bad)
                outcomes["ok"] += 1
            except DataFormatError:
                outcomes["error"] += 1
    assert outcomes["error"] > 50 and outcomes["ok"] > 0  # both kinds happen


def test_huge_file_is_refused_before_reading(fake_cifar_root: Path, tmp_path: Path) -> None:
    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_1", None)
    with (root / "cifar-10-batches-py" / "data_batch_1").open("wb") as f:
        f.truncate(200 * 2**20)  # sparse: costs no disk
    with pytest.raises(DataFormatError, match=r"data_batch_1 is 210 MB, far more than"):
        load_cifar10(root)


def test_malformed_content_says_to_replace_the_folder(
    fake_cifar_root: Path, tmp_path: Path
) -> None:
    bad = {"data": np.zeros((FAKE_PER_FILE, 3072), np.uint8), "labels": [12] * FAKE_PER_FILE}
    root = _copy_with(fake_cifar_root, tmp_path, "data_batch_4", bad)
    with pytest.raises(DataFormatError) as e:
        load_cifar10(root)
    msg = str(e.value)
    assert "labels must lie in 0..9, found 12..12" in msg
    assert "delete (or replace) the whole cifar-10-batches-py folder" in msg
    assert "cs.toronto.edu" in msg  # and where to get the data


# -- label and padding checks ----------------------------------------------------------------


def test_labels_are_checked_against_the_classes() -> None:
    im = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"class indices in 0\.\.9 .*found values from 0 to 10"):
        DeviceLoader(im, torch.tensor([0, 1, 2, 10]), batch_size=2, num_classes=10)
    with pytest.raises(ValueError, match=r"class indices 0 or more.*from -1 to 2"):
        DeviceLoader(im, torch.tensor([0, 1, 2, -1]), batch_size=2)
    with pytest.raises(ValueError, match=r"probabilities for 5 classes .* the model has 10"):
        DeviceLoader(im, torch.full((4, 5), 0.2), batch_size=2, num_classes=10)
    no_classifier = r"no classifier \(num_classes=0.*reset_classifier\(10\)"
    with pytest.raises(ValueError, match=no_classifier):
        DeviceLoader(im, torch.tensor([0, 1, 2, 7]), batch_size=2, num_classes=0)
    with pytest.raises(ValueError, match=no_classifier):
        DeviceLoader(im, torch.full((4, 10), 0.1), batch_size=2, num_classes=0)
    ok = DeviceLoader(im, torch.tensor([0, 1, 2, 7]), batch_size=2, num_classes=10)
    assert ok.label_classes == 8 and not ok.soft_labels
    soft = DeviceLoader(im, torch.full((4, 10), 0.1), batch_size=2, num_classes=10)
    assert soft.label_classes == 10 and soft.soft_labels


def test_reflect_padding_must_be_smaller_than_the_image() -> None:
    im = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    lab = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"crop_padding 32 must be smaller than the image size"):
        DeviceLoader(im, lab, batch_size=2, train=True, crop_padding=32)
    DeviceLoader(im, lab, batch_size=2, train=True, crop_padding=31)  # the most reflect can add
    DeviceLoader(im, lab, batch_size=2, train=True, crop_padding=40, pad_mode="zeros")
    DeviceLoader(im, lab, batch_size=2, train=False, crop_padding=40)  # no crops: unused
