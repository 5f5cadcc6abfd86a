"""``cifarzoo train``: train a model into a run folder, resume it, or replace it.

The options are generated from :class:`~cifarzoo.training.Recipe` (what changes the trained
weights; a resume must keep the checkpoint's) and :class:`~cifarzoo.training.RunOptions` (how the
run executes; a resume may change them): :data:`RECIPE_FLAGS` and :data:`OPTION_FLAGS` name the
flag of each field.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checkpoint import CHECKPOINT_NAME
from ..data import NUM_TRAIN
from ..pretrained import WeightsEntry
from ..runs import CLI_WORDS, check_run_folder, new_version_folder, run_lock, write_run
from ..training import Recipe, RunOptions, recipe_differences, recipe_summary
from .argtypes import nonnegative_int
from .common import Subparsers, check_out_folder
from .model_kwargs import MODEL_KWARGS_FLAG, model_kwarg, model_kwargs_words
from .options import (
    add_common_options,
    add_setting_options,
    check_data_sizes,
    flag_text,
    given_settings,
    run_option_help,
    setting_flags,
    use_threads,
)

if TYPE_CHECKING:
    from ..data import CIFAR10Data
    from ..training import ModelArgsMismatchError, TrainState

__all__ = [
    "OPTION_FLAGS",
    "RECIPE_FLAGS",
    "add_train_parser",
    "run_train",
    "train_command",
    "weights_train_command",
]


#: The run options that ``cifarzoo train`` exposes.
_TRAIN_OPTIONS = ("amp", "compile", "channels_last", "tta_flip", "tta_translate", "eval_every")
#: Command-line flag of each Recipe field of ``cifarzoo train`` (all of them).
RECIPE_FLAGS: dict[str, str] = setting_flags(Recipe)
#: Command-line flag of each RunOptions field of ``cifarzoo train``; a resume takes those not
#: given from the checkpoint (they do not have to match it).
OPTION_FLAGS: dict[str, str] = setting_flags(RunOptions, _TRAIN_OPTIONS)
#: ``distill_weight`` when ``--teacher`` is given without ``--distill-weight``.
_TEACHER_DISTILL_WEIGHT = 0.5
#: The run options that change what a run records (its TTA figures); the others change its
#: speed only, and ``--amp auto`` picks the fast precision of the machine that runs it.
_MEASURING_OPTIONS = ("tta_flip", "tta_translate")


def train_command(
    model: str,
    recipe: Recipe,
    *,
    val_size: int,
    options: Mapping[str, Any] | None = None,
    out: str | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> str:
    """The ``cifarzoo train`` command that trains ``model``, built with ``model_args``, with
    ``recipe``, ``val_size`` training images held out, and the TTA settings of ``options`` (a
    metrics.json ``recipe`` holds them): the flags of the settings that differ from the
    defaults, in declaration order.
    """
    given = dict(options or {})
    default_options = RunOptions()
    settings = [
        flag_text(Recipe, name, ours)
        for name, (ours, _) in recipe_differences(recipe, Recipe()).items()
    ] + [
        flag_text(RunOptions, name, given[name])
        for name in _MEASURING_OPTIONS
        if name in given and given[name] != getattr(default_options, name)
    ]
    words = ["cifarzoo", "train", model, *model_kwargs_words(model_args or {})]
    words += ["--val-size", str(val_size)]
    for setting in settings:
        words += setting.split(" ", 1)  # "--lr 0.2" is two words, "--no-flip" one
    if out is not None:
        words += ["--out", out]
    return shlex.join(words)


def weights_train_command(entry: WeightsEntry, out: str | None = None) -> str:
    """:func:`train_command` of the model arguments, recipe, held-out images and TTA settings
    that the weights' metadata records."""
    from ..runs import recorded_model_args

    metrics = entry.meta["metrics"]
    recorded = metrics["recipe"]
    return train_command(
        entry.arch,
        Recipe.from_dict(recorded),
        val_size=NUM_TRAIN - metrics["train_images"],
        options=recorded,
        out=out,
        model_args=recorded_model_args(metrics),
    )


