"""One GPU session, planned ahead: pick the recipe on a validation split, train the big models.

What to run and how to choose is fixed here, before any result is seen:

1. **Sweep.** Every candidate in ``CANDIDATES`` (changes to ``benchmarks/gpu_recipe.py``'s recipe)
   trains ResNet-18 for ``--sweep-epochs`` with 5,000 training images held out. The candidates run
   side by side (``--parallel``) on the one GPU: their timings mean nothing, their accuracies do.
2. **Choice.** The candidate with the highest validation accuracy wins; a tie goes to the one
   listed first (the simpler one). The test set plays no part.
3. **Finals.** The winner trains each of ``--final-models`` with the same ``--val-size`` images
   held out (so every test accuracy has a validation accuracy beside it, on the split the recipe
   was chosen on), one at a time (so the training times are real), in the order given, storing
   float16 weights (``--weights-dtype float16``: evaluated after the rounding); with
   ``--budget``, a final that would not end within that many seconds of the start (by
   ``SECONDS_PER_EPOCH``) is skipped. Accuracies are single forward passes in float32; the TTA
   ones are recorded beside them (``benchmarks/gpu_recipe.py``).

Everything lands in ``--out``: ``sweep/<candidate>/<model>/`` and ``final/<model>/`` run folders
(as ``cifarzoo train`` writes them), and ``session.json`` with every candidate's accuracies, the
choice and each final's test and validation accuracy (single pass, and TTA) and seconds, written
after each step so that a session cut short still reports what it finished.

    python benchmarks/gpu_sweep.py --data ROOT --out runs/session
    python benchmarks/gpu_sweep.py --smoke --out /tmp/session     # the whole path on a CPU

On any machine with a CUDA GPU; ``--data`` unset reads cifarzoo's default data root
(``$CIFARZOO_DATA``, else ``~/.cache/cifarzoo``). ``scripts/gpu_session.sh`` runs it and packs the
finals' weights into parts that can be copied back from a machine whose file transfers are
limited (``scripts/gpu_bundle.py``); that script's header and CONTRIBUTING.md give the commands
that check and install the weights afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarzoo.checkpoint import save_json

RECIPE = Path(__file__).resolve().with_name("gpu_recipe.py")

# Why these: the 30-epoch runs on the H200 ended near 98% train accuracy and 91% test
# (over-fitting: cutout), and Muon lifted ResNet-20 by 0.75 points on the CPU at batch 64,
# where muon_lr 0.01 won; at batch 512 a run takes 8 times fewer steps, hence larger rates.
CANDIDATES: dict[str, list[str]] = {
    "base": [],
    "cutout8": ["--cutout", "8"],
    "muon0.02": ["--muon-lr", "0.02"],
    "muon0.04": ["--muon-lr", "0.04"],
    "muon0.02-cutout8": ["--muon-lr", "0.02", "--cutout", "8"],
    "muon0.04-cutout8": ["--muon-lr", "0.04", "--cutout", "8"],
}

# What session.json records of each final (from its summary.json)
FINAL_KEYS = ("test_accuracy", "val_accuracy", "tta_test_accuracy", "tta_val_accuracy", "seconds")

# Measured on one H200, eager, batch 512, data on the GPU, evaluation included (with Muon's
# orthogonalization, assumed 10% more): what --budget plans the finals with.

SECONDS_PER_EPOCH = {"resnet18": 1.4 * 1.1, "seresnet18": 2.0 * 1.1, "densenet121": 7.1 * 1.1}


@dataclass
class Session:
    path: Path
    sweep: dict[str, dict[str, Any]] = field(default_factory=dict)
    choice: str | None = None
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def save(self) -> None:
        record = {
            "candidates": CANDIDATES,
            "sweep": self.sweep,
            "choice": self.choice,
            "choice_args": CANDIDATES[self.choice] if self.choice else None,
            "finals": self.finals,
            "skipped": self.skipped,
        }
        save_json(record, self.path)


def choose(val_accuracy: dict[str, float | None]) -> str:
    """The candidate with the highest validation accuracy; ties go to the earliest listed."""
    scored = [(name, acc) for name, acc in val_accuracy.items() if acc is not None]
    if not scored:
        raise SystemExit("no sweep run finished with a validation accuracy: nothing to choose")
    best = max(acc for _, acc in scored)
    return next(name for name, acc in scored if acc == best)


def recipe_command(
    args: argparse.Namespace, out: Path, models: list[str], extra: list[str]
) -> list[str]:
    cmd = [sys.executable, str(RECIPE), "--out", str(out), "--models", *models, "--quiet"]
    cmd += ["--tta-translate", "--seed", str(args.seed)]
    if args.smoke:
        cmd.append("--smoke")
    else:
        cmd += ["--no-compile"] if not args.compile else []
    if args.data:
        cmd += ["--data", args.data]
    if args.data_name:
        cmd += ["--data-name", args.data_name]
    return cmd + extra


def run_result(out: Path, returncode: int, *keys: str) -> dict[str, Any]:
    """``keys`` of the one row of the ``summary.json`` a gpu_recipe.py run wrote into ``out``."""
    path = out / "summary.json"
    rows = json.loads(path.read_text()) if path.is_file() and returncode == 0 else []
    return {"returncode": returncode, **{key: rows[0][key] if rows else None for key in keys}}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", help="root holding cifar-10-batches-py ($CIFARZOO_DATA by default)")
    ap.add_argument(
        "--data-name",
        help="the data's name in the results (default: 'CIFAR-10' for the official release, "
        "recognised by its md5 sums, else 'CIFAR-10 (unverified copy)')",
    )
    ap.add_argument("--out", default="runs/session")
    ap.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    ap.add_argument("--sweep-model", default="resnet18")
    ap.add_argument("--sweep-epochs", type=int, default=30)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--parallel", type=int, default=6, help="sweep runs at a time on the GPU")
    ap.add_argument("--final-models", nargs="+", default=["resnet18", "seresnet18", "densenet121"])
    ap.add_argument("--final-epochs", type=int, default=30)
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole session: a final starts only if its estimated time "
        "(SECONDS_PER_EPOCH) still fits",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile (eager by default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--smoke", action="store_true", help="gpu_recipe.py --smoke for every run (CPU, tiny)"
    )
    args = ap.parse_args()
    if args.parallel < 1:
        ap.error("--parallel must be at least 1")

    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    session = Session(out / "session.json")
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    pending = list(args.candidates)
    running: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            run_dir = out / "sweep" / name
            run_dir.mkdir(parents=True, exist_ok=True)
            extra = ["--epochs", str(args.sweep_epochs), "--val-size", str(args.val_size)]
            cmd = recipe_command(args, run_dir, [args.sweep_model], extra + CANDIDATES[name])
            log = (run_dir / "log.txt").open("wb")
            running[name] = (
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                log,
            )
        time.sleep(0.5)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            result = run_result(
                out / "sweep" / name, proc.returncode, "val_accuracy", "test_accuracy"
            )
            session.sweep[name] = result
            session.save()
            print(f"sweep {name:<18} val {result['val_accuracy']} (exit {proc.returncode})")
            if proc.returncode != 0:  # its log stays on the machine: show why here
                tail = (out / "sweep" / name / "log.txt").read_text(errors="replace")
                print("\n".join(tail.splitlines()[-15:]))

    session.choice = choose({n: session.sweep[n]["val_accuracy"] for n in args.candidates})
    session.save()
    print(f"chosen on validation: {session.choice} {CANDIDATES[session.choice]}")

    for model in args.final_models:
        estimate = SECONDS_PER_EPOCH.get(model, 0.0) * args.final_epochs
        if args.budget is not None and time.perf_counter() - start + estimate > args.budget:
            session.skipped.append(model)
            session.save()
            continue
        extra = ["--epochs", str(args.final_epochs), "--val-size", str(args.val_size)]
        extra += ["--weights-dtype", "float16", *CANDIDATES[session.choice]]
        proc = subprocess.run(recipe_command(args, out / "final", [model], extra), env=env)
        session.finals[model] = run_result(out / "final", proc.returncode, *FINAL_KEYS)
        session.save()

    print(
        f"\n{'model':<14} {'test acc':>9} {'val acc':>9} {'train s':>8}   "
        f"(recipe: {session.choice}; single pass)"
    )
    for model, row in session.finals.items():
        acc, val, secs = row["test_accuracy"], row["val_accuracy"], row["seconds"]
        acc_cell = "failed" if acc is None else f"{100 * acc:.2f}%"
        val_cell = "--" if val is None else f"{100 * val:.2f}%"
        print(f"{model:<14} {acc_cell:>9} {val_cell:>9} {secs or 0:8.0f}")
    for model in session.skipped:
        print(f"{model:<14} {'skipped':>9} (would not fit in --budget {args.budget:.0f} s)")


if __name__ == "__main__":
    main()
