"""``cifarzoo compare``: its command-line options and handler."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from ..compare.findings import MIN_EPOCHS
from ..compare.measure import (
    COMPARE_RECIPE,
    DEFAULT_MODELS,
    GATE_IMAGES,
    GRAD_RECORDS,
    LAB_MODELS,
    SHIPPED_TRAIN_EVAL_IMAGES,
    TRAIN_EVAL_IMAGES,
    VAL_SIZE,
    compare,
    subset_train,
    synthetic_data,
)
from ..compare.report import existing_report_files
from ..compare.shipped import choose_weights
from ..data import NUM_TRAIN, CIFAR10Data, load_cifar10
from ..runs import existing_run_files
from ..training import AMP_MODES, Recipe
from .argtypes import int_up_to, nonnegative_int, positive_int
from .common import Subparsers
from .options import (
    add_amp_argument,
    add_common_options,
    add_setting_options,
    check_data_sizes,
    given_settings,
    run_option_help,
    setting_flags,
    use_threads,
)

__all__ = ["add_compare_parser", "main", "run_compare"]

#: The recipe fields that ``compare`` always sets (its own defaults); the others only when
#: given (:data:`~cifarzoo.compare.COMPARE_RECIPE` and the Recipe defaults otherwise).
_SHOWN = ("epochs", "batch_size", "lr", "seed")
#: compare trains without a teacher
_NO_TEACHER = ("distill_weight", "distill_temperature")
#: The flags of the recipe fields that compare sets only when given.
_RECIPE_FLAGS = setting_flags(
    Recipe, [f.name for f in dataclasses.fields(Recipe) if f.name not in _SHOWN + _NO_TEACHER]
)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The Recipe fields as options (the distillation ones aside: compare has no teacher)."""
    recipe = p.add_argument_group("recipe", "of every model trained (the same for all)")
    add_setting_options(recipe, Recipe, _SHOWN, defaults={"epochs": MIN_EPOCHS})
    add_setting_options(
        recipe,
        Recipe,
        _RECIPE_FLAGS,
        left_out=True,
        default_text={k: str(v) for k, v in COMPARE_RECIPE.items()},
    )


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """Which images: the validation split, a training subset or synthetic data."""
    p.add_argument(
        "--val-size",
        type=nonnegative_int,
        default=None,
        help=f"training images held out for validation (default {VAL_SIZE}; with "
        "--pretrained each weights' own held-out split is used)",
    )
    p.add_argument(
        "--train-subset",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on a class-balanced subset of N images (quick comparisons)",
    )
    p.add_argument(
        "--synthetic",
        type=int_up_to(NUM_TRAIN, "CIFAR-10's training images"),
        default=None,
        metavar="N",
        help="use N random synthetic training images instead of CIFAR-10 (smoke test)",
    )


def _add_measure_options(p: argparse.ArgumentParser) -> None:
    """What is recorded and measured of each model besides its accuracy."""
    p.add_argument(
        "--grad-every",
        type=positive_int,
        default=None,
        metavar="K",
        help=f"record gradient norms every K steps (default: about {GRAD_RECORDS} records)",
    )
    p.add_argument(
        "--gate-images",
        type=nonnegative_int,
        default=GATE_IMAGES,
        help=f"test images for the SE gate statistics (default {GATE_IMAGES:,})",
    )
    p.add_argument(
        "--same-init",
        action="store_true",
        help="initialise residual and plain networks alike (zero_init_residual=False)",
    )
    p.add_argument(
        "--train-eval-images",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help=f"training images on which the final training error is measured (default "
        f"{TRAIN_EVAL_IMAGES}; {SHIPPED_TRAIN_EVAL_IMAGES} with --pretrained)",
    )


