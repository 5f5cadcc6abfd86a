#!/usr/bin/env python
"""Check cifarzoo as installed from its wheel: every shipped weights loads and runs, and evaluates
to the test accuracy its metadata records.

``scripts/check_wheel.sh`` runs it in a fresh virtual environment, from outside the checkout.
The weights checked are those of the installed package (its ``cifarzoo/weights`` folder), so
weights installed later are checked with no change here. For each of them:

- ``cifarzoo.<arch>(pretrained=True)`` loads the default tag, ``timm.create_model(
  "cifar_<arch>.<tag>", pretrained=True)`` every tag (the default one giving the same tensors);
- the loaded parameters are float32 (also from float16 files), and a forward pass of two images
  gives ten finite logits each;
- with ``--data DIR``: ``cifarzoo eval ARCH.TAG --pretrained --data DIR --data-name NAME`` (NAME
  the data the metadata names) prints the single-pass test accuracy the metadata records, to
  the two decimals the model table shows.

    python scripts/check_wheel.py [--data DIR] [--package-under PREFIX]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch

import cifarzoo
from cifarzoo.formats import percent
from cifarzoo.pretrained import PACKAGED_WEIGHTS_DIR, list_weights, read_weights_meta, weights_name
from cifarzoo.runs import recorded_accuracy

_SINGLE_PASS = re.compile(r"^single pass: (\S+%)", re.MULTILINE)


def shipped_weights() -> dict[str, list[str]]:
    """``{arch: tags}`` of the weights whose files ship in the installed package, each
    architecture's default tag first."""
    shipped: dict[str, list[str]] = {}
    for entry in list_weights():
        if entry.shipped:
            shipped.setdefault(entry.arch, []).append(entry.tag)
    return shipped


def unlisted_files() -> list[str]:
    """The weights files of the package that no metadata of a cifarzoo model names."""
    named = {str(entry.meta["file"]) for entry in list_weights() if entry.shipped}
    return sorted(p.name for p in PACKAGED_WEIGHTS_DIR.glob("*.safetensors") if p.name not in named)


def load_problems(arch: str, tags: Sequence[str]) -> list[str]:
    """What is wrong with loading and running ``arch``'s weights of each of ``tags`` (the
    default first)."""
    default = getattr(cifarzoo, arch)(pretrained=True)
    loaded = default.pretrained_cfg.get("tag")
    problems = [] if loaded == tags[0] else [f"cifarzoo.{arch}(pretrained=True) loads {loaded}"]
    for tag in tags:
        name = weights_name(arch, tag)
        model = timm.create_model(f"cifar_{name}", pretrained=True).eval()
        found = _model_problems(name, model)
        if tag == tags[0]:
            same = zip(default.state_dict().values(), model.state_dict().values(), strict=True)
            if not all(torch.equal(a, b) for a, b in same):
                found.append(f"cifarzoo.{arch}(pretrained=True) and cifar_{name} differ")
        print(f"{name}: " + ("; ".join(found) if found else "loads in float32, runs"))
        problems += found
    return problems


def _model_problems(name: str, model: torch.nn.Module) -> list[str]:
    """The loaded weights are not float32, or a forward pass gives no ten finite logits."""
    problems = []
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        problems.append(f"{name}: parameters loaded as {sorted(map(str, dtypes))}")
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    if logits.shape != (2, 10) or not bool(torch.isfinite(logits).all()):
        problems.append(f"{name}: a forward pass gave logits of shape {tuple(logits.shape)}")
    return problems


def eval_problem(name: str, meta: dict[str, Any], data: Path, command: Sequence[str]) -> str | None:
    """Run ``cifarzoo eval NAME --pretrained`` on ``data`` (named as the metadata names the data
    its accuracy was measured on) and compare the single-pass test accuracy it prints with the
    metadata's."""
    metrics = meta.get("metrics") or {}
    expected = percent(recorded_accuracy(metrics).test)
    args = [*command, "eval", name, "--pretrained", "--data", str(data)]
    args += ["--data-name", str(metrics.get("data"))]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    shown = _SINGLE_PASS.search(done.stdout)
    summary = "\n".join(
        line for line in done.stdout.splitlines() if "TTA" in line or "pass" in line
    )
    print(f"$ cifarzoo {shlex.join(args[len(command) :])}\n{summary}")
    if done.returncode != 0 or shown is None:
        return f"cifarzoo eval {name} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    if shown.group(1) != expected:
        return f"{name}: cifarzoo eval prints {shown.group(1)}, its metadata records {expected}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="CIFAR-10 root: also evaluate every weights")
    parser.add_argument(
        "--package-under", type=Path, help="fail unless cifarzoo is imported from this folder"
    )
    parser.add_argument(
        "--cifarzoo",
        type=shlex.split,
        default=[str(Path(sys.executable).parent / "cifarzoo")],
        help="the command line of cifarzoo (default: its console script beside this Python)",
    )
    args = parser.parse_args(argv)
    where = Path(cifarzoo.__file__).resolve()
    print(f"cifarzoo {cifarzoo.__version__} from {where.parent}")
    if args.package_under and not where.is_relative_to(args.package_under.resolve()):
        print(f"FAILED: cifarzoo is imported from {where}, not from {args.package_under}")
        return 1
    shipped = shipped_weights()
    problems = [f"{name}: no metadata names it" for name in unlisted_files()]
    if not shipped:
        problems.append(f"no shipped weights in {PACKAGED_WEIGHTS_DIR}")
    for arch, tags in shipped.items():
        problems += load_problems(arch, tags)
        for tag in tags if args.data else ():
            meta = read_weights_meta(arch, tag=tag) or {}
            problem = eval_problem(weights_name(arch, tag), meta, args.data, args.cifarzoo)
            problems += [problem] if problem else []
    count = sum(map(len, shipped.values()))
    if problems:
        print("\nFAILED:\n" + "\n".join(f"- {p}" for p in problems))
        return 1
    evaluated = ", and evaluate to their recorded test accuracy" if args.data else ""
    print(f"\nall {count} shipped weights load and run{evaluated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
