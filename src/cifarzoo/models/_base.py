"""The timm model interface shared by every cifarzoo family."""

# No ``from __future__ import annotations`` here: torch.fx copies ``forward``'s annotations into
# the code of a traced graph, and TorchScript cannot resolve them as strings.
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..timm_compat import feature_take_indices

__all__ = [
    "CONV_INITS",
    "CifarModel",
    "ConvInit",
    "check_conv_init",
    "check_input",
    "check_input_dtype",
    "check_num_classes",
    "make_classifier",
]

#: How a network's convolutions start: ``"kaiming"``, Kaiming-normal weights (torchvision's
#: choice, each family's default); ``"pytorch"``, PyTorch's own default (Kaiming-uniform with
#: ``a=sqrt(5)``, a sixth of the variance), as the fast CIFAR-10 training recipes start them.
#: Every convolution here feeds a BatchNorm, which undoes the weights' scale, so the smaller
#: start trains like a higher learning rate.
ConvInit = Literal["kaiming", "pytorch"]
CONV_INITS: tuple[ConvInit, ...] = ("kaiming", "pytorch")


def check_conv_init(conv_init: str) -> ConvInit:
    """``conv_init`` if it is one of :data:`CONV_INITS`."""
    if conv_init not in CONV_INITS:
        raise ValueError(
            f"conv_init must be one of {', '.join(map(repr, CONV_INITS))}, got {conv_init!r}"
        )
    return conv_init


def check_num_classes(num_classes: int) -> int:
    """``num_classes`` if it is a valid classifier size: a non-negative int, ``0`` meaning no
    classifier (timm's convention for a backbone)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(
            f"num_classes must be a non-negative integer, got {num_classes!r}. Use 0 for a "
            "backbone without classifier: the model then returns its pooled pre-logit features."
        )
    return num_classes


def make_classifier(
    in_features: int,
    num_classes: int,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """The classifier of a cifarzoo model: ``nn.Linear(in_features, num_classes)``, or
    ``nn.Identity()`` for ``num_classes=0``."""
    if check_num_classes(num_classes) == 0:
        return nn.Identity()
    return nn.Linear(in_features, num_classes, device=device, dtype=dtype)


# Wrapped so that torch.fx records the check as one call instead of tracing into its control
# flow on the input's shape (which symbolic tracing cannot do).
@torch.fx.wrap
def check_input(x: Tensor, in_chans: int, arch: str, size: tuple[int, int] | None = None) -> None:
    """Raise a readable error unless ``x`` is a batch ``(N, in_chans, H, W)``, with
    ``(H, W) == size`` when the model has a fixed input size."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{arch} expects a torch.Tensor batch of shape (N, {in_chans}, H, W), got "
            f"{type(x).__module__}.{type(x).__name__}. Convert a numpy array with "
            "torch.from_numpy(x).float() (normalized with the model's pretrained_cfg mean/std), "
            "or give uint8 images to cifarzoo.evaluate / cifarzoo.metrics.predict_logits"
        )
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(
            f"{arch} expects a batch of shape (N, {in_chans}, H, W), got {list(x.shape)}. "
            + _shape_fix(x, in_chans)
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{arch} expects float images normalized with its pretrained_cfg mean/std, got a "
            "batch of integers (load_cifar10 gives uint8 pixels, 0..255). "
            "Convert it: mean = torch.tensor(model.pretrained_cfg['mean']).view(1, -1, 1, 1), "
            "likewise std, then x = (x.float() / 255 - mean) / std; cifarzoo.evaluate and "
            "cifarzoo.metrics.predict_logits take uint8 images and do this themselves."
        )
    if size is not None and (x.shape[2] != size[0] or x.shape[3] != size[1]):
        raise ValueError(
            f"{arch} needs {size[0]}x{size[1]} images (its layers are sized for them), got "
            f"{x.shape[2]}x{x.shape[3]}. Resize or crop the input to {size[0]}x{size[1]}."
        )