def add_compare_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to an argparse ``subparsers`` object; the parsed
    namespace's ``func`` is :func:`run_compare`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="train several models with one recipe (or read their shipped weights) and write "
        "a comparison report",
        description=(
            "Train MODELs with the same recipe and seed and write OUT/report.html (figures "
            "embedded), the figures as PNG and OUT/report.json. Default models: "
            f"{' '.join(DEFAULT_MODELS)} (CPU-sized); the lab's four: {' '.join(LAB_MODELS)}. "
            "A report from the shipped weights, without training: --pretrained NAME... --data DIR."
        ),
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"model names (default: {' '.join(DEFAULT_MODELS)})",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="report folder; one that holds a report or a `cifarzoo train` run needs --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the report in --out (or write one beside the run it holds)",
    )
    p.add_argument(
        "--render",
        metavar="REPORT_JSON",
        help="write the report of this report.json again into --out (no data, no training)",
    )
    add_common_options(p, download=True)
    _add_recipe_options(p)
    _add_data_options(p)
    p.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="also include these `cifarzoo train` output folders (not retrained)",
    )
    p.add_argument(
        "--pretrained",
        nargs="+",
        default=[],
        metavar="NAME",
        help="compare these shipped weights instead of training (ARCH or ARCH.TAG, see "
        "`cifarzoo list --pretrained`; bare names take the tag they all have): their shipped "
        "training records give the curves, the data gives the test figures, in minutes",
    )
    _add_measure_options(p)
    add_amp_argument(p)
    p.add_argument("--quiet", action="store_true", help=run_option_help("quiet"))
    p.set_defaults(func=run_compare)
    return p


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that holds a report or a run (its files would be replaced or mixed with
    the report's) unless --overwrite says so: checked before anything is trained."""
    if overwrite:
        return
    report, run = existing_report_files(out), existing_run_files(out)
    if report:
        raise ValueError(
            f"--out {out} already holds a report ({', '.join(report)}); pass --overwrite to "
            "replace it, or another --out folder"
        )
    if run:
        raise ValueError(
            f"--out {out} holds a `cifarzoo train` run ({', '.join(run)}); pass another --out "
            "folder, or --overwrite to write the report beside it"
        )


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``cifarzoo compare``; returns the exit status."""
    out = Path(args.out)
    in_place = args.render is not None and Path(args.render).resolve().parent == out.resolve()
    _check_out(out, args.overwrite or in_place)  # a report written again in place loses nothing
    if args.render is not None:
        return _rerender(args)
    choose_weights(args.pretrained)  # a wrong name fails before the data is read
    use_threads(args)
    data = _compare_data(args)
    report = compare(
        args.models or None,
        data,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        out=args.out,
        runs=args.runs,
        pretrained=args.pretrained,
        grad_every=args.grad_every,
        gate_images=args.gate_images,
        train_eval_images=args.train_eval_images,
        model_args={"zero_init_residual": False} if args.same_init else None,
        quiet=args.quiet,
        batch_size=args.batch_size,
        lr=args.lr,
        amp=AMP_MODES[args.amp],
        **given_settings(args, _RECIPE_FLAGS),
    )
    print(report.table())
    print(f"report: {report.files['html']}")
    return 0


def _compare_data(args: argparse.Namespace) -> CIFAR10Data:
    """The data of ``compare``: CIFAR-10 or synthetic images, with ``--val-size`` images held
    out (none with ``--pretrained``: each weights brings its own split) and ``--train-subset``
    taken; sizes checked before anything is read."""
    subset = args.train_subset or 0
    if args.pretrained and (args.val_size is not None or args.train_subset is not None):
        raise ValueError(
            "--pretrained evaluates each shipped weights with the validation split its training "
            "held out, and trains nothing: drop --val-size and --train-subset"
        )
    val_size = 0 if args.pretrained else VAL_SIZE if args.val_size is None else args.val_size
    if args.synthetic is None:
        check_data_sizes(val_size, subset)
    elif subset > args.synthetic:
        raise ValueError(
            f"--train-subset must be at most {args.synthetic:,} (the --synthetic training "
            f"images), got {subset:,}"
        )
    if args.synthetic is not None:
        data = synthetic_data(
            args.synthetic,
            max(100, args.synthetic // 2),
            val_size=0 if args.pretrained else max(10, args.synthetic // 10),
            seed=args.seed,
        )
    else:
        data = load_cifar10(
            args.data,
            download=args.download,
            val_size=val_size,
            seed=args.seed,
            name=args.data_name,
        )
    if args.train_subset is not None:
        data = subset_train(data, args.train_subset, seed=args.seed)
    return data


def _rerender(args: argparse.Namespace) -> int:
    """``compare --render REPORT_JSON --out DIR``: the report again, from its JSON alone."""
    from ..compare.report import rerender

    if args.models or args.runs or args.pretrained or args.synthetic is not None:
        raise ValueError(
            "--render writes a report again from its report.json alone; drop the model names, "
            "--runs, --pretrained and --synthetic (or drop --render to compare)"
        )
    files = rerender(args.render, args.out)
    print(f"report: {files['html']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cifarzoo.compare ...`` (the same as ``cifarzoo compare ...``)."""
    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_compare_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["compare", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
