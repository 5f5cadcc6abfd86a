"""The lab's comparison, converged: plain vs residual vs dense vs SE networks, one recipe.

Trains each model with the same recipe, seed and held-out validation split, one after the other,
into ``OUT/<model>/`` (a ``cifarzoo train``-style run folder), and records every layer's gradient
norm from the first step on (``grad_flow.json``). Every run resumes: a run killed at any point
continues from its last epoch checkpoint, bit-identically on a CPU, with its gradient records cut
back to that checkpoint; a finished run (``metrics.json`` present) is skipped. The checkpoint of a
finished run is removed (its weights are in ``model.safetensors``).

Residual and plain networks are initialised the same way here (``zero_init_residual=False``: a
plain block whose last BN started at zero would output zeros), so the comparison shows what the
shortcuts do and not what the initialisation does.

    python benchmarks/lab_comparison.py --data DATA --data-name "CIFAR-10 (JPEG mirror)" \\
        --out benchmarks/comparison/runs --threads 1
    cifarzoo compare --runs benchmarks/comparison/runs/* --data DATA --out reports/lab

The lab's big four on a GPU (minutes on one H200; the recipe is the same):

    python benchmarks/lab_comparison.py --data DATA --device cuda \\
        --models lenet resnet18 densenet121 seresnet18 --out runs/lab-gpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cifarzoo.checkpoint import CHECKPOINT_NAME, save_json
from cifarzoo.cli.options import add_common_options, use_threads
from cifarzoo.data import CIFAR10Data, load_cifar10
from cifarzoo.instrument import GradientFlowRecorder
from cifarzoo.models import create_model
from cifarzoo.runs import (
    GRAD_FLOW_FILE,
    MARKER,
    is_finished,
    read_grad_flow,
    recorded_model_args,
    run_lock,
    save_grad_flow,
    write_run,
)
from cifarzoo.training import Recipe, RunOptions, TrainState, fit
from cifarzoo.training.options import TrainingSetup

#: The order the runs are made in: the depth-20 and depth-56 plain/residual pairs first (the
#: degradation result), then SE and dense connections.
MODELS = (
    "lenet",
    "plain20",
    "resnet20",
    "plain56",
    "resnet56",
    "seresnet20",
    "densenet_bc_100_k12",
)
#: The one recipe: fit's defaults (SGD + Nesterov, batch 128, peak lr 0.1 after a 2-epoch warm-up
#: then linear decay, weight decay 5e-4, label smoothing 0.1, crops + flips) for 15 epochs, with
#: no EMA so that the curves, the test figures and the gradients see the same weights.
RECIPE = Recipe(epochs=15, ema_decay=0.0, seed=0)
#: How the runs are made: no TTA (as the gradients see the weights); fp32 (bf16 autocast is
#: slower than fp32 on CPUs without AMX, and a resume must keep it to stay bit-identical).
OPTIONS = RunOptions(tta_flip=False, amp=False, channels_last=False, resume=True)
#: Memory layout by model, the fastest on a CPU: channels_last trains the DenseNet ~20% faster
#: there and the ResNets slower. It changes the speed, not the recipe (only float rounding).
CHANNELS_LAST = ("densenet_bc_100_k12",)
VAL_SIZE = 5000
GRAD_EVERY = 25


def model_args(name: str) -> dict[str, Any]:
    """Constructor arguments: the same initialisation for residual and plain networks."""
    return {"zero_init_residual": False} if "resnet" in name else {}


@dataclass(frozen=True)
class Lab:
    """One comparison: its models (in the order they train), the one recipe and run options they
    share, the models trained channels_last, each model's constructor arguments (how it starts:
    ``zero_init_residual``, ``conv_init``) and the models trained with ``torch.compile``."""

    models: tuple[str, ...]
    recipe: Recipe
    options: RunOptions
    channels_last: tuple[str, ...] = ()
    model_args: Callable[[str], dict[str, Any]] = field(default=lambda name: {})
    compiled: tuple[str, ...] = ()


#: The CIFAR-native comparison (plain vs residual at depths 20 and 56, SE, dense).
LAB = Lab(MODELS, RECIPE, OPTIONS, CHANNELS_LAST, model_args)


class SavedGradientFlow(GradientFlowRecorder):
    """A :class:`GradientFlowRecorder` that writes its records to the run folder's
    ``grad_flow.json`` after each one, continuing the file's records up to ``start_step`` (the
    resumed checkpoint's step)."""

    def __init__(self, model: torch.nn.Module, folder: Path, every: int, start_step: int) -> None:
        super().__init__(model, every=every, start_step=start_step)
        self.folder = folder
        saved = read_grad_flow(folder) if start_step else None
        if saved is not None:
            if saved["layers"] != self.layers or saved["every"] != every:
                path = folder / GRAD_FLOW_FILE
                raise ValueError(f"{path} records other layers or another interval; remove it")
            kept = [i for i, s in enumerate(saved["steps"]) if s < start_step]
            self.steps = [saved["steps"][i] for i in kept]
            self.norms = [saved["norms"][i] for i in kept]

    def record(self, step: int | None = None) -> bool:
        made = super().record(step)
        if made:
            save_grad_flow(self.folder, self.to_dict())
        return made


