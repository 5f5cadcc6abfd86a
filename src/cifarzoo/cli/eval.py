"""``cifarzoo eval``: evaluate weights on the CIFAR-10 test set, beside the recorded accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..formats import percent
from ..metrics import EVAL_BATCH_ACCELERATOR, EVAL_BATCH_CPU
from ..runs import (
    check_weights_source,
    one_line,
    recorded_accuracy,
    recorded_bf16,
    recorded_metrics,
    recorded_tta,
)
from .argtypes import positive_int
from .common import Subparsers, folder_problem
from .options import add_amp_argument, add_common_options, use_threads

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["add_eval_parser", "run_eval"]


def add_eval_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="evaluate weights on the CIFAR-10 test set",
        description="Evaluate MODEL on the CIFAR-10 test split and print overall and "
        "per-class accuracy. --weights verifies FILE.sha256 when it exists.",
    )
    p.add_argument(
        "model",
        help="model name (see `cifarzoo list`); ARCH.TAG (lenet.lab) for weights other than "
        "the model's default",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="a model.safetensors file (or a folder holding one)")
    src.add_argument("--pretrained", action="store_true", help="the model's published weights")
    add_common_options(p, download=True)
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flip test-time augmentation (default: as the weights' recorded accuracy was "
        "measured, from the shipped weights' metadata or the run folder's metrics.json; "
        "else on)",
    )
    p.add_argument(
        "--tta-translate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also average over copies shifted one pixel diagonally (default: as recorded "
        "with the weights, else off)",
    )
    add_amp_argument(p, default=None, default_help="as recorded with the weights, else auto")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"images per forward pass (default: {EVAL_BATCH_ACCELERATOR} on a GPU, "
        f"{EVAL_BATCH_CPU} on a CPU)",
    )
    p.add_argument(
        "--json", dest="json_path", metavar="FILE", help="also write the results to this JSON file"
    )
    p.set_defaults(func=run_eval)
    return p


def _tta_description(flip: bool, translate: bool) -> str:
    from ..metrics import tta_views

    views = tta_views(flip, translate)
    return f"{views} TTA" if views else "no TTA"


def _check_json_path(json_path: Path) -> None:
    if json_path.is_dir():
        raise ValueError(
            f"--json {json_path} is a folder; pass a file path, e.g. {json_path / 'eval.json'}"
        )
    problem = folder_problem(json_path.parent)
    if problem is not None:
        raise ValueError(f"--json {json_path}: {problem}; pass a file path that can be written")


def _load_model(args: argparse.Namespace) -> nn.Module:
    from ..models import create_model

    if args.weights:
        check_weights_source(args.weights)
        model = create_model(args.model, weights=args.weights)
    else:
        model = create_model(args.model, pretrained=True)
    _check_finite(model, args.weights or f"the pretrained {args.model}")
    return model


def _check_finite(model: nn.Module, source: str) -> None:
    """Refuse weights that hold NaN or infinities: their accuracy would look like a result."""
    import torch

    bad = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ValueError(
            f"the weights of {source} hold NaN or infinite values ({listed}), so there is "
            "nothing to evaluate: train again (a run whose weights stop being finite stops "
            "before it writes them), or get an intact copy of the file"
        )


def _eval_settings(
    args: argparse.Namespace, recorded: dict[str, Any], device: torch.device
) -> tuple[bool, bool, bool, str]:
    """Flip TTA, translate TTA and bf16: those given, else as recorded with the weights; and
    the note that says they are as recorded."""
    from ..devices import earlier_auto_amp, resolve_amp
    from ..training import AMP_MODES

    recorded_views = recorded_tta(recorded)
    flip, translate = recorded_views or (True, False)
    flip = flip if args.tta is None else args.tta
    translate = translate if args.tta_translate is None else args.tta_translate
    recorded_amp = recorded_bf16(recorded)
    if args.amp is not None:
        bf16 = resolve_amp(AMP_MODES[args.amp], device)
    else:  # a run that recorded no precision was evaluated by an earlier version's auto
        bf16 = recorded_amp if recorded_amp is not None else earlier_auto_amp(device.type)
    as_recorded = recorded_views == (flip, translate) and recorded_amp in (None, bf16)
    return flip, translate, bf16, ", as recorded with the weights" if as_recorded else ""


def run_eval(args: argparse.Namespace) -> int:
    from ..checkpoint import save_json
    from ..data import load_cifar10
    from ..devices import resolve_device
    from ..metrics import evaluate, tta_views

    if args.json_path:
        _check_json_path(Path(args.json_path))
    use_threads(args)
    model = _load_model(args)
    recorded = recorded_metrics(args.model, None if args.pretrained else args.weights)
    device = resolve_device(args.device)
    model.to(device)
    data = load_cifar10(args.data, download=args.download, name=args.data_name)
    flip, translate, bf16, recorded_note = _eval_settings(args, recorded, device)
    run = {"batch_size": args.batch_size, "device": device, "amp": bf16}
    result = evaluate(
        model,
        data.test,
        tta_flip=flip,
        tta_translate=translate,
        classes=data.classes,
        single_pass=True,
        progress=f"{args.model} on {data.name} test",
        **run,
    )
    print(
        f"{args.model} on {data.name} test ({result.num_samples:,} images; "
        f"{_tta_description(flip, translate)}{recorded_note}{'; bf16' if bf16 else ''})"
    )
    other_data = _other_data_note(recorded, data.name)
    if other_data:
        print(other_data)
    single = result.one_pass or result  # from the same forward passes: model(x) alone
    print(single.table())
    tta = tta_views(flip, translate) or None
    tta_accuracy = None if tta is None else result.accuracy
    print(_accuracy_summary(single.accuracy, tta, tta_accuracy, recorded))
    if args.json_path:
        weights = args.weights or "pretrained"
        details = {"model": args.model, "data": data.name, "weights": weights, "bf16": bf16}
        figures = {"tta": tta, "tta_accuracy": tta_accuracy}
        save_json({**details, **single.to_dict(), **figures}, args.json_path)
    return 0


def _other_data_note(recorded: dict[str, Any], name: str) -> str | None:
    """The line that says the accuracy recorded with the weights was measured on other data
    (by its recorded name), or ``None``."""
    from ..data import UNVERIFIED_NAME

    recorded_name = recorded.get("data")
    if not recorded_name or one_line(recorded_name) == name:
        return None
    hint = " (if it is the same data, name it with --data-name)" if name == UNVERIFIED_NAME else ""
    return (
        f"note: the accuracy recorded with the weights was measured on {one_line(recorded_name)}, "
        f"not on this data ({name}){hint}: the figures are not comparable"
    )


def _accuracy_summary(
    single_pass: float, tta: str | None, tta_accuracy: float | None, recorded: dict[str, Any]
) -> str:
    """The single-pass test accuracy measured and, with a test-time augmentation, its figure,
    each beside the one recorded with the weights (the TTA one when it is the same TTA)."""
    acc = recorded_accuracy(recorded)

    def pct(x: float | None) -> str:
        return "not recorded" if x is None else percent(x)

    lines = [f"single pass: {pct(single_pass)}"]
    if recorded:
        lines[0] += f" (recorded with the weights: {pct(acc.test)})"
    if tta is not None:
        lines.append(f"{tta} TTA: {pct(tta_accuracy)}")
        if recorded and acc.tta == tta:
            lines[-1] += f" (recorded with the weights: {pct(acc.tta_test)})"
    return "\n".join(lines)