def add_train_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a model on CIFAR-10",
        description="Train MODEL on CIFAR-10 and write model.safetensors (+ .sha256), "
        "history.json, PNG curves and, last, metrics.json into --out (unset: a new "
        "runs/MODEL/version_N; a folder holding a run needs --resume or --overwrite; the folder "
        "is locked while the run trains). The defaults are the baseline CPU recipe: "
        f"{'; '.join(recipe_summary(Recipe()))}. Each shipped weights' recipe is in its "
        "metadata and, as a command, in the docs' training page. The accuracies printed and "
        "recorded as test_accuracy and val_accuracy are one forward pass; flip TTA's (--tta) "
        "are measured beside them, as tta_test_accuracy and tta_val_accuracy. Works under "
        "torchrun too.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="model name (see `cifarzoo list`)")
    p.add_argument(
        MODEL_KWARGS_FLAG,
        nargs="+",
        type=model_kwarg,
        action="extend",
        default=argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help="constructor arguments of the model, as timm's train.py takes them (e.g. "
        "conv_init=pytorch zero_init_residual=False); a value is a Python literal where it "
        "reads as one, else text. Recorded in the checkpoint and metrics.json (model_args); a "
        "resume takes them from the checkpoint, and ones given must match it",
    )
    add_common_options(p, download=True)
    recipe = p.add_argument_group(
        "recipe", "what changes the trained weights; a resume must keep the checkpoint's"
    )
    add_setting_options(
        recipe,
        Recipe,
        left_out=True,
        default_text={"distill_weight": f"{_TEACHER_DISTILL_WEIGHT} with --teacher, else 0"},
    )
    run = p.add_argument_group(
        "run options", "how the run executes and evaluates; a resume may change them"
    )
    add_setting_options(run, RunOptions, _TRAIN_OPTIONS, left_out=True)
    p.add_argument(
        "--teacher",
        metavar="MODEL[=WEIGHTS]",
        action="append",
        default=argparse.SUPPRESS,
        help="distill from this trained model (its flip-TTA predictions on the training "
        "images): its pretrained weights, or =WEIGHTS, a model.safetensors or run folder; "
        "repeat for an ensemble (averaged probabilities)",
    )
    _add_data_size_options(p)
    _add_out_options(p)
    p.add_argument("--quiet", action="store_true", help=run_option_help("quiet"))
    p.set_defaults(func=run_train)
    return p


def _add_data_size_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--val-size",
        type=nonnegative_int,
        default=0,
        help="hold out this many training images (stratified, by --seed) as validation",
    )
    p.add_argument(
        "--train-subset",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="train on a stratified subset of N images (smoke runs); 0 = all",
    )


def _add_out_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        default=None,
        help="output folder; one that holds a run needs --resume or --overwrite. Unset: a new "
        "folder runs/MODEL/version_N",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (its run files are deleted when training starts, once "
        "the model, data, teachers and recipe were accepted)",
    )
    again.add_argument(
        "--resume",
        action="store_true",
        help=f"continue from OUT/{CHECKPOINT_NAME} (a new run if there is none). Recipe and run "
        "options left out (--epochs, --lr, --seed, --amp...) are taken from the checkpoint; "
        "recipe options given must match it. The data is not stored, only checked: give the "
        "same --data, --val-size, --train-subset and --teacher options (other data is refused)",
    )


def _recipe_mismatch(path: Path, differences: dict[str, tuple[Any, Any]]) -> str:
    """The message for a resume whose recipe options differ from the checkpoint's, in flags."""

    def flag(name: str, value: Any) -> str:
        return flag_text(Recipe, name, value)

    given = "; ".join(
        f"{flag(k, b)} (checkpoint: {flag(k, a)})" for k, (a, b) in differences.items()
    )
    wanted = [flag(k, a) for k, (a, _) in differences.items()]
    listed = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} and {wanted[-1]}"
    return (
        f"cannot resume {path}: the recipe differs from the checkpoint's: {given}. To resume, "
        f"pass {listed} (recipe options left out come from the checkpoint), or start a new run "
        "with another --out"
    )