def completed_steps(checkpoint: Path) -> int:
    """Optimizer steps a checkpoint has done (0 when there is none)."""
    if not checkpoint.is_file():
        return 0
    state = TrainState.read(checkpoint, mmap=True)
    return int(state.scheduler["last_epoch"])


def recipe(epochs: int | None = None, lab: Lab = LAB) -> Recipe:
    return lab.recipe if epochs is None else lab.recipe.replace(epochs=epochs)


def options(
    name: str, folder: Path, *, device: str | None, quiet: bool, lab: Lab = LAB
) -> RunOptions:
    """The run options of model ``name``, checkpointing into ``folder``."""
    return lab.options.replace(
        channels_last=name in lab.channels_last,
        compile=name in lab.compiled,
        checkpoint_dir=folder,
        device=device,
        quiet=quiet,
    )


def train_one(
    name: str,
    data: CIFAR10Data,
    out: Path,
    *,
    epochs: int | None = None,
    device: str | None = None,
    quiet: bool = False,
    lab: Lab = LAB,
) -> Path:
    """Train (or resume, or skip when finished) the run ``out/name``; returns its folder."""
    folder = out / name
    if is_finished(folder):
        print(f"{name}: finished already ({folder / MARKER})", flush=True)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder):  # a second process on the same run fails at once
        _train(name, data, folder, epochs=epochs, device=device, quiet=quiet, lab=lab)
    return folder


#: How a run folder's model was built (its constructor arguments), written when the run starts:
#: a resume loads the weights, so a resume with other flags would only mislabel the run.
SETTING_FILE = "lab_setting.json"


def setting(name: str, lab: Lab) -> dict[str, Any]:
    return {"model_args": lab.model_args(name)}


def check_setting(folder: Path, wanted: dict[str, Any]) -> None:
    """Record ``wanted`` in ``folder`` when its run starts; refuse to go on with another."""
    path = folder / SETTING_FILE
    if not path.is_file():
        save_json(wanted, path)
        return
    recorded = {"model_args": recorded_model_args(json.loads(path.read_text()))}
    if recorded != wanted:
        raise SystemExit(
            f"{folder} was started with {recorded}, not {wanted}: resume it with the lab it "
            "started with, or give another --out"
        )


def build_model(name: str, lab: Lab, seed: int) -> torch.nn.Module:
    """Model ``name`` as ``lab`` builds it, from ``seed``."""
    torch.manual_seed(seed)
    return create_model(name, **lab.model_args(name))


def _train(
    name: str,
    data: CIFAR10Data,
    folder: Path,
    *,
    epochs: int | None,
    device: str | None,
    quiet: bool,
    lab: Lab,
) -> None:
    config = recipe(epochs, lab)
    run = options(name, folder, device=device, quiet=quiet, lab=lab)
    extra = lab.model_args(name)
    check_setting(folder, setting(name, lab))
    model = build_model(name, lab, config.seed)
    start = completed_steps(folder / CHECKPOINT_NAME)
    print(f"{name}: {data.describe()}; from step {start}; into {folder}", flush=True)
    t0 = time.perf_counter()
    with SavedGradientFlow(model, folder, GRAD_EVERY, start):
        history = fit(model, data, config, run, model_args=extra)
    write_run(
        folder,
        name,
        model,
        history,
        data,
        TrainingSetup(config, run).to_dict(),
        wall_seconds=time.perf_counter() - t0,
        extra={
            "val_size": None if data.val is None else len(data.val),
            "model_args": extra,
            "threads": torch.get_num_threads(),
            "grad_flow": GRAD_FLOW_FILE,
        },
        quiet=True,
    )
    (folder / CHECKPOINT_NAME).unlink()


def main(argv: list[str] | None = None, lab: Lab = LAB, doc: str | None = __doc__) -> int:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    add_common_options(p, data_required=True)
    p.add_argument("--out", required=True, help="folder of the run folders")
    p.add_argument("--models", nargs="+", default=list(lab.models))
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    use_threads(args)
    data = load_cifar10(args.data, val_size=VAL_SIZE, seed=lab.recipe.seed, name=args.data_name)
    for name in args.models:
        train_one(name, data, Path(args.out), device=args.device, quiet=args.quiet, lab=lab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
