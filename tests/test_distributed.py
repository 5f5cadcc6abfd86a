"""fit() under torchrun: 2 CPU processes (gloo) end with the weights of one, same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TinyNet, synthetic_split
from flat_fit import fit

from cifarzoo.checkpoint import CHECKPOINT_NAME
from cifarzoo.data import Split

RECIPE = dict(
    epochs=2,
    batch_size=32,
    lr=0.05,
    warmup_epochs=0.5,
    ema_decay=0.9,
    tta_flip=True,
    device="cpu",
    amp=False,  # fp32 on every CPU (auto is bf16 on CPUs with bf16 instructions)
    quiet=True,
)

SCRIPT = """
import json, os, sys
import torch
from conftest import TinyNet, synthetic_split
from cifarzoo.data import Split
from flat_fit import fit

torch.set_num_threads(1)
torch.manual_seed(0)
model = TinyNet(bn=False, dropout=0.0)
out = sys.argv[1]
h = fit(model, synthetic_split(192, seed=0), eval_data=Split(*synthetic_split(90, seed=1)),
        checkpoint_dir=os.path.join(out, "ckpt"), **json.loads(sys.argv[2]))
rank = int(os.environ["RANK"])
torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
with open(os.path.join(out, f"history{rank}.json"), "w") as f:
    json.dump(h.to_dict(), f)
"""


@pytest.mark.slow(seconds=10)
@pytest.mark.parametrize("optimizer", [{}, {"muon_lr": 0.02}], ids=["sgd", "muon"])
def test_two_gloo_processes_match_one(tmp_path: Path, optimizer: dict[str, float]) -> None:
    recipe = {**RECIPE, **optimizer}
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
        json.dumps(recipe),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    torch.manual_seed(0)
    single = TinyNet(bn=False, dropout=0.0)
    h = fit(
        single,
        synthetic_split(192, seed=0),
        eval_data=Split(*synthetic_split(90, seed=1)),
        **recipe,
    )  # type: ignore[arg-type]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # Muon's Newton-Schulz iterations amplify the order of float sums: the reference's thread
    # count alone (1 or 2) moves a weight by 2e-5
    atol = 5e-5 if optimizer else 1e-5
    for k, v in single.state_dict().items():
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # DDP keeps the replicas identical
        torch.testing.assert_close(ranks[0][k], v, rtol=1e-4, atol=atol)
    hd = json.loads((tmp_path / "history0.json").read_text())
    # evaluation is sharded over the ranks and all-reduced: the same counts as one process
    assert hd["eval_acc"] == pytest.approx(h.eval_acc, abs=1 / 90 + 1e-9)
    assert hd["step_loss"] == pytest.approx(h.step_loss, rel=1e-3, abs=1e-4)
    assert (tmp_path / "ckpt" / CHECKPOINT_NAME).is_file()
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [CHECKPOINT_NAME]
