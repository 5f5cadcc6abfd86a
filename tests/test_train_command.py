"""``train_command``: the ``cifarzoo train`` command it writes trains the recipe it was given,
read back by the real parser; the docs list it for every shipped weights."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cifarzoo.cli import build_parser
from cifarzoo.cli.train import _train_settings, train_command, weights_train_command
from cifarzoo.data import NUM_TRAIN
from cifarzoo.pretrained import list_weights
from cifarzoo.runs import recorded_model_args
from cifarzoo.training import Recipe, RunOptions


def _parsed(command: str) -> argparse.Namespace:
    words = shlex.split(command)
    assert words[:2] == ["cifarzoo", "train"], words
    return build_parser().parse_args(words[1:])


def _read_back(command: str) -> tuple[argparse.Namespace, Recipe, RunOptions]:
    args = _parsed(command)
    recipe, options = _train_settings(args, None, Path(args.out or "runs/x") / "checkpoint.pt")
    return args, recipe, options


def test_every_shipped_weights_recipe_survives_the_command_line() -> None:
    entries = list_weights()
    assert entries
    for entry in entries:
        metrics = entry.meta["metrics"]
        recorded: dict[str, Any] = metrics["recipe"]
        val_size = NUM_TRAIN - metrics["train_images"]
        command = weights_train_command(entry, out="o")
        args, recipe, options = _read_back(command)
        assert (args.model, args.val_size, args.out) == (entry.arch, val_size, "o")
        given = dict(getattr(args, "model_kwargs", []))
        assert given == recorded_model_args(metrics), command
        assert recipe == Recipe.from_dict(recorded), command
        defaults = RunOptions()
        for name in ("tta_flip", "tta_translate"):
            assert getattr(options, name) == recorded.get(name, getattr(defaults, name)), command


def test_defaults_need_no_flags() -> None:
    assert train_command("resnet20", Recipe(), val_size=5000) == (
        "cifarzoo train resnet20 --val-size 5000"
    )


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.integers(1, 200),
    batch_size=st.integers(1, 4096),
    lr=st.floats(1e-6, 10.0, allow_nan=False),
    label_smoothing=st.floats(0.0, 0.5),
    cutout=st.integers(0, 31),
    flip=st.booleans(),
    schedule=st.sampled_from(["onecycle", "cosine"]),
    grad_clip=st.none() | st.floats(0.01, 100.0),
    seed=st.integers(0, 2**31 - 1),
    tta_translate=st.booleans(),
)
def test_any_recipe_survives_the_command_line(tta_translate: bool, **fields: Any) -> None:
    recipe = Recipe(**fields)
    command = train_command("lenet", recipe, val_size=0, options={"tta_translate": tta_translate})
    _, read, options = _read_back(command)
    assert read == recipe, command
    assert options.tta_translate == tta_translate


_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.lists(st.integers(-3, 3), max_size=4)
)


@settings(max_examples=80, deadline=None)
@given(model_args=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True), _VALUES))
def test_any_model_arguments_survive_the_command_line(model_args: dict[str, Any]) -> None:
    command = train_command("resnet20", Recipe(), val_size=0, model_args=model_args)
    args = _parsed(command)
    assert dict(getattr(args, "model_kwargs", [])) == model_args, command
    assert args.model == "resnet20" and args.val_size == 0


def test_readme_trains_resnet20_with_its_shipped_recipe() -> None:
    """The README's `cifarzoo train resnet20` example is the shipped weights' command."""
    entry = next(e for e in list_weights(arch="resnet20") if e.default)
    command = weights_train_command(entry, out="runs/resnet20")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"\n{command}   # the shipped weights' recipe\n" in readme, command