@torch.fx.wrap
def check_input_dtype(x: Tensor, weights: torch.dtype, arch: str) -> None:
    """Raise a readable error when ``x`` is not of the weights' dtype ``weights`` and no
    autocast converts it (torch's own message names neither the model nor the fix)."""
    if x.dtype != weights and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"{arch} has {str(weights).removeprefix('torch.')} weights but got a "
            f"{str(x.dtype).removeprefix('torch.')} batch (numpy arrays are float64): convert "
            f"the batch with x.to({weights}), or the model with model.to(dtype)"
        )


def _shape_fix(x: Tensor, in_chans: int) -> str:
    if x.dim() == 3 and x.shape[0] == in_chans:
        return "Add a batch dimension with x.unsqueeze(0) for a single image."
    if x.dim() == 4 and x.shape[-1] == in_chans:
        return "This looks like channels-last (N, H, W, C) images: pass x.permute(0, 3, 1, 2)."
    return "Build the model with in_chans matching your images' channels."


class CifarModel(nn.Module):
    """Base of cifarzoo models: timm's ``num_classes`` (``0``: no classifier), ``drop_rate``
    (dropout on the pooled features before the classifier), ``num_features``,
    ``head_hidden_size``, ``global_pool`` (``'avg'``, or ``''`` for unpooled output without
    classifier), ``forward_features``, ``forward_head(x, pre_logits=False)``,
    ``get_classifier``, ``reset_classifier`` and ``set_grad_checkpointing``, plus a readable
    error for inputs of the wrong shape, and timm's ``forward_intermediates``. Subclasses add
    timm's ``feature_info`` and ``prune_intermediate_layers``.

    Subclasses build their layers, name their classifier attribute in ``classifier_name``, create
    it with :meth:`_make_head`, apply ``self.head_drop`` before it in ``forward_head``, and
    implement ``forward_features`` (starting with ``self._check_input(x)``) and
    :meth:`_forward_to_points` (the body of ``forward_intermediates``).
    """

    classifier_name: str = "fc"
    #: timm's feature points: ``num_chs``, ``reduction`` and ``module`` of each.
    feature_info: list[dict[str, Any]]
    #: Whether ``forward_features`` honours ``grad_checkpointing``.
    supports_grad_checkpointing: bool = False

    def __init__(
        self, num_classes: int, in_chans: int, drop_rate: float = 0.0, global_pool: str = "avg"
    ) -> None:
        super().__init__()
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
            raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
        if (
            isinstance(drop_rate, bool)
            or not isinstance(drop_rate, int | float)
            or not 0.0 <= drop_rate < 1.0
        ):
            raise ValueError(
                f"drop_rate (the dropout probability before the classifier) must be in [0, 1), "
                f"got {drop_rate!r}"
            )
        self.num_classes = check_num_classes(num_classes)
        #: timm's global pooling: ``'avg'``, or ``''`` (no classifier, unpooled output).
        self.global_pool = self._checked_global_pool(global_pool, self.num_classes)
        self.in_chans = in_chans
        self.drop_rate = float(drop_rate)
        self.num_features = 0
        self.head_hidden_size = 0
        #: ``(H, W)`` the model only accepts, or ``None`` for any size.
        self.fixed_input_size: tuple[int, int] | None = None
        self.grad_checkpointing = False
        #: How errors name the model: the class name, replaced by the registered architecture
        #: (``cifar_seresnet20``) when the model is built through timm.
        self.arch_name = type(self).__name__

    def _make_head(self, head_hidden_size: int) -> nn.Module:
        """Set ``head_hidden_size``, create the classifier dropout ``head_drop`` and return a
        classifier for ``num_classes``. Call it where the classifier is created."""
        self.head_hidden_size = head_hidden_size
        self.head_drop = nn.Dropout(self.drop_rate)
        return make_classifier(head_hidden_size, self.num_classes)

    def _checked_global_pool(self, global_pool: str, num_classes: int) -> str:
        if global_pool not in ("avg", ""):
            raise ValueError(
                f"{self.arch_name} only supports average pooling (global_pool='avg') or none "
                f"(global_pool=''), got global_pool={global_pool!r}. For the unpooled feature "
                "map, use model.forward_features(x)."
            )
        if global_pool == "" and num_classes:
            raise ValueError(
                f"global_pool='' (no pooling) needs num_classes=0: a classifier needs pooled "
                f"features, got num_classes={num_classes}"
            )
        return global_pool

    def _pool(self, x: Tensor) -> Tensor:
        """``x`` averaged over its spatial dimensions, unless ``global_pool`` is ``''``."""
        return x.mean((2, 3)) if self.global_pool == "avg" else x

    def _check_input(self, x: Tensor) -> None:
        check_input(x, self.in_chans, self.arch_name, self.fixed_input_size)
        if not torch.jit.is_scripting():  # type: ignore[attr-defined]
            self._check_input_dtype(x)

    @torch.jit.unused
    def _check_input_dtype(self, x: Tensor) -> None:
        weights = next(self.parameters(), None)
        if weights is not None:
            check_input_dtype(x, weights.dtype, self.arch_name)

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's intermediate features: the feature points ``indices`` (of ``feature_info``:
        the last n for an int, all for ``None``), and unless ``intermediates_only`` the final
        features (``forward_features``'s, or with ``stop_early`` those of the last point
        reached). ``norm`` is accepted for timm's API: no cifarzoo model has a norm after its
        last feature point."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        self._check_input(x)
        take_indices, max_index = feature_take_indices(self._num_feature_points(), indices)
        x, intermediates = self._forward_to_points(
            x, take_indices, max_index if stop_early else None
        )
        return intermediates if intermediates_only else (x, intermediates)

    def _num_feature_points(self) -> int:
        """How many feature points ``forward_intermediates`` can reach (pruning may remove
        some)."""
        return len(self.feature_info)

    def _forward_to_points(
        self, x: Tensor, take_indices: list[int], stop_at: int | None
    ) -> tuple[Tensor, list[Tensor]]:
        """Run the checked input ``x`` through the feature layers, up to feature point
        ``stop_at`` (``None``: to the end); return the output and the feature points
        ``take_indices`` in order."""
        raise NotImplementedError

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def get_classifier(self) -> nn.Module:
        """The final classification layer."""
        classifier: nn.Module = getattr(self, self.classifier_name)
        return classifier

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` classes, on the model's
        device and dtype; ``0`` removes it (the model then returns its pooled pre-logit
        features), as in timm. ``global_pool``: ``None`` keeps the pooling, ``'avg'`` averages,
        ``''`` (only with ``num_classes=0``) leaves the features unpooled."""
        pool = self._checked_global_pool(
            self.global_pool if global_pool is None else global_pool, num_classes
        )
        like = next(self.parameters())
        new = make_classifier(self.head_hidden_size, num_classes, like.device, like.dtype)
        setattr(self, self.classifier_name, new)
        self.num_classes = num_classes
        self.global_pool = pool

    def _prune_end(self, max_index: int, prune_head: bool) -> None:
        """The end of ``prune_intermediate_layers`` (as in timm): when the features now end at
        feature point ``max_index`` before the last, ``num_features`` is its width and the
        classifier, sized for the last one, goes; ``prune_head`` removes it anyway. Either way
        the model then returns its unpooled features."""
        prune_end = max_index < len(self.feature_info) - 1
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations during the backward pass instead of storing
        them (timm's gradient checkpointing): less memory, more compute, same results."""
        if enable and not self.supports_grad_checkpointing:
            raise ValueError(f"{self.arch_name} does not support gradient checkpointing")
        self.grad_checkpointing = enable