def _train_settings(
    args: argparse.Namespace, saved: TrainState | None, checkpoint: Path
) -> tuple[Recipe, RunOptions]:
    """The run's recipe and run options: the options given, the rest from ``saved`` (the
    checkpoint, when resuming) or the defaults. Whether the recipe matches the checkpoint is
    checked once, by fit (:class:`~cifarzoo.training.RecipeMismatchError`)."""
    recipe = given_settings(args, RECIPE_FLAGS)
    options = {
        "device": args.device,
        "quiet": args.quiet,
        "checkpoint_dir": checkpoint.parent,
        "resume": args.resume,
        "overwrite": args.overwrite,
        **given_settings(args, OPTION_FLAGS),
    }
    teachers = bool(getattr(args, "teacher", None))
    if saved is None:
        if teachers:
            recipe.setdefault("distill_weight", _TEACHER_DISTILL_WEIGHT)
        return Recipe(**recipe), RunOptions(**options)
    distilled = recipe.get("distill_weight", saved.recipe.distill_weight) > 0
    if distilled and not teachers:
        raise ValueError(
            f"cannot resume {checkpoint}: that run distilled from a teacher (distill_weight "
            f"{saved.recipe.distill_weight}); give the same --teacher options again, or start a "
            "new run with another --out"
        )
    if teachers and not distilled:
        raise ValueError(
            f"cannot resume {checkpoint}: that run trained without a teacher; drop --teacher, "
            "or start a new run with another --out"
        )
    recorded = {k: v for k, v in saved.options.items() if k in OPTION_FLAGS}
    return saved.recipe.replace(**recipe), RunOptions(**{**recorded, **options})


def _model_args(args: argparse.Namespace, saved: TrainState | None) -> dict[str, Any]:
    """The model's constructor arguments: ``--model-kwargs``, else the checkpoint's when
    resuming, else none. Whether given ones match the checkpoint's is checked once, by fit
    (:class:`~cifarzoo.training.ModelArgsMismatchError`)."""
    if hasattr(args, "model_kwargs"):
        return dict(args.model_kwargs)
    return dict((saved and saved.model_args) or {})


def _model_args_mismatch(e: ModelArgsMismatchError) -> str:
    """The message for a resume whose ``--model-kwargs`` differ from the checkpoint's."""
    wanted = shlex.join(model_kwargs_words(e.recorded))
    how = f"pass {wanted} or leave {MODEL_KWARGS_FLAG} out" if wanted else "leave it out"
    return (
        f"cannot resume {e.path}: the model's arguments differ from the checkpoint's: "
        f"{shlex.join(model_kwargs_words(e.given))} (checkpoint: {wanted or 'none'}). To "
        f"resume, {how} (it comes from the checkpoint), or start a new run with another --out"
    )


def _check_model_args(name: str, model_args: dict[str, Any]) -> None:
    """Refuse an argument the model does not take, naming the ones it does, or a value it
    refuses (the model is built on the meta device: no memory, no work)."""
    import torch

    from ..models import create_model, model_arg_names

    taken = model_arg_names(name)
    unknown = [k for k in model_args if k not in taken]
    if unknown:
        raise ValueError(
            f"{MODEL_KWARGS_FLAG}: {name} takes no argument {', '.join(map(repr, unknown))}; "
            f"its arguments: {', '.join(taken)}"
        )
    with torch.device("meta"):
        create_model(name, **model_args)


def _resume_hint(args: argparse.Namespace, out: Path) -> str:
    """The command that resumes this run: the original command line plus ``--resume``."""
    words: list[str] | None = getattr(args, "command_line", None)
    if words is None:  # not called through main(): the data options are unknown
        return (
            f"cifarzoo train {shlex.quote(args.model)} --out {shlex.quote(str(out))} --resume "
            "(with the same data options)"
        )
    out_words = (
        [] if any(w == "--out" or w.startswith("--out=") for w in words) else ["--out", str(out)]
    )
    resume = [] if "--resume" in words else ["--resume"]
    return shlex.join(["cifarzoo", *words, *out_words, *resume])


