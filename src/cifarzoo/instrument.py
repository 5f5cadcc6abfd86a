"""Recording hooks for looking inside a network while it trains or predicts.

* :class:`GradientFlowRecorder` records the gradient norm of every convolution and linear layer
  every ``k`` optimizer steps. Used as a context manager it hooks into **every**
  ``torch.optim`` optimizer that updates the model's parameters (through
  :func:`torch.optim.optimizer.register_optimizer_step_pre_hook`), so it works with any training
  loop, including :func:`cifarzoo.training.fit`, without a callback: gradients are read just before
  ``optimizer.step()``, after ``GradScaler`` unscaled them.
* :class:`SEGateRecorder` records the gate values of every :class:`~cifarzoo.layers.SEBlock`
  (the sigmoid outputs in (0, 1) that rescale each channel) with forward hooks, grouped by stage.
* :class:`PeakMemory` measures the peak memory of a block of code: CUDA's
  ``max_memory_allocated`` on a GPU, the growth of the process's resident set size on a CPU.

>>> import torch
>>> import cifarzoo
>>> from cifarzoo.instrument import GradientFlowRecorder, SEGateRecorder
>>> model = cifarzoo.seresnet20()
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> with GradientFlowRecorder(model, every=1) as flow:
...     model(torch.randn(4, 3, 32, 32)).sum().backward()
...     opt.step()
>>> len(flow.steps), len(flow.norms[0]) == len(flow.layers)
(1, True)
>>> with SEGateRecorder(model) as gates, torch.no_grad():
...     _ = model.eval()(torch.randn(4, 3, 32, 32))
>>> sorted(gates.by_stage())
['layer1', 'layer2', 'layer3']
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .layers import SEBlock

__all__ = [
    "GradientFlowRecorder",
    "MemoryKind",
    "PeakMemory",
    "SEGateRecorder",
    "gate_summary",
    "stage_name",
    "unwrap_model",
]

LayerTypes = tuple[type[nn.Module], ...]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile``."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


class GradientFlowRecorder:
    """Per-layer gradient norms over training.

    Every ``every``-th call of :meth:`record` (i.e. every ``every`` optimizer steps when the
    recorder is active as a context manager) stores the L2 norm of the weight gradient of each
    layer of ``layer_types``, in module registration order (input to output).

    Args:
        model: the network (``DDP``/``torch.compile`` wrappers are looked through).
        every: record one step out of ``every``.
        layer_types: modules whose ``weight`` gradient is recorded.
        start_step: the step the first :meth:`record` call counts as (a resumed run continues
            its records from its checkpoint's step).

    Attributes:
        layers: qualified names of the recorded layers.
        steps: optimizer step (0-based) of each record.
        norms: one list per record, one norm per layer (``0.0`` for a layer without gradient).
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 1,
        layer_types: LayerTypes = (nn.Conv2d, nn.Linear),
        start_step: int = 0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.every = every
        self.layers: list[str] = []
        self._params: list[nn.Parameter] = []
        for name, module in unwrap_model(model).named_modules():
            weight = getattr(module, "weight", None)
            if (
                isinstance(module, layer_types)
                and isinstance(weight, nn.Parameter)
                and weight.requires_grad
            ):
                self.layers.append(name)
                self._params.append(weight)
        if not self.layers:
            raise ValueError(f"the model has no trainable layer of type {layer_types}")
        self._param_ids = {id(p) for p in self._params}
        self.steps: list[int] = []
        self.norms: list[list[float]] = []
        self._count = start_step
        self._handle: RemovableHandle | None = None

    def record(self, step: int | None = None) -> bool:
        """Count one step and, on every ``every``-th, store the current gradient norms.

        Call it after ``loss.backward()`` and before ``optimizer.zero_grad()``; ``step``
        overrides the internal step counter. Returns whether a record was made.
        """
        current = self._count if step is None else step
        self._count = current + 1
        if current % self.every:
            return False
        with torch.no_grad():
            grads = [p.grad for p in self._params]
            present = [g.detach() for g in grads if g is not None]
            values = iter(
                torch.stack([n.float().cpu() for n in torch._foreach_norm(present)]).tolist()
                if present
                else []
            )
            self.norms.append([next(values) if g is not None else 0.0 for g in grads])
        self.steps.append(current)
        return True

    def _hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if any(id(p) in self._param_ids for g in optimizer.param_groups for p in g["params"]):
            self.record()

    def attach(self) -> GradientFlowRecorder:
        """Record before every step of any optimizer that updates the model's parameters."""
        if self._handle is None:
            from torch.optim.optimizer import register_optimizer_step_pre_hook

            self._handle = register_optimizer_step_pre_hook(self._hook)
        return self

    def detach(self) -> None:
        """Stop recording (the records are kept)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> GradientFlowRecorder:
        return self.attach()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def to_dict(self) -> dict[str, Any]:
        """``{"every", "layers", "steps", "norms"}``, JSON-serializable."""
        return {
            "every": self.every,
            "layers": list(self.layers),
            "steps": list(self.steps),
            "norms": [list(row) for row in self.norms],
        }


def stage_name(module_name: str) -> str:
    """The stage an attention module belongs to: its qualified name without the module's own
    attribute and the block index (``layer2.3.se`` -> ``layer2``)."""
    parts = module_name.split(".")[:-1]
    if len(parts) > 1 and parts[-1].isdigit():
        parts = parts[:-1]
    return ".".join(parts) or module_name or "model"


class SEGateRecorder:
    """Gate values of every :class:`~cifarzoo.layers.SEBlock` in forward passes, by stage.

    While active (a context manager), each forward pass through an SE block stores its gate
    ``sigmoid(fc2(relu(fc1(mean(x)))))``: one value per image and channel, in (0, 1). A gate
    near 1 keeps a channel, near 0 suppresses it.

    Args:
        model: the network.
        stage_of: maps a block's qualified name to its stage (default :func:`stage_name`).
        module_types: attention modules to record; they must have a ``gate(x)`` method.
    """

    def __init__(
        self,
        model: nn.Module,
        stage_of: Callable[[str], str] = stage_name,
        module_types: LayerTypes = (SEBlock,),
    ) -> None:
        self.modules: dict[str, nn.Module] = {
            name: m
            for name, m in unwrap_model(model).named_modules()
            if isinstance(m, module_types)
        }
        self.stage_of = stage_of
        self.values: dict[str, list[Tensor]] = {name: [] for name in self.modules}
        self._handles: list[RemovableHandle] = []

    def _make_hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            gate_fn = getattr(module, "gate", None)
            if gate_fn is None or not inputs or not isinstance(inputs[0], Tensor):
                return
            with torch.no_grad():
                gate = gate_fn(inputs[0])
            self.values[name].append(gate.detach().float().flatten(1).cpu())

        return hook

    def __enter__(self) -> SEGateRecorder:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def by_block(self) -> dict[str, Tensor]:
        """Recorded gates of each block, ``[images, channels]``."""
        return {n: torch.cat(v) for n, v in self.values.items() if v}

    def by_stage(self) -> dict[str, Tensor]:
        """All recorded gate values of each stage, flattened, in stage order."""
        stages: dict[str, list[Tensor]] = {}
        for name, gates in self.by_block().items():
            stages.setdefault(self.stage_of(name), []).append(gates.flatten())
        return {s: torch.cat(v) for s, v in stages.items()}

    def summary(self, bins: int = 20) -> dict[str, dict[str, Any]]:
        """:func:`gate_summary` of each stage."""
        return {s: gate_summary(v, bins) for s, v in self.by_stage().items()}


def gate_summary(values: Tensor, bins: int = 20) -> dict[str, Any]:
    """Count, mean, std, min, max, 5/25/50/75/95 % quantiles and a ``bins``-bin histogram on
    [0, 1] of a set of gate values."""
    v = values.detach().double().flatten()
    if v.numel() == 0:
        raise ValueError("no gate values to summarize")
    q = torch.quantile(v[: 2**24], torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=v.dtype))
    return {
        "count": int(v.numel()),
        "mean": float(v.mean()),
        "std": float(v.std(unbiased=False)),
        "min": float(v.min()),
        "max": float(v.max()),
        "quantiles": dict(zip(("q05", "q25", "q50", "q75", "q95"), q.tolist(), strict=True)),
        "histogram": torch.histc(v, bins=bins, min=0.0, max=1.0).long().tolist(),
    }


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

MemoryKind = Literal["cuda_max_memory_allocated", "cpu_rss_growth"]


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc), so RSS growth starts from a fair base."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory used inside a ``with`` block, in bytes (:attr:`peak_bytes`).

    On a CUDA device: ``torch.cuda.max_memory_allocated`` minus the memory allocated at entry
    (tensors the block allocated at its peak, caching allocator excluded). On a CPU: the growth of
    the process's resident set size over its value at entry, sampled every ``interval`` seconds
    from ``/proc/self/statm`` in a background thread (elsewhere, the growth of the peak RSS). RSS
    includes every allocation of the process, so it is an estimate; :attr:`kind` says which.
    """

    def __init__(self, device: torch.device | str, interval: float = 0.002) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.kind: MemoryKind = (
            "cuda_max_memory_allocated" if self.device.type == "cuda" else "cpu_rss_growth"
        )
        self.peak_bytes = 0
        self._base = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._max_rss = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None:
                self._max_rss = max(self._max_rss, rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda_max_memory_allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()
            rss = _rss_bytes()
            if rss is None:
                self._base = _peak_rss_bytes()
            else:
                self._base = self._max_rss = rss
                self._stop.clear()
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.kind == "cuda_max_memory_allocated":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            peak = max(self._max_rss, _rss_bytes() or 0)
        else:
            peak = _peak_rss_bytes()
        self.peak_bytes = max(0, int(peak) - self._base)
