"""The ``cifarzoo`` command line: ``list``, ``train`` and ``eval``.

Each subcommand is registered by an ``add_<name>_parser(subparsers)`` function that sets
``func`` (the handler, ``args -> exit code``) as a parser default; :data:`SUBCOMMANDS` lists
them in order. Adding a command means writing one more such function and appending it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .compare import add_amp_argument, add_compare_parser
from .hub import add_publish_parser

__all__ = [
    "SUBCOMMANDS",
    "add_eval_parser",
    "add_list_parser",
    "add_train_parser",
    "build_parser",
    "hardware_string",
    "main",
    "write_run",
]

Subparsers = Any  # argparse._SubParsersAction is private


def hardware_string(device: str | None = None) -> str:
    """A short description of the machine: GPU name(s) or CPU model and core count."""
    import torch

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
    return f"{cpu} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------------


def add_list_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "list", help="list the model names", description="List the models cifarzoo can build."
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--pretrained", action="store_true", help="only models with weights")
    p.set_defaults(func=run_list)
    return p


def run_list(args: argparse.Namespace) -> int:
    from .models import list_models

    for name in list_models(args.pattern, pretrained=args.pretrained):
        print(name)
    return 0


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def add_train_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    from .train import TrainConfig

    d = TrainConfig()
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a model on CIFAR-10",
        description="Train MODEL on CIFAR-10 and write model.safetensors (+ .sha256), "
        "history.json, metrics.json and PNG curves into --out. The defaults are the 30-epoch "
        "ResNet-20 CPU recipe (SGD Nesterov, batch 128, peak lr 0.1, one-cycle, wd 5e-4, label "
        "smoothing 0.1, crop+flip, EMA 0.999, flip TTA). Works under torchrun too.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="model name (see `cifarzoo list`)")
    p.add_argument(
        "--data",
        help="data root holding cifar-10-batches-py; unset: $CIFARZOO_DATA, else ~/.cache/cifarzoo",
    )
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download CIFAR-10 through torchvision when the folder is missing",
    )
    p.add_argument(
        "--data-name", default="CIFAR-10", help="how the data is described in metrics.json"
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "constant"], default=d.schedule)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="0 turns EMA off")
    p.add_argument(
        "--crop-padding",
        type=int,
        default=d.crop_padding,
        help="random crops shift the image by up to this many pixels (reflect padding)",
    )
    p.add_argument("--cutout", type=int, default=d.cutout, help="cutout size, 0 = off")
    p.add_argument(
        "--sam-rho",
        type=float,
        default=d.sam_rho,
        help="sharpness-aware minimization with this radius (0.05 is usual); 0 = off. "
        "Each step costs two forward and backward passes",
    )
    p.add_argument(
        "--alternate-flip",
        action="store_true",
        help="mirror each image in every other epoch instead of at random (airbench)",
    )
    p.add_argument(
        "--no-tta",
        dest="tta_flip",
        action="store_false",
        help="evaluate without flip test-time augmentation",
    )
    p.add_argument(
        "--tta-translate",
        action="store_true",
        help="also average over copies shifted one pixel diagonally (test-time augmentation)",
    )
    add_amp_argument(p)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--eval-every",
        type=int,
        default=1,
        help="evaluate every N epochs (and after the last); the curves get fewer points",
    )
    p.add_argument(
        "--teacher",
        metavar="MODEL[=WEIGHTS]",
        action="append",
        default=argparse.SUPPRESS,
        help="distill from this trained model (its flip-TTA predictions on the training "
        "images): its pretrained weights, or =WEIGHTS, a model.safetensors or run folder; "
        "repeat for an ensemble (averaged probabilities)",
    )
    p.add_argument(
        "--distill-weight",
        type=float,
        default=argparse.SUPPRESS,
        help="weight of the teacher's probabilities in the targets (default: 0.5 with --teacher)",
    )
    p.add_argument(
        "--distill-temperature",
        type=float,
        default=d.distill_temperature,
        help="temperature that softens the teacher's probabilities",
    )
    p.add_argument(
        "--val-size",
        type=int,
        default=0,
        help="hold out this many training images (stratified) as validation",
    )
    p.add_argument(
        "--train-subset",
        type=int,
        default=0,
        metavar="N",
        help="train on a stratified subset of N images (smoke runs); 0 = all",
    )
    p.add_argument("--out", default=None, help="output folder; unset: runs/MODEL")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu...; unset: cuda if any")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
    import torch

    from .data import load_cifar10, stratified_split
    from .models import create_model
    from .train import AMP_MODES, DistEnv, NonFiniteLossError, TrainConfig, fit

    if args.threads:
        torch.set_num_threads(args.threads)
    env = DistEnv.from_env()
    out = Path(args.out or Path("runs") / args.model)
    teacher_specs: list[str] = getattr(args, "teacher", [])
    distill_weight = getattr(args, "distill_weight", 0.5 if teacher_specs else 0.0)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay,
        crop_padding=args.crop_padding,
        alternate_flip=args.alternate_flip,
        cutout=args.cutout,
        sam_rho=args.sam_rho,
        tta_flip=args.tta_flip,
        tta_translate=args.tta_translate,
        amp=AMP_MODES[args.amp],
        compile=args.compile,
        distill_weight=distill_weight,
        distill_temperature=args.distill_temperature,
        seed=args.seed,
    )
    teachers = [_parse_teacher(spec) for spec in teacher_specs]
    teacher_models = [
        create_model(name, weights=weights) if weights else create_model(name, pretrained=True)
        for name, weights in teachers
    ]
    data = load_cifar10(
        args.data,
        download=args.download,
        val_size=args.val_size,
        seed=args.seed,
        name=args.data_name,
    )
    if args.train_subset:
        _, keep = stratified_split(data.train.labels, args.train_subset, seed=args.seed)
        data = dataclasses.replace(data, train=data.train.subset(keep))
    torch.manual_seed(args.seed)
    model = create_model(args.model)
    if env.is_main and not args.quiet:
        print(
            f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
            f"{data.describe()}; output {out}"
        )
    t0 = time.perf_counter()
    try:
        history = fit(
            model,
            data,
            config=cfg,
            device=args.device,
            checkpoint_dir=out,
            resume=args.resume,
            quiet=args.quiet,
            eval_every=args.eval_every,
            teacher=teacher_models or None,
        )
    except KeyboardInterrupt:
        if env.is_main:
            print(
                f"\ninterrupted; resume with: cifarzoo train {args.model} --out {out} --resume",
                file=sys.stderr,
            )
        return 130
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    metrics = write_run(
        out,
        args.model,
        model,
        history,
        data,
        cfg,
        wall_seconds=wall,
        extra={
            "val_size": args.val_size,
            "teacher": [
                _teacher_description(name, model, from_file=weights is not None)
                for (name, weights), model in zip(teachers, teacher_models, strict=True)
            ]
            or None,
        },
        quiet=args.quiet,
    )
    del metrics
    return 0


def _parse_teacher(spec: str) -> tuple[str, str | None]:
    """``MODEL`` or ``MODEL=WEIGHTS`` (a model.safetensors file or a run folder)."""
    name, _, weights = spec.partition("=")
    return name, weights or None


def _teacher_description(name: str, model: Any, *, from_file: bool) -> str:
    """How metrics.json names a teacher: the model and the file (with its sha256) that its
    pretrained_cfg says it was loaded from, a run folder already resolved to its weights."""
    if not from_file:
        return f"{name} (pretrained)"
    from .checkpoint import sha256_file

    path = Path(model.pretrained_cfg["file"])
    return f"{name} ({path.name}, sha256 {sha256_file(path)})"


def write_run(
    out: Path,
    model_name: str,
    model: Any,
    history: Any,
    data: Any,
    cfg: Any,
    *,
    wall_seconds: float,
    extra: dict[str, Any] | None = None,
    quiet: bool = False,
    weights_dtype: Any = None,
) -> dict[str, Any] | None:
    """Evaluate the final weights (fit leaves the EMA copy in the model) and write the run folder:
    ``model.safetensors`` (+ ``.sha256``), ``history.json``, ``metrics.json`` and PNG curves.

    ``weights_dtype`` (e.g. ``torch.float16``) stores the floating-point tensors in that dtype;
    the model is rounded to it first, so the accuracy written is that of the stored file.
    Returns the metrics (``None`` on ranks other than 0, which write nothing).
    """
    import torch

    from .checkpoint import save_json, save_weights
    from .metrics import evaluate
    from .train import DistEnv

    env = DistEnv.from_env()
    final = model
    state = final.state_dict()
    if weights_dtype is not None:
        state = {k: v.to(weights_dtype) if v.is_floating_point() else v for k, v in state.items()}
        final.load_state_dict(state)  # round the model to what is stored, before evaluating it
    device = next(final.parameters()).device
    amp_eval = cfg.amp if cfg.amp is not None else device.type == "cuda"
    tta = {"tta_flip": cfg.tta_flip, "tta_translate": cfg.tta_translate}
    test = evaluate(final, data.test, amp=amp_eval, classes=data.classes, **tta)
    val = (
        evaluate(final, data.val, amp=amp_eval, classes=data.classes, **tta)
        if data.val is not None
        else None
    )
    if not env.is_main:
        return None
    weights = out / "model.safetensors"
    digest = save_weights(state, weights, metadata={"model": model_name, "data": data.name})
    history.save(out / "history.json")
    metrics: dict[str, Any] = {
        "model": model_name,
        "data": data.name,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "test_ece": test.ece,
        "val_accuracy": val.accuracy if val else None,
        "per_class_accuracy": dict(zip(test.classes, test.per_class_accuracy, strict=True)),
        "confusion_matrix": test.confusion_matrix,
        "epochs": len(history),
        "seconds": history.total_seconds,
        "wall_seconds": wall_seconds,
        "recipe": cfg.to_dict(),
        "train_images": len(data.train),
        "eval_split_during_training": history.eval_split,
        "tta_flip": cfg.tta_flip,
        "tta_translate": cfg.tta_translate,
        "bf16": amp_eval,
        "parameters": sum(p.numel() for p in final.parameters()),
        "hardware": hardware_string(str(device)),
        "world_size": env.world_size,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "weights": weights.name,
        "weights_dtype": str(
            next(v.dtype for v in state.values() if v.is_floating_point())
        ).removeprefix("torch."),
        "sha256": digest,
        **(extra or {}),
    }
    save_json(metrics, out / "metrics.json")
    try:
        from .plots import save_training_plots

        save_training_plots(history, out, test.per_class_accuracy, test.classes)
    except ImportError as e:
        print(f"warning: no plots ({e})", file=sys.stderr)
    if not quiet:
        print(test.table())
    print(
        f"{model_name}: test accuracy {100 * test.accuracy:.2f}% ({data.name})"
        + (f", val {100 * val.accuracy:.2f}%" if val else "")
        + f" in {history.total_seconds:.0f} s; wrote {out}"
    )
    return metrics


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------


def add_eval_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="evaluate weights on the CIFAR-10 test set",
        description="Evaluate MODEL on the CIFAR-10 test split and print overall and "
        "per-class accuracy. --weights verifies FILE.sha256 when it exists.",
    )
    p.add_argument("model", help="model name (see `cifarzoo list`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="a model.safetensors file (or a folder holding one)")
    src.add_argument("--pretrained", action="store_true", help="the model's published weights")
    p.add_argument("--data", help="data root (default: $CIFARZOO_DATA, else ~/.cache/cifarzoo)")
    p.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="download CIFAR-10 through torchvision when the folder is missing",
    )
    p.add_argument("--data-name", default="CIFAR-10")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    p.add_argument(
        "--tta-translate",
        action="store_true",
        help="also average over copies shifted one pixel diagonally",
    )
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default=None)
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    p.set_defaults(func=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    from .checkpoint import save_json
    from .data import load_cifar10
    from .metrics import evaluate, resolve_device
    from .models import create_model

    if args.weights:
        model = create_model(args.model, weights=args.weights)
    else:
        model = create_model(args.model, pretrained=True)
    device = resolve_device(args.device)
    model.to(device)
    data = load_cifar10(args.data, download=args.download, name=args.data_name)
    result = evaluate(
        model,
        data.test,
        tta_flip=args.tta,
        tta_translate=args.tta_translate,
        batch_size=args.batch_size,
        device=device,
        classes=data.classes,
    )
    print(f"{args.model} on {data.name} test ({result.num_samples:,} images)")
    print(result.table())
    if args.json_path:
        save_json(
            {
                "model": args.model,
                "data": data.name,
                "weights": args.weights or "pretrained",
                **result.to_dict(),
            },
            args.json_path,
        )
    return 0


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Subparsers], argparse.ArgumentParser]] = [
    add_list_parser,
    add_train_parser,
    add_eval_parser,
    add_compare_parser,
    add_publish_parser,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="cifarzoo", description="CIFAR-10 model zoo: list, train and evaluate models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cifarzoo`` console script and ``python -m cifarzoo``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cifarzoo list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"cifarzoo {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
