"""Writing run folders: the final evaluation and files of a training run (:func:`write_run`),
and a run folder rebuilt from its recorded parts (:func:`restore_run`)."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from ..checkpoint import atomic_dir, atomic_write, save_json, save_weights, write_sha256_sidecar
from ..formats import percent
from ..metrics import EvalResult, evaluate, tta_views
from .folder import GRAD_FLOW_FILE, HISTORY_FILE, MARKER, WEIGHTS_FILE
from .read import read_run

if TYPE_CHECKING:
    from ..data import CIFAR10Data, Split
    from ..training import History

__all__ = ["hardware_string", "restore_run", "save_grad_flow", "write_run"]


def hardware_string(device: str | None = None) -> str:
    """A short description of the machine: GPU name(s) or CPU model and core count."""
    if (device is None or device.startswith("cuda")) and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n}x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu} ({os.cpu_count()} CPUs, {threads} thread{'' if threads == 1 else 's'})"


def write_run(
    out: Path,
    model_name: str,
    model: nn.Module,
    history: History,
    data: CIFAR10Data,
    recipe: Mapping[str, Any],
    *,
    wall_seconds: float,
    extra: dict[str, Any] | None = None,
    quiet: bool = False,
    weights_dtype: torch.dtype | None = None,
    amp: bool | None = None,
    tta_flip: bool | None = None,
    tta_translate: bool | None = None,
) -> dict[str, Any] | None:
    """Evaluate the final weights (fit leaves the EMA copy in the model) and write the run folder:
    ``model.safetensors`` (+ ``.sha256``), ``history.json``, PNG curves and, last,
    ``metrics.json``, which marks the run finished (it is removed first).

    ``recipe`` is the training recipe as a plain mapping (``TrainingSetup.to_dict()``: the
    recipe fields and the run options recorded with them), stored as
    ``metrics["recipe"]``. The accuracies are measured with ``amp`` (default: the recipe's ``amp``,
    else bf16 where it is fast, :func:`~cifarzoo.devices.fast_bf16`) and the test-time
    augmentation ``tta_flip``/``tta_translate`` (default: the recipe's, else none):
    ``test_accuracy``/``val_accuracy`` and the per-class figures are one forward pass,
    ``tta_test_accuracy``/``tta_val_accuracy`` the augmentation's (named by ``tta``), from the
    same forward passes.
    ``weights_dtype`` (e.g. ``torch.float16``) stores the floating-point tensors in that dtype;
    the model is rounded to it first, so the accuracy written is that of the stored file.
    Returns the metrics (``None`` on ranks other than 0, which write nothing).
    """
    from ..devices import resolve_amp
    from ..training import DistEnv

    state = _rounded_state(model, weights_dtype)
    device = next(model.parameters()).device
    amp = recipe.get("amp") if amp is None else amp
    bf16 = resolve_amp(amp, device)
    flip = bool(recipe.get("tta_flip", False)) if tta_flip is None else tta_flip
    translate = bool(recipe.get("tta_translate", False)) if tta_translate is None else tta_translate
    results = _final_results(model, data, bf16, flip, translate)
    env = DistEnv.from_env()
    if not env.is_main:
        return None
    (out / MARKER).unlink(missing_ok=True)  # unfinished until metrics.json is written, last
    weights = out / WEIGHTS_FILE
    digest = save_weights(state, weights, metadata={"model": model_name, "data": data.name})
    history.save(out / HISTORY_FILE)
    metrics = {
        **_metrics(model_name, model, history, data, results, env.world_size, str(device)),
        "wall_seconds": wall_seconds,
        "recipe": dict(recipe),
        "tta_flip": flip,
        "tta_translate": translate,
        "bf16": bf16,
        "weights": weights.name,
        "weights_dtype": str(
            next(v.dtype for v in state.values() if v.is_floating_point())
        ).removeprefix("torch."),
        "sha256": digest,
        **(extra or {}),
    }
    _save_plots(history, out, results.test)
    save_json(metrics, out / MARKER)
    _print_summary(model_name, data.name, results, history.total_seconds, out, quiet)
    return metrics


def _rounded_state(model: nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The state dict to store, its floating-point tensors in ``dtype``; the model is rounded
    to it, so that what is evaluated next is what is stored."""
    state = model.state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        model.load_state_dict(state)
    return state


class _FinalResults(NamedTuple):
    """The final evaluation: ``test``/``val``, what ``model(x)`` gives (one forward pass), and
    ``tta_test``/``tta_val``, the same with the test-time augmentation ``tta`` (``None``
    without one)."""

    test: EvalResult
    val: EvalResult | None
    tta: str | None
    tta_test: EvalResult | None
    tta_val: EvalResult | None


def _final_results(
    model: nn.Module, data: CIFAR10Data, bf16: bool, flip: bool, translate: bool
) -> _FinalResults:
    def measure(split: Split) -> tuple[EvalResult, EvalResult | None]:
        """Without TTA and with it, from the same forward passes."""
        result = evaluate(
            model,
            split,
            amp=bf16,
            classes=data.classes,
            tta_flip=flip,
            tta_translate=translate,
            single_pass=True,
        )
        single = result.one_pass
        assert single is not None  # asked for with single_pass=True
        return (single, None) if single is result else (single, result)

    test, tta_test = measure(data.test)
    val, tta_val = (None, None) if data.val is None else measure(data.val)
    return _FinalResults(test, val, tta_views(flip, translate) or None, tta_test, tta_val)


def _metrics(
    model_name: str,
    model: nn.Module,
    history: History,
    data: CIFAR10Data,
    results: _FinalResults,
    world_size: int,
    device: str,
) -> dict[str, Any]:
    """The measured part of ``metrics.json`` and the machine it was measured on: one forward
    pass as the headline (``test_*``, ``val_accuracy``, per-class accuracy and confusion
    matrix), the TTA figures beside it."""
    test, val = results.test, results.val
    return {
        "model": model_name,
        "data": data.name,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "test_ece": test.ece,
        "val_accuracy": _accuracy(val),
        "tta": results.tta,
        "tta_test_accuracy": _accuracy(results.tta_test),
        "tta_val_accuracy": _accuracy(results.tta_val),
        "per_class_accuracy": dict(zip(test.classes, test.per_class_accuracy, strict=True)),
        "confusion_matrix": test.confusion_matrix,
        "epochs": len(history),
        "seconds": history.total_seconds,
        "train_images": len(data.train),
        "eval_split_during_training": history.eval_split,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hardware": hardware_string(device),
        "world_size": world_size,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _accuracy(result: EvalResult | None) -> float | None:
    return None if result is None else result.accuracy


def _save_plots(history: History, out: Path, test: EvalResult) -> None:
    try:
        from ..plots import save_training_plots

        save_training_plots(history, out, test.per_class_accuracy, test.classes)
    except ImportError as e:
        print(f"warning: no plots ({e})", file=sys.stderr)


def _print_summary(
    model_name: str,
    data_name: str,
    results: _FinalResults,
    seconds: float,
    out: Path,
    quiet: bool,
) -> None:
    """The per-class table and the headline: one forward pass, the TTA figures beside it."""
    if not quiet:
        print(results.test.table())

    def pct(result: EvalResult) -> str:
        return percent(result.accuracy)

    val = f", val {pct(results.val)}" if results.val else ""
    tta = ""
    if results.tta_test is not None:
        tta_val = f", val {pct(results.tta_val)}" if results.tta_val else ""
        tta = f"; {results.tta} TTA: test {pct(results.tta_test)}{tta_val}"
    print(
        f"{model_name}: test accuracy {pct(results.test)}{val} ({data_name}, one forward pass)"
        f"{tta}; {seconds:.0f} s; wrote {out}"
    )


def restore_run(
    target: Path, weights: bytes, history: Mapping[str, Any], metrics: Mapping[str, Any]
) -> None:
    """Write ``target`` as ``cifarzoo train`` writes it, from a run's recorded parts (its
    weights file's bytes, history and metrics). The folder is built aside and renamed into
    place only once it reads back as :func:`~cifarzoo.runs.read_run` requires (``target`` must
    not exist or be empty).

    Raises:
        ValueError, FileNotFoundError, PretrainedWeightsError: as :func:`read_run` does.
    """
    with atomic_dir(target) as tmp:
        with atomic_write(tmp / WEIGHTS_FILE) as f:
            f.write(weights)
        write_sha256_sidecar(tmp / WEIGHTS_FILE, hashlib.sha256(weights).hexdigest())
        save_json(dict(history), tmp / HISTORY_FILE)
        save_json(dict(metrics), tmp / MARKER)
        read_run(tmp)  # what install_weights reads: refuse a folder it would refuse


def save_grad_flow(run_dir: Path, records: Mapping[str, Any]) -> None:
    """Write (replace) the run's gradient records, ``grad_flow.json``
    (:meth:`cifarzoo.instrument.GradientFlowRecorder.to_dict`), atomically."""
    save_json(dict(records), run_dir / GRAD_FLOW_FILE)
