"""The GPU-resident loader: a whole split on the device, batched augmentation with tensor ops.

:class:`DeviceLoader` keeps a split as one ``uint8`` tensor on the target device and produces
augmented, normalized, ``channels_last`` batches with a handful of tensor ops per batch (random
crop with padding, horizontal flip, optional cutout) -- no per-image Python work.
:func:`check_labels` checks labels against a model's classes before they reach the loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor

from .constants import CIFAR10_MEAN, CIFAR10_STD, NUM_CLASSES

__all__ = ["DeviceLoader", "PadMode", "check_labels", "no_classifier_error"]

PadMode = Literal["reflect", "zeros"]
#: How far a row of soft labels may sum from 1 (float16 rounding of ten classes is ~5e-3).
PROBABILITY_TOLERANCE = 1e-2


def no_classifier_error(what: str, classes: int) -> ValueError:
    """The error for labels of ``classes`` classes given to a model built with
    ``num_classes=0`` (a backbone: it returns features, not logits)."""
    return ValueError(
        f"{what} need class logits, but the model has no classifier (num_classes=0: it returns "
        f"features); build it with num_classes={classes} or call "
        f"model.reset_classifier({classes})"
    )


def check_labels(labels: Tensor, num_classes: int | None, what: str = "labels") -> None:
    """Raise a ``ValueError`` unless ``labels`` fit ``num_classes`` classes.

    Class indices ``[N]`` must lie in ``0..num_classes - 1`` (only ``>= 0`` is checked when
    ``num_classes`` is ``None``); class probabilities ``[N, C]`` must have ``C == num_classes``
    and be probabilities (each row in [0, 1], summing to 1).
    Checking up front turns what would be an ``IndexError`` in the loss (a device-side assert
    on CUDA) into an error that says what is wrong.
    """
    if labels.dim() == 2:
        if num_classes == 0:
            raise no_classifier_error(what, int(labels.shape[1]))
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"{what} are class probabilities for {labels.shape[1]} classes "
                f"({list(labels.shape)}), but the model has {num_classes}; give one column per "
                "class of the model"
            )
        _check_probability_rows(labels, what)
        return
    if labels.numel() == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if num_classes == 0:
        raise no_classifier_error(what, max(hi + 1, NUM_CLASSES))
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        valid = "0 or more" if num_classes is None else f"in 0..{num_classes - 1}"
        raise ValueError(
            f"{what} must be class indices {valid}"
            + ("" if num_classes is None else f" (the model has {num_classes} classes)")
            + f", found values from {lo} to {hi}; fix the labels or use a model with "
            "num_classes large enough"
        )


def _check_probability_rows(labels: Tensor, what: str) -> None:
    """Soft labels must be probabilities: each row in [0, 1] and summing to 1 (to float
    rounding); anything else trains against a loss that means nothing."""
    if labels.numel() == 0:
        return
    lo, hi = float(labels.min()), float(labels.max())
    off = float((labels.double().sum(1) - 1).abs().max())
    if math.isfinite(lo + hi + off) and lo >= 0 and hi <= 1 and off <= PROBABILITY_TOLERANCE:
        return
    raise ValueError(
        f"{what} are soft labels [N, C], so each row must be class probabilities (values in "
        f"[0, 1] that sum to 1), found values from {lo:.4g} to {hi:.4g} and row sums off by up "
        f"to {off:.4g}; normalize them, e.g. logits.softmax(1), or pass class indices [N]"
    )


def _as_nhwc_uint8(images: Tensor) -> Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"images must be a uint8 tensor [N, 3, H, W] or [N, H, W, 3], got {images.dtype} "
            f"{list(images.shape)}"
        )
    if images.shape[1] == 3 and images.shape[-1] != 3:
        return images.permute(0, 2, 3, 1)
    if images.shape[-1] == 3:
        return images
    if images.shape[1] == 3:  # [N, 3, H, 3]: ambiguous, take the documented NCHW reading
        return images.permute(0, 2, 3, 1)
    raise ValueError(f"images must have 3 channels (NCHW or NHWC), got {list(images.shape)}")


def _pad_index(size: int, pad: int, mode: PadMode) -> Tensor:
    """Source index of each padded position (``-1`` = zero) along one axis."""
    pos = torch.arange(-pad, size + pad)
    if mode == "reflect":
        pos = pos.abs()
        pos = torch.where(pos >= size, 2 * (size - 1) - pos, pos)
        return pos
    return torch.where((pos < 0) | (pos >= size), torch.full_like(pos, -1), pos)


def _checked_images(
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    rank: int,
    world_size: int,
    pad_mode: PadMode,
    crop_padding: int,
    augment: bool,
    cutout: int,
    num_classes: int | None,
) -> Tensor:
    """The images as uint8 NHWC after checking :class:`DeviceLoader`'s arguments (a
    ``ValueError`` saying what is wrong otherwise)."""
    if batch_size <= 0 or batch_size % world_size:
        raise ValueError(
            f"batch_size ({batch_size}) must be positive and divisible by world_size ({world_size})"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    if pad_mode not in ("reflect", "zeros"):
        raise ValueError(f"pad_mode must be 'reflect' or 'zeros', got {pad_mode!r}")
    if crop_padding < 0 or cutout < 0:
        raise ValueError(
            f"crop_padding and cutout must be >= 0 (0 turns them off), got {crop_padding} "
            f"and {cutout}"
        )
    nhwc = _as_nhwc_uint8(images)
    soft = labels.dim() == 2
    if labels.dim() not in (1, 2) or len(labels) != len(nhwc):
        raise ValueError(
            f"labels must be class indices [N] or class probabilities [N, C] with "
            f"N={len(nhwc)}, got shape {list(labels.shape)}"
        )
    if soft != labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer class indices [N] or float probabilities [N, C], "
            f"got {labels.dtype} {list(labels.shape)}"
        )
    if len(nhwc) == 0:
        raise ValueError("cannot load an empty split")
    check_labels(labels, num_classes)
    h, w = int(nhwc.shape[1]), int(nhwc.shape[2])
    if augment and pad_mode == "reflect" and crop_padding >= min(h, w):
        raise ValueError(
            f"crop_padding {crop_padding} must be smaller than the image size ({h}x{w}) with "
            "pad_mode='reflect': a reflection cannot add more pixels than the image has. "
            "Use a smaller crop_padding (4 is usual for 32x32) or pad_mode='zeros'"
        )
    if augment and cutout >= min(h, w):
        raise ValueError(
            f"cutout {cutout} must be smaller than the image size ({h}x{w}): a square that "
            "large blanks whole images. Use a smaller cutout (8 to 16 is usual for 32x32)"
        )
    return nhwc


def _padded_store(nhwc: Tensor, pad: int, pad_mode: PadMode, *, mirrored: bool) -> Tensor:
    """``nhwc`` padded by ``pad`` pixels on each side, followed by its mirror when ``mirrored``
    (a flipped crop is then a plain crop of the mirror)."""
    if pad:
        h, w = int(nhwc.shape[1]), int(nhwc.shape[2])
        rows, cols = _pad_index(h, pad, pad_mode), _pad_index(w, pad, pad_mode)
        store = nhwc[:, rows.clamp(min=0).to(nhwc.device)][:, :, cols.clamp(min=0).to(nhwc.device)]
        if pad_mode == "zeros":
            store[:, (rows < 0).to(nhwc.device)] = 0
            store[:, :, (cols < 0).to(nhwc.device)] = 0
    else:
        store = nhwc
    return torch.cat([store, store.flip(2)]) if mirrored else store


class DeviceLoader:
    """Batches of an in-memory split, augmented and normalized with batched tensor ops.

    The whole split is stored once on ``device`` as ``uint8`` NHWC (already padded when random
    crops are on). Each epoch draws one permutation and all augmentation parameters from a
    generator seeded with ``(seed, epoch)``; each batch is then one gather (crop + flip at once),
    a float conversion, normalization and optional cutout. Batches come out as
    ``(float images [B, 3, H, W] in channels_last, int64 labels [B])`` on ``device``.

    Args:
        images: uint8 ``[N, 3, H, W]`` or ``[N, H, W, 3]``.
        labels: integer class indices ``[N]``, or float class probabilities ``[N, C]`` (soft
            labels, e.g. a teacher's for distillation), which batches then carry as ``[B, C]``.
        batch_size: the **global** batch size; with ``world_size > 1`` each rank yields
            ``batch_size // world_size`` images per step (it must divide evenly).
        train: default for ``shuffle``, ``augment`` and ``drop_last``.
        crop_padding: random-crop padding in pixels (0 turns random crops off).
        pad_mode: ``"reflect"`` or ``"zeros"`` (the torchvision ``RandomCrop`` default).
        flip: random horizontal flips (when augmenting).
        alternate_flip: with ``flip``, mirror each image in every other epoch instead of at
            random (as airbench does): a random half of the images in even epochs, the other
            half in odd ones, so every two epochs show each image both ways.
        cutout: side of a square zeroed (set to the mean) at a random place; 0 = off.
        rank, world_size: shard for distributed training. Every rank draws the same global
            permutation and augmentation; rank ``r`` takes the ``r``-th slice of every global batch,
            so the union over ranks of one step is exactly the single-process batch.
        seed: base seed; epoch ``e`` uses a generator seeded from ``(seed, e)``.
        num_classes: when given, the labels are checked against it (see :func:`check_labels`);
            negative class indices are always refused.

    ``label_classes`` is the number of classes the labels need: the largest class index + 1,
    or ``C`` for probabilities ``[N, C]``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        train: bool = False,
        shuffle: bool | None = None,
        augment: bool | None = None,
        drop_last: bool | None = None,
        crop_padding: int = 4,
        pad_mode: PadMode = "reflect",
        flip: bool = True,
        alternate_flip: bool = False,
        cutout: int = 0,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_classes: int | None = None,
    ) -> None:
        augment = train if augment is None else augment
        nhwc = _checked_images(
            images,
            labels,
            batch_size=batch_size,
            rank=rank,
            world_size=world_size,
            pad_mode=pad_mode,
            crop_padding=crop_padding,
            augment=augment,
            cutout=cutout,
            num_classes=num_classes,
        )
        soft = labels.dim() == 2
        self.soft_labels = soft
        self.label_classes = int(labels.shape[1]) if soft else int(labels.max()) + 1
        self.device = torch.device(device) if device is not None else nhwc.device
        self.batch_size = batch_size
        self.shuffle = train if shuffle is None else shuffle
        self.augment = augment
        self.drop_last = train if drop_last is None else drop_last
        self.crop_padding = crop_padding if self.augment else 0
        self.pad_mode: PadMode = pad_mode
        self.flip = flip and self.augment
        self.alternate_flip = alternate_flip and self.flip
        self.cutout = cutout if self.augment else 0
        self.dtype = dtype
        self.channels_last = channels_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        n, h, w = (int(size) for size in nhwc.shape[:3])
        self.num_images, self.image_size = n, (h, w)
        p = self.crop_padding
        self._padded_hw = (h + 2 * p, w + 2 * p)
        store = _padded_store(nhwc.to(self.device), p, pad_mode, mirrored=self.flip)
        # Every run of W consecutive pixels of the store, as overlapping rows of W*3 bytes: a
        # batch (crop + flip) is then ONE gather of B*H such rows, each a contiguous copy.
        flat = store.contiguous().view(-1)
        self._store = flat
        self._windows = flat.as_strided((flat.numel() // 3 - (w - 1), w * 3), (3, 1))
        self._labels = labels.to(self.device, torch.float32 if soft else torch.int64)
        # Per channel, repeated over the flat [B, H*W*3] batch: see _normalized
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).repeat(h * w)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).repeat(h * w)
        self._row_offsets = torch.arange(h, device=self.device) * self._padded_hw[1]
        self._ar_h = torch.arange(h, device=self.device)
        self._ar_w = torch.arange(w, device=self.device)

    # -- sizes ------------------------------------------------------------------------------

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def __len__(self) -> int:
        """Number of batches (steps) per epoch, the same on every rank."""
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)

    # -- epochs -----------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation/augmentation the next ``iter()`` uses."""
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self.epoch_batches(epoch)

    def _generator(self, epoch: int) -> torch.Generator:
        mixed = (self.seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % (2**63)
        return torch.Generator().manual_seed(mixed)

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``epoch``, beginning at step ``start`` (for mid-epoch resumption)."""
        n = self.num_images
        g = self._generator(epoch)
        # All randomness is drawn on the CPU in a fixed order, then moved once per epoch:
        # results do not depend on the device, and ranks agree on everything.
        perm = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        p = self.crop_padding
        shifts = (
            torch.randint(0, 2 * p + 1, (n, 2), generator=g)
            if p
            else torch.zeros(n, 2, dtype=torch.int64)
        )
        flips = (
            torch.randint(0, 2, (n,), generator=g).bool()
            if self.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        if self.alternate_flip:  # per image: one random draw for the run, inverted every epoch
            first = torch.randint(0, 2, (n,), generator=self._generator(-1)).bool()
            flips = (first ^ bool(epoch % 2))[perm]
        h, w = self.image_size
        centers = (
            torch.stack(
                [torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)], 1
            )
            if self.cutout
            else None
        )
        dev = self.device
        perm, shifts, flips = perm.to(dev), shifts.to(dev), flips.to(dev)
        if centers is not None:
            centers = centers.to(dev)
        for step in range(start, len(self)):
            lo = step * self.batch_size
            hi = min(lo + self.batch_size, n)
            if self.world_size > 1:
                pos = torch.arange(lo, hi).tensor_split(self.world_size)[self.rank]
                lo, hi = (int(pos[0]), int(pos[-1]) + 1) if len(pos) else (lo, lo)
            yield self._make_batch(
                perm[lo:hi],
                shifts[lo:hi],
                flips[lo:hi],
                None if centers is None else centers[lo:hi],
            )

    def _make_batch(
        self, idx: Tensor, shifts: Tensor, flips: Tensor, centers: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        h, w = self.image_size
        ph, pw = self._padded_hw
        # first pixel of each output row: (copy, image, row + dy, dx) in the padded store
        image = idx + flips.long() * self.num_images
        base = image * (ph * pw) + shifts[:, 0] * pw + shifts[:, 1]
        starts = (base[:, None] + self._row_offsets).view(-1)
        rgb = self._windows.index_select(0, starts).view(-1, h * w * 3)
        x = self._normalized(rgb).view(-1, h, w, 3)
        if centers is not None:
            top = centers - self.cutout // 2  # [B, 2]: first row/column of the hole
            dy = self._ar_h[None, :] - top[:, 0:1]
            dx = self._ar_w[None, :] - top[:, 1:2]
            ys = (dy >= 0) & (dy < self.cutout)
            xs = (dx >= 0) & (dx < self.cutout)
            x = x.masked_fill_((ys[:, :, None] & xs[:, None, :])[..., None], 0.0)
        x = x.permute(0, 3, 1, 2)  # NCHW view with channels_last strides
        if not self.channels_last:
            x = x.contiguous()
        return x, self._labels[idx]

    def _normalized(self, rgb: Tensor) -> Tensor:
        """``(rgb / 255 - mean) / std`` in float32, then ``dtype``: torchvision's ``ToTensor``
        and ``Normalize`` to the bit (a fused ``rgb * scale + bias`` rounds differently), so a
        model sees what timm's transforms give it."""
        x = rgb.to(torch.float32).div(255).sub(self._mean).div(self._std)
        return x if self.dtype == torch.float32 else x.to(self.dtype)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(images={self.num_images}, batch_size={self.batch_size}, "
            f"steps={len(self)}, shuffle={self.shuffle}, augment={self.augment}, "
            f"crop_padding={self.crop_padding}, flip={self.flip}, cutout={self.cutout}, "
            f"device={self.device}, rank={self.rank}/{self.world_size})"
        )
