"""benchmarks/lab_comparison.py: resumable runs with gradient records, read back by compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import load_script

import cifarzoo
from cifarzoo.compare import GRAD_FLOW_FILE, compare, degradation_rows, findings, synthetic_data

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lab_comparison.py"

pytest.importorskip("matplotlib")


def test_saved_gradient_flow_continues_the_records_up_to_the_checkpoint(tmp_path: Path) -> None:
    lab = load_script(SCRIPT)
    model = cifarzoo.lenet()
    path = tmp_path / GRAD_FLOW_FILE
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def steps(recorder: object, n: int) -> None:
        with recorder:  # type: ignore[attr-defined]
            for _ in range(n):
                opt.zero_grad()
                model(torch.randn(2, 3, 32, 32)).sum().backward()
                opt.step()

    steps(lab.SavedGradientFlow(model, tmp_path, every=2, start_step=0), 7)
    assert json.loads(path.read_text())["steps"] == [0, 2, 4, 6]
    # killed after step 6, resumed from a checkpoint at step 4: records from step 4 on are redone
    resumed = lab.SavedGradientFlow(model, tmp_path, every=2, start_step=4)
    assert resumed.steps == [0, 2]
    steps(resumed, 3)
    assert json.loads(path.read_text())["steps"] == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="another interval"):
        lab.SavedGradientFlow(model, tmp_path, every=3, start_step=4)


def test_same_initialisation_for_residual_and_plain_networks() -> None:
    lab = load_script(SCRIPT)
    assert (
        lab.model_args("resnet56") == lab.model_args("seresnet20") == {"zero_init_residual": False}
    )
    assert lab.model_args("plain56") == lab.model_args("lenet") == {}

    def layout(name: str) -> bool:
        return bool(lab.options(name, Path("run"), device=None, quiet=True).channels_last)

    assert layout("densenet_bc_100_k12") and not layout("resnet20")
    assert lab.recipe().lr == 0.1 and lab.recipe(3).epochs == 3


def test_the_lab_four_compile_densenet121_only_and_share_one_recipe() -> None:
    lab = load_script(SCRIPT)  # lab_four imports it by name
    four = load_script(SCRIPT.with_name("lab_four.py")).LAB_FOUR
    runs = {
        name: lab.options(name, Path("run"), device=None, quiet=True, lab=four)
        for name in four.models
    }
    assert {name for name, run in runs.items() if run.compile} == {"densenet121"}
    assert all(run.channels_last and run.amp for run in runs.values())
    assert lab.recipe(lab=four).cutout == 8 and lab.recipe(lab=four).epochs == 30


def test_the_lab_four_start_from_pytorchs_default_initialisation() -> None:
    """PyTorch's default convolution init (uniform within 1/sqrt(fan_in)) has a sixth of the
    squared norm of cifarzoo's Kaiming fan-out one on same-width 3x3 convolutions; the
    lab four's residual branches start unzeroed; both builds are reproducible from the seed."""
    lab = load_script(SCRIPT)
    four = load_script(SCRIPT.with_name("lab_four.py"))
    own = lab.build_model("resnet18", four.LAB_FOUR_KAIMING, 0)
    reference = lab.build_model("resnet18", four.LAB_FOUR, 0)
    mine, theirs = own.layer1[0].conv1.weight.detach(), reference.layer1[0].conv1.weight.detach()
    assert theirs.abs().max() <= theirs[0].numel() ** -0.5 < mine.abs().max()
    assert 5 < float(mine.square().sum() / theirs.square().sum()) < 7
    assert not own.layer1[0].bn2.weight.any() and bool(reference.layer1[0].bn2.weight.eq(1).all())
    again = lab.build_model("resnet18", four.LAB_FOUR, 0)
    pairs = zip(reference.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_run_goes_on_only_with_the_setting_it_started_with(tmp_path: Path) -> None:
    lab = load_script(SCRIPT)
    four = load_script(SCRIPT.with_name("lab_four.py"))
    started = lab.setting("resnet18", four.LAB_FOUR)
    lab.check_setting(tmp_path, started)
    assert json.loads((tmp_path / lab.SETTING_FILE).read_text()) == started
    lab.check_setting(tmp_path, started)  # resumed alike
    with pytest.raises(SystemExit, match=r"started with .*resume it with the lab it started with"):
        lab.check_setting(tmp_path, lab.setting("resnet18", four.LAB_FOUR_KAIMING))
    assert lab.setting("lenet", four.LAB_FOUR) == {"model_args": {}}
    # the candidate's resnet18 run started before the models took conv_init, recorded so
    earlier = {"conv_init": "pytorch-default", "model_args": {"zero_init_residual": False}}
    (tmp_path / lab.SETTING_FILE).write_text(json.dumps(earlier))
    lab.check_setting(tmp_path, started)


def test_the_rule_that_chose_the_lab_recipe_is_stated_as_its_run_recorded_it() -> None:
    """lab_four's docstring gives the validation accuracy of the cutout-12 resnet18 run that
    the rule fixed before the runs turned into cutout 8: the figure its history recorded."""
    lab = load_script(SCRIPT)
    four = load_script(SCRIPT.with_name("lab_four.py"))
    run = SCRIPT.parent / "lab_four_cutout12" / "resnet18"
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    last_val = history["eval_acc"][-1]
    assert history["eval_split"] == "val" and last_val == metrics["val_accuracy"]
    assert last_val < 0.918 and metrics["recipe"]["cutout"] == 12
    assert f"resnet18 ended at {100 * last_val:.2f}% validation accuracy" in " ".join(
        four.__doc__.split()
    )
    recipe = lab.recipe(lab=four.LAB_FOUR).to_dict()  # the one it became: cutout 8, else alike
    assert {k: metrics["recipe"][k] for k in recipe} == {**recipe, "cutout": 12}


@pytest.mark.slow
def test_smoke_runs_become_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = load_script(SCRIPT)
    out = tmp_path / "runs"
    data = synthetic_data(600, 200, val_size=100)
    names = ("lenet", "plain20", "resnet20")
    for name in names:
        folder = lab.train_one(name, data, out, epochs=2, device="cpu", quiet=True)
        assert (folder / "metrics.json").is_file() and not (folder / "checkpoint.pt").exists()
        flow = json.loads((folder / GRAD_FLOW_FILE).read_text())
        assert flow["steps"][0] == 0 and flow["every"] == lab.GRAD_EVERY
    metrics = json.loads((out / "resnet20" / "metrics.json").read_text())
    assert metrics["model_args"] == {"zero_init_residual": False}
    before = (out / "lenet" / "model.safetensors").read_bytes()
    lab.train_one("lenet", data, out, epochs=2, device="cpu", quiet=True)
    assert "finished already" in capsys.readouterr().out  # skipped, not retrained
    assert (out / "lenet" / "model.safetensors").read_bytes() == before

    runs = [out / name for name in names]
    report = compare([], data, runs=runs, train_eval_images=100, quiet=True, device="cpu")
    by_name = {m.name: m for m in report.models}
    recorded = json.loads((out / "plain20" / GRAD_FLOW_FILE).read_text())
    assert by_name["plain20"].grad_flow == recorded
    assert by_name["resnet20"].model_args == {"zero_init_residual": False}
    assert by_name["lenet"].train_eval is not None and by_name["lenet"].val is not None
    assert [row["model"] for row in degradation_rows(report)] == ["plain20", "resnet20"]
    assert [f.topic for f in findings(report)] == ["preliminary"]  # two epochs: too short
    # the report describes how the runs were trained, not compare's own defaults
    assert report.meta["epochs"] == 2 and report.meta["seed"] == 0
    assert report.meta["recipe"]["epochs"] == 2 and report.meta["recipe"]["differs"] == []
    assert report.meta["device"] == metrics["hardware"]
    lab.train_one("lenet", data, tmp_path / "other", epochs=3, device="cpu", quiet=True)
    mixed = compare([], None, runs=[runs[0], tmp_path / "other" / "lenet"], quiet=True)
    assert mixed.meta["epochs"] is None and mixed.meta["recipe"]["differs"] == ["epochs"]