def run_train(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..training import DistEnv

    env = DistEnv.from_env()
    check_data_sizes(args.val_size, args.train_subset)
    resolve_device(args.device)  # a missing GPU is refused before any work
    if hasattr(args, "model_kwargs"):
        _check_model_args(args.model, dict(args.model_kwargs))
    out = _out_folder(args, env.distributed)
    with run_lock(out) if env.is_main else contextlib.nullcontext():
        return _train_into(args, out, env)


def _out_folder(args: argparse.Namespace, distributed: bool) -> Path:
    """The run folder: ``--out`` (checked: a folder holding a run needs --resume or
    --overwrite), else a new ``runs/MODEL/version_N``."""
    if args.out is None:
        if args.resume:
            raise ValueError(
                "--resume continues the run in an --out folder: pass --out with the folder of "
                f"the run to continue (e.g. {Path('runs') / args.model / 'version_0'})"
            )
        if distributed:
            raise ValueError(
                "under torchrun, pass --out: every process must write into the same folder"
            )
        check_out_folder(Path("runs"), "the default run folder")
        return new_version_folder(Path("runs") / args.model)
    out = Path(args.out)
    check_out_folder(out, "--out")
    check_run_folder(out, resume=args.resume, overwrite=args.overwrite, words=CLI_WORDS)
    return out


def _train_into(args: argparse.Namespace, out: Path, env: Any) -> int:
    import torch

    from ..models import create_model
    from ..training import (
        ModelArgsMismatchError,
        NonFiniteLossError,
        RecipeMismatchError,
        TrainState,
        fit,
    )
    from ..training.options import TrainingSetup

    checkpoint = out / CHECKPOINT_NAME
    resuming = args.resume and checkpoint.is_file()
    # mapped, not read: fit reads the whole checkpoint again to resume
    saved = TrainState.read(checkpoint, mmap=True) if resuming else None
    recipe, options = _train_settings(args, saved, checkpoint)
    model_args = _model_args(args, saved)
    use_threads(args)
    teachers = [_parse_teacher(spec) for spec in getattr(args, "teacher", [])]
    teacher_models = [
        create_model(name, weights=weights) if weights else create_model(name, pretrained=True)
        for name, weights in teachers
    ]
    data = _training_data(args, recipe.seed)
    torch.manual_seed(recipe.seed)
    model = create_model(args.model, **model_args)
    if env.is_main:
        _announce(args, out, model, data, resuming)
    t0 = time.perf_counter()
    try:
        history = fit(
            model, data, recipe, options, teacher=teacher_models or None, model_args=model_args
        )
    except KeyboardInterrupt:
        if env.is_main:
            print(f"\ninterrupted; resume with: {_resume_hint(args, out)}", file=sys.stderr)
        return 130
    except RecipeMismatchError as e:
        raise ValueError(_recipe_mismatch(e.path, e.differences)) from e
    except ModelArgsMismatchError as e:
        raise ValueError(_model_args_mismatch(e)) from e
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    described = [
        _teacher_description(name, model, from_file=weights is not None)
        for (name, weights), model in zip(teachers, teacher_models, strict=True)
    ]
    setup = TrainingSetup(recipe, options).to_dict()
    extra = {"val_size": args.val_size, "teacher": described or None, "model_args": model_args}
    write_run(
        out,
        args.model,
        model,
        history,
        data,
        setup,
        wall_seconds=wall,
        extra=extra,
        quiet=args.quiet,
    )
    return 0


def _training_data(args: argparse.Namespace, seed: int) -> CIFAR10Data:
    """The data of ``--data``, less ``--val-size`` held out, cut to ``--train-subset``."""
    from ..data import load_cifar10, stratified_split

    data = load_cifar10(
        args.data, download=args.download, val_size=args.val_size, seed=seed, name=args.data_name
    )
    if 0 < args.train_subset < len(data.train):
        _, keep = stratified_split(data.train.labels, args.train_subset, seed=seed)
        data = dataclasses.replace(data, train=data.train.subset(keep))
    return data


def _announce(
    args: argparse.Namespace, out: Path, model: Any, data: CIFAR10Data, resuming: bool
) -> None:
    print(f"writing the run to {out}", flush=True)
    if not args.quiet:
        print(
            f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
            f"{data.describe()}"
            + (" (resuming: the recipe not given comes from the checkpoint)" if resuming else "")
        )


def _parse_teacher(spec: str) -> tuple[str, str | None]:
    """``MODEL`` or ``MODEL=WEIGHTS`` (a model.safetensors file or a run folder)."""
    name, _, weights = spec.partition("=")
    return name, weights or None


def _teacher_description(name: str, model: Any, *, from_file: bool) -> str:
    """How metrics.json names a teacher: the model and the file (with its sha256) that its
    pretrained_cfg says it was loaded from, a run folder already resolved to its weights."""
    if not from_file:
        return f"{name} (pretrained)"
    from ..checkpoint import sha256_file

    path = Path(model.pretrained_cfg["file"])
    return f"{name} ({path.name}, sha256 {sha256_file(path)})"
