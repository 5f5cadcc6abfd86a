"""The comparison report (cifarzoo.compare) and its recording hooks (cifarzoo.instrument)."""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import cifarzoo
from cifarzoo.cli.compare import add_compare_parser
from cifarzoo.compare import (
    CONCLUSION_TOPICS,
    FIGURES,
    MIN_EPOCHS,
    REPORT_HTML,
    REPORT_JSON,
    ComparisonReport,
    ModelReport,
    compare,
    count_activation_bytes,
    count_macs,
    count_params,
    degradation_rows,
    findings,
    gradient_ratio,
    render_report,
    synthetic_data,
    too_short,
)
from cifarzoo.compare.estimate import describe_estimate, estimated_seconds, evaluated_images
from cifarzoo.compare.report import summary_text
from cifarzoo.instrument import GradientFlowRecorder, SEGateRecorder, stage_name
from cifarzoo.runs import hardware_string

pytest.importorskip("matplotlib")

MODELS = ["lenet", "plain20", "resnet20", "seresnet20"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    data = synthetic_data(128, 64, val_size=32, seed=0)
    compare(
        MODELS,
        data,
        epochs=1,
        out=out,
        quiet=True,
        device="cpu",
        batch_size=64,
        grad_every=1,
        gate_images=32,
        train_eval_images=40,
        model_args={"zero_init_residual": False},
    )
    return out


def test_report_files(report_dir: Path) -> None:
    for name in (REPORT_JSON, REPORT_HTML, *FIGURES.values()):
        assert (report_dir / name).is_file(), name
        assert (report_dir / name).stat().st_size > 0
    page = (report_dir / REPORT_HTML).read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "<script" not in page and 'src="http' not in page  # self-contained
    for name in MODELS:
        assert name in page


def test_report_json(report_dir: Path) -> None:
    summary = json.loads((report_dir / REPORT_JSON).read_text())
    assert summary["schema"] == "cifarzoo.compare/1"
    assert summary["data"] == {
        "name": "synthetic",
        "train": 128,
        "val": 32,
        "test": 64,
        "eval_split": "val",
    }
    assert summary["classes"] == list(cifarzoo.CIFAR10_CLASSES)
    # the machine named as `cifarzoo train` names it, so reused runs' threads read the same
    assert summary["device"] == hardware_string("cpu") and "thread" in summary["device"]
    assert [m["name"] for m in summary["models"]] == MODELS
    for m in summary["models"]:
        model = cifarzoo.create_model(m["name"])
        assert m["params"] == count_params(model)
        assert m["macs"] == count_macs(model) > 0
        assert m["activation_bytes"] == count_activation_bytes(model) > 0
        assert m["seconds_per_epoch"] > 0
        assert m["memory_kind"] == "cpu_rss_growth"
        h = m["history"]
        assert h["epoch"] == [1] and len(h["train_loss"]) == 1 and len(h["eval_acc"]) == 1
        assert all(math.isfinite(v) for v in h["train_loss"] + h["eval_loss"])
        t = m["test"]
        assert 0.0 <= t["accuracy"] <= 1.0 and t["num_samples"] == 64
        assert len(t["per_class_accuracy"]) == 10
        cm = torch.tensor(t["confusion_matrix"])
        assert cm.shape == (10, 10) and int(cm.sum()) == 64
        assert math.isclose(float(cm.diag().sum()) / 64, t["accuracy"])
        flow = m["grad_flow"]
        assert flow["steps"] == [0, 1]  # 128 images / batch 64, every step
        assert len(flow["layers"]) > 0 and len(flow["norms"]) == 2
        for row in flow["norms"]:
            assert len(row) == len(flow["layers"])
            assert all(math.isfinite(v) and v >= 0 for v in row)
        assert any(v > 0 for row in flow["norms"] for v in row)
    lenet, plain, residual, se = summary["models"]
    # A training step at batch 64 keeps each layer's activations for the backward pass: for the
    # 20-layer networks at least a few of their first stage's [64, 16, 32, 32] float32 maps,
    # many times LeNet's few small ones (measured: ~100-150 MiB against ~5-10 MiB).
    first_stage_map = 64 * 16 * 32 * 32 * 4
    assert lenet["peak_memory_bytes"] > 0
    for m in (plain, residual, se):
        assert m["peak_memory_bytes"] >= max(4 * first_stage_map, lenet["peak_memory_bytes"] + 1)
    assert lenet["se_gates"] is None
    assert plain["model_args"] == residual["model_args"] == {"zero_init_residual": False}
    assert lenet["model_args"] == {}  # LeNet takes no such argument
    for m in summary["models"]:
        assert m["train_eval"]["num_samples"] == 40 and m["val"]["num_samples"] == 32
    # one epoch on random data: too short to conclude anything, and the report says so
    assert [f["topic"] for f in summary["findings"]] == ["preliminary"]
    assert se["se_gates"]["num_images"] == 32
    stages = se["se_gates"]["stages"]
    assert list(stages) == ["layer1", "layer2", "layer3"]
    for s in stages.values():
        assert 0.0 < s["min"] <= s["mean"] <= s["max"] < 1.0
        assert sum(s["histogram"]) == s["count"] > 0


def test_a_short_run_says_so_instead_of_concluding(report_dir: Path) -> None:
    page = (report_dir / REPORT_HTML).read_text()
    summary = json.loads((report_dir / REPORT_JSON).read_text())
    (finding,) = findings(ComparisonReport.from_dict(summary))
    assert finding.text.startswith("These runs are too short to compare the architectures (1 ")
    assert f"fewer than {MIN_EPOCHS}" in finding.text and "--epochs" in finding.text
    conclusion = page[page.index("<h2>Conclusion") : page.index("<h2>Learning curves")]
    assert html.escape(finding.text) in conclusion and "Depth 20" not in page
    assert page.index("<h2>Conclusion") < page.index("<table>") < page.index("<figure>")
    assert "degradation table" in page  # plain20 and resnet20 are both there: the numbers show
    text = (report_dir / "summary.txt").read_text()
    assert text.startswith("- These runs are too short") and "gradient ratio (init / late)" in text


def _model(
    name: str, train_acc: float, test_acc: float, epochs: int = MIN_EPOCHS, **extra: Any
) -> ModelReport:
    return ModelReport(
        name=name,
        params=1000,
        macs=10_000,
        seconds_per_epoch=2.0,
        peak_memory_bytes=None,
        memory_kind="not measured",
        history={
            "epoch": list(range(1, epochs + 1)),
            "train_loss": [1.0] * epochs,
            "train_acc": [train_acc - 0.05] * epochs,
            "eval_acc": [test_acc] * epochs,
        },
        test={
            "accuracy": test_acc,
            "per_class_accuracy": [test_acc] * 10,
            "confusion_matrix": torch.eye(10, dtype=torch.long).mul(9).add(1).tolist(),
        },
        train_eval={"accuracy": train_acc},
        **extra,
    )


@pytest.mark.parametrize(
    ("epochs", "best", "short"),
    [(MIN_EPOCHS, 0.31, False), (MIN_EPOCHS - 1, 0.9, True), (MIN_EPOCHS, 0.29, True)],
)
def test_the_short_run_rule(epochs: int, best: float, short: bool) -> None:
    """Conclusions need MIN_EPOCHS epochs and a best test accuracy 20 points above chance."""
    models = [_model("lenet", 0.3, 0.25, epochs), _model("resnet20", best + 0.05, best, epochs)]
    reason = too_short(ComparisonReport(models, {}))
    assert (reason is not None) == short
    topics = [f.topic for f in findings(ComparisonReport(models, {}))]
    assert (topics == ["preliminary"]) == short


def test_a_class_that_loses_is_not_called_the_smallest_gain() -> None:
    worse, better = _model("lenet", 0.7, 0.5), _model("resnet20", 0.9, 0.8)
    worse.test["per_class_accuracy"] = [0.5] * 9 + [0.9]
    better.test["per_class_accuracy"] = [0.85] * 9 + [0.4]
    (text,) = [
        f.text for f in findings(ComparisonReport([worse, better], {})) if f.topic == "classes"
    ]
    assert "9 loses the most (90.00% to 40.00%)" in text and "the least" not in text


def _long_report(names: list[str]) -> ComparisonReport:
    """A report of runs long enough to conclude from, with gradient records and SE gates."""
    flow = {
        "every": 25,
        "layers": [f"conv{i}" for i in range(8)] + ["fc"],
        "steps": [0, 25],
        "norms": [[4.0] * 2 + [1.0] * 7, [1.0] * 9],
    }
    gates = {"num_images": 10, "bins": 2, "stages": {}}
    gates["stages"] = {"layer1": {"mean": 0.5, "std": 0.1, "histogram": [3, 7]}}
    models = [
        _model(name, 0.9 - 0.01 * i, 0.8 - 0.01 * i, grad_flow=flow, source=f"/x/runs/{name}")
        for i, name in enumerate(names)
    ]
    for m in models:
        m.se_gates = gates if m.name.startswith("se") else None
    meta = {"notes": {"grad_flow": "L2 norm, every `every` steps", "se_gates": "SE gate values"}}
    return ComparisonReport(models, {**meta, "classes": list(cifarzoo.CIFAR10_CLASSES)})


@pytest.mark.parametrize(
    ("model_args", "said"),
    [
        ({}, "Each model has its default initialisation (the residual blocks' last BN starts"),
        (
            {"resnet20": {"conv_init": "pytorch"}, "lenet": {}},
            "Convolutions start at PyTorch's default initialisation (conv_init='pytorch'); the "
            "residual blocks' last BN starts at zero.",
        ),
        (
            {"resnet20": {"conv_init": "kaiming"}, "resnet56": {"conv_init": "pytorch"}},
            "Convolutions start as conv_init says (resnet20 kaiming, resnet56 pytorch);",
        ),
        (
            {"resnet20": {"conv_init": "pytorch", "zero_init_residual": False}},
            "(conv_init='pytorch'); every BN starts at one (no residual block's last BN at zero).",
        ),
        (
            {"resnet20": {"zero_init_residual": False}, "plain20": {}},
            "Each model has its default convolutions; every BN starts at one (no residual "
            "block's last BN at zero), so residual and plain networks start alike.",
        ),
    ],
)
def test_the_page_says_how_the_networks_started(
    model_args: dict[str, dict[str, Any]], said: str
) -> None:
    """From each model's constructor arguments; a model that takes no conv_init (lenet) does
    not count, and plain and residual networks are named only when both are there."""
    names = ["lenet", "resnet20", "resnet56"]
    report = _long_report(names + [n for n in model_args if n not in names])
    for m in report.models:
        m.model_args = model_args.get(m.name, {})
    page, _ = render_report(report)
    assert said in html.unescape(page)
    assert ("plain networks start alike" in page) == ("plain20" in model_args)


def test_the_page_answers_first_and_explains_each_number_once() -> None:
    report = _long_report(["resnet20", "seresnet20", "resnet56"])
    page, _ = render_report(report)
    found = findings(report)
    conclusion = page[page.index("<h2>Conclusion") : page.index("<table>")]
    for f in found:
        assert (html.escape(f.text) in conclusion) == (f.topic in CONCLUSION_TOPICS), f.text
    assert conclusion.count("<li>") == sum(f.topic in CONCLUSION_TOPICS for f in found) > 1
    assert [f.topic for f in found].count("gradients") == 3  # in the table, not in words
    results = page[page.index("<table>") : page.index("</table>")]
    assert "gradient ratio (init / late)" in results and "4.00x / 1.00x" in results
    assert page.count("Gradient ratio: the mean gradient norm") == 1
    assert page.index("</table>") < page.index("<h2>Learning curves") < page.index("<figure>")
    assert "`" not in page  # no raw backticks, whatever the notes hold
    assert "recorded every 25 steps" in page
    se = page[page.index("<h2>SE gates") : page.index("<h2>Cost")]
    assert se.count("SE gate values") == 1 and html.escape("seresnet20's gates (mean ± std") in se
    assert "degradation table" not in page and degradation_rows(report) == []  # no plain net
    cost = page[page.index("<h2>Cost") :]
    assert "peak memory" not in cost and "/x/runs" not in page  # nothing measured; no paths
    assert "run folder resnet20" in cost and "s / epoch (wall clock)" in cost
    assert "compare MACs for cost" in cost and "activations" not in cost
    report.models[0].activation_bytes = 3 * 2**19
    cost = render_report(report)[0].split("<h2>Cost")[1]
    assert "activations / image (MiB)" in cost and "<td>1.50</td>" in cost
    assert "<td>\u2014</td>" in cost  # the other model's, not counted in this report


def test_the_results_table_names_a_tta_figure_beside_the_single_pass_one() -> None:
    """The page's and summary.txt's test accuracy is one forward pass; a test-time
    augmentation's figure is beside it, named, and only where one was measured."""
    report = _long_report(["resnet20", "resnet56"])
    report.models[0].test.update(accuracy=0.8842, tta="flip", tta_accuracy=0.8973)
    page, _ = render_report(report)
    results = page[page.index("<table>") : page.index("</table>")]
    assert "<td>88.42% (flip TTA: 89.73%)</td>" in results
    assert "<td>79.00%</td>" in results and results.count("TTA") == 1
    assert "Accuracies are one forward pass, what <code>model(x)</code> gives" in page
    text = summary_text(report, findings(report))
    assert "88.42% (flip TTA: 89.73%)" in text and "Accuracies are one forward pass" in text


def test_the_dense_finding_names_what_dense_connections_cost() -> None:
    resnet = _model("resnet56", 0.9, 0.85, activation_bytes=4 * 2**20)
    dense = _model("densenet_bc_100_k12", 0.95, 0.88)

    def dense_text() -> str:
        report = ComparisonReport([resnet, dense], {})
        (text,) = [f.text for f in findings(report) if f.topic == "dense"]
        return text

    assert "activations" not in dense_text()  # not measured for both: not compared
    assert "epoch" not in dense_text()  # seconds of runs from several machines do not compare
    dense.activation_bytes = 34 * 2**20
    assert dense_text().endswith(" M; a training step keeps 8.5x the activations per image.")
    dense.history["eval_split"] = "test"  # its curves measured the test set: no validation
    assert "reaches 88.00% test accuracy with" in dense_text()
    dense.val = {"accuracy": 0.8812}
    assert "reaches 88.00% test / 88.12% validation accuracy with" in dense_text()


def test_the_cost_figure_leaves_out_a_panel_without_data() -> None:
    from cifarzoo.compare.figures import _fig_cost

    models = _long_report(["resnet20", "resnet56"]).models
    titles = [ax.get_title() for ax in _fig_cost(models).axes]
    assert not any("memory" in t or "activations" in t for t in titles)
    assert "wall clock" in titles[2]
    models[0].peak_memory_bytes = 2**20
    models[1].activation_bytes = 2**21
    titles = [ax.get_title() for ax in _fig_cost(models).axes]
    assert "activations" in titles[2] and any("memory" in t for t in titles)


@given(
    plain20=st.floats(0.5, 0.99),
    plain56=st.floats(0.5, 0.99),
    resnet20=st.floats(0.5, 0.99),
    resnet56=st.floats(0.5, 0.99),
)
def test_degradation_findings_follow_the_numbers(
    plain20: float, plain56: float, resnet20: float, resnet56: float
) -> None:
    accs = {"plain20": plain20, "plain56": plain56, "resnet20": resnet20, "resnet56": resnet56}
    report = ComparisonReport([_model(n, a, a - 0.02) for n, a in accs.items()], {})
    rows = degradation_rows(report)
    residual_only = ComparisonReport([m for m in report.models if m.name[0] == "r"], {})
    assert degradation_rows(residual_only) == []  # no plain network: no degradation table
    assert [r["model"] for r in rows] == ["plain20", "resnet20", "plain56", "resnet56"]
    assert all(math.isclose(r["train_error"], 1 - accs[r["model"]]) for r in rows)
    texts: dict[str, list[str]] = {}
    for f in findings(report):
        texts.setdefault(f.topic, []).append(f.text)
    plain_text = next(t for t in texts["degradation"] if t.startswith("Plain"))
    assert ("the degradation problem" in plain_text) == (plain56 < plain20)
    assert f"{100 * (1 - plain56):.2f}%" in plain_text
    assert len(texts["shortcuts"]) == 2


def test_gradient_ratio_compares_input_and_output_layers() -> None:
    layers = [f"conv{i}" for i in range(8)] + ["fc"]
    init = [1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 4.0, 4.0, 100.0]  # quarter = 2 layers
    late = [8.0, 8.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 100.0]
    flow = {"layers": layers, "steps": [0, 10], "norms": [init, late]}
    assert gradient_ratio(flow) == pytest.approx(0.25)
    assert gradient_ratio(flow, late=True) == pytest.approx(4.0)
    assert gradient_ratio({"layers": layers[:3], "norms": [init[:3]]}) is None


def test_rerender_from_json(report_dir: Path) -> None:
    summary = json.loads((report_dir / REPORT_JSON).read_text())
    page, pngs = render_report(summary)
    assert set(pngs) == set(FIGURES.values())
    assert all(p.startswith(b"\x89PNG") for p in pngs.values())
    assert ComparisonReport.from_dict(summary).table().splitlines()[0].startswith("model")
    assert "seresnet20" in page


def test_gradient_flow_recorder_hooks_optimizer() -> None:
    model = cifarzoo.resnet20()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.01)
    with GradientFlowRecorder(model, every=2) as flow:
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(2, 3, 32, 32)).sum().backward()
            opt.step()
            other.step()  # an unrelated optimizer is ignored
    opt.step()  # after the block: not recorded
    assert flow.steps == [0, 2, 4]
    assert len(flow.layers) == 22 and flow.layers[0] == "conv1" and flow.layers[-1] == "fc"
    assert all(math.isfinite(v) for row in flow.norms for v in row)


def test_gradient_flow_recorder_continues_from_start_step() -> None:
    model = cifarzoo.lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with GradientFlowRecorder(model, every=3, start_step=7) as flow:
        for _ in range(6):
            opt.zero_grad()
            model(torch.randn(2, 3, 32, 32)).sum().backward()
            opt.step()
    assert flow.steps == [9, 12]  # steps 7..12, every third counted from step 0
    with pytest.raises(ValueError, match="start_step"):
        GradientFlowRecorder(model, start_step=-1)


def test_se_gate_recorder_and_stage_names() -> None:
    assert stage_name("layer2.3.se") == "layer2"
    assert stage_name("3.se") == "3"
    assert stage_name("features.block.se") == "features.block"
    model = cifarzoo.seresnet18().eval()
    with SEGateRecorder(model) as rec, torch.no_grad():
        model(torch.randn(3, 3, 32, 32))
    model(torch.randn(1, 3, 32, 32))  # hooks removed: nothing more recorded
    blocks = rec.by_block()
    assert len(blocks) == 8 and blocks["layer4.1.se"].shape == (3, 512)
    stages = rec.by_stage()
    assert list(stages) == ["layer1", "layer2", "layer3", "layer4"]
    values = torch.cat(list(stages.values()))
    assert bool(((values > 0) & (values < 1)).all())


def test_count_macs_on_meta_device() -> None:
    with torch.device("meta"):
        model = cifarzoo.create_model("resnet18")
    assert count_params(model) == 11_173_962
    assert 500e6 < count_macs(model) < 600e6  # ~556 M MACs at 32x32


#: Run in a fresh process: in a long-lived one, memory that earlier tests freed stays resident
#: (the allocator keeps it), and a new block may reuse it without growing the resident set.
PEAK_MEMORY_CPU = """
import json, time
import torch
from cifarzoo.instrument import PeakMemory

mib = 2**20
peaks = {}
for size in (32, 128):
    with PeakMemory("cpu") as mem:
        x = torch.ones(size, mib // 4)  # written, so resident
        time.sleep(0.25)  # the sampler reads the resident set size every 2 ms
        del x
    peaks[size] = mem.peak_bytes
print(json.dumps({"kind": mem.kind, "peaks": peaks}))
"""


@pytest.mark.slow(seconds=5)
def test_peak_memory_cpu() -> None:
    """The peak is the block's own allocation, caught by the sampler while it lived (it is
    freed before the block ends), and grows with it."""
    env = {**os.environ, "PYTHONPATH": str(Path(cifarzoo.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_CPU], env=env, capture_output=True, text=True,
        timeout=600, check=True,
    )  # fmt: skip
    measured = json.loads(out.stdout)
    peaks = {int(size): peak for size, peak in measured["peaks"].items()}
    mib = 2**20
    assert measured["kind"] == "cpu_rss_growth"
    assert 32 * mib <= peaks[32] < 128 * mib <= peaks[128], peaks


def test_cli_parser() -> None:
    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "lenet", "resnet20", "--epochs", "2", "--out", "x"])
    assert args.models == ["lenet", "resnet20"] and args.epochs == 2 and args.out == "x"
    assert args.func.__name__ == "run_compare"
    # every recipe field is an option (from the Recipe's declarations); left out, it is unset
    assert (args.batch_size, args.lr, args.seed) == (128, 0.1, 0) and not hasattr(args, "cutout")
    args = parser.parse_args(["compare", "--out", "x", "--cutout", "8", "--no-flip"])
    assert (args.cutout, args.flip) == (8, False) and not hasattr(args, "distill_weight")
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--out", "x", "--ema-decay", "1.5"])


def test_cli_defaults_draw_conclusions_and_fetch_missing_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Left to its defaults, compare trains long enough for its report to conclude, and
    downloads missing data as train and eval do; --no-download says how to get it instead."""
    from cifarzoo.cli import main as cli_main

    parser = argparse.ArgumentParser(prog="cifarzoo")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "--out", "x"])
    assert args.epochs == MIN_EPOCHS and args.download is True
    assert compare.__kwdefaults__["epochs"] == MIN_EPOCHS
    missing = tmp_path / "nodata"
    argv = ["compare", "lenet", "--data", str(missing), "--no-download"]
    assert cli_main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "download=True" in err
    assert not missing.exists() and not (tmp_path / "out").exists()


def test_cli_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cifarzoo.cli.compare import main

    argv = ["lenet", "--synthetic", "128", "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "--device", "cpu", "--amp", "bf16", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / REPORT_HTML).is_file()
    assert "lenet" in capsys.readouterr().out
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["recipe"]["amp"] is True
    assert report["device"].endswith(", 1 thread)"), report["device"]


def test_render_counts_the_activations_an_older_report_lacks(
    report_dir: Path, tmp_path: Path
) -> None:
    from cifarzoo.compare import rerender
    from cifarzoo.cost import count_activation_bytes
    from cifarzoo.models import create_model

    summary = json.loads((report_dir / REPORT_JSON).read_text())
    counted = {m["name"]: m["activation_bytes"] for m in summary["models"]}
    older = tmp_path / REPORT_JSON
    for m in summary["models"]:
        m.pop("activation_bytes")  # as compare wrote it before it counted them
    summary["models"][0]["name"] = "my_own_net"  # no cifarzoo model: nothing to count
    older.write_text(json.dumps(summary))
    rerender(older, tmp_path / "again")
    written = json.loads((tmp_path / "again" / REPORT_JSON).read_text())["models"]
    assert written[0]["activation_bytes"] is None
    for m in written[1:]:
        assert m["activation_bytes"] == counted[m["name"]], m["name"]
        model = create_model(m["name"], **m["model_args"])
        assert m["activation_bytes"] == count_activation_bytes(model)


def test_render_writes_a_report_again_from_its_json(
    report_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarzoo.cli import main as cli_main

    out = tmp_path / "again"
    assert cli_main(["compare", "--render", str(report_dir / REPORT_JSON), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"report: {out / REPORT_HTML}\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in report_dir.iterdir())
    written = json.loads((out / REPORT_JSON).read_text())
    assert written == json.loads((report_dir / REPORT_JSON).read_text())  # every number kept
    assert (out / "summary.txt").read_text() == (report_dir / "summary.txt").read_text()
    # in place, into the folder of the JSON it reads
    assert cli_main(["compare", "--render", str(out / REPORT_JSON), "--out", str(out)]) == 0
    assert json.loads((out / REPORT_JSON).read_text()) == written
    capsys.readouterr()
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    for args, message in [
        ([str(tmp_path / "missing.json")], "missing.json"),
        ([str(tmp_path / "other.json")], "is not the report.json of a `cifarzoo compare` report"),
        ([str(out / REPORT_JSON), "lenet"], "drop the model names"),
    ]:
        assert cli_main(["compare", "--render", *args, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_estimate_scales_one_step_to_the_epochs_and_evaluations() -> None:
    data = synthetic_data(1000, 200, val_size=100)
    # each epoch's validation (100 images), then test (200), val (100) and 50 training images
    assert evaluated_images(data, epochs=2, train_eval_images=50) == 2 * 100 + 200 + 100 + 50
    seconds = estimated_seconds(0.5, batch_size=100, train_images=1000, epochs=2, eval_images=550)
    assert seconds == pytest.approx(0.5 * (20 + 5.5 / 3))  # 20 steps; 550 images at 1/3 a step
    line = describe_estimate(
        {"lenet": 0.5, "resnet20": 2.0}, data, epochs=2, batch_size=100, train_eval_images=50
    )
    assert line == (
        "estimated time: about 55 s (lenet 11 s, resnet20 44 s; from one timed training step "
        "of each model)"
    )


@pytest.mark.slow(seconds=6)
def test_compare_says_how_long_it_will_take_and_shows_its_evaluation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = synthetic_data(64, 40, val_size=20)
    compare(["lenet"], data, epochs=1, device="cpu", batch_size=32, gate_images=0)
    out, err = capsys.readouterr()
    assert out.startswith("estimated time: about ") and "(lenet " in out.splitlines()[0]
    assert out.splitlines()[1] == "[1/1] training lenet for 1 epoch(s) on cpu"
    for split, n in (("test", 40), ("val", 20), ("training error", 64)):
        assert f"lenet: {split}:   0%|          | 0/{n}" in err  # tqdm bars, on stderr


def test_compare_rejects_nothing() -> None:
    with pytest.raises(ValueError, match="nothing to compare"):
        compare([], None)


def test_write_report_is_atomic_and_strict_json(
    report_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cifarzoo.compare.report as compare_module
    from cifarzoo.compare import write_report

    summary = json.loads((report_dir / REPORT_JSON).read_text())
    report = ComparisonReport.from_dict(summary)
    report.models[0].history["eval_loss"] = [float("nan")]  # e.g. a diverged run
    report.meta["path"] = tmp_path  # a Path: written as a string
    out = tmp_path / "report"
    files = write_report(report, out)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in report.json")

    written = json.loads(files["json"].read_text(), parse_constant=no_constants)
    assert written["models"][0]["history"]["eval_loss"] == [None]
    assert written["path"] == str(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [REPORT_JSON, REPORT_HTML, "summary.txt", *FIGURES.values()]
    )  # no temporary files left

    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: object) -> object:
        raise RuntimeError("figure failed")

    monkeypatch.setattr(compare_module, "render_figures", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(ComparisonReport.from_dict(summary), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old report is whole


def reused_run(folder: Path, **metrics: Any) -> Path:
    """A `cifarzoo train` run folder of an untrained lenet, which recorded ``metrics`` (and a
    test accuracy of 50% in every class)."""
    from cifarzoo.checkpoint import save_weights
    from cifarzoo.models import create_model

    folder.mkdir()
    save_weights(create_model("lenet").state_dict(), folder / "model.safetensors")
    recorded = {"model": "lenet", "test_accuracy": 0.5, "per_class_accuracy": [0.5] * 10}
    recorded["confusion_matrix"] = [[1] * 10] * 10
    (folder / "metrics.json").write_text(json.dumps({**recorded, **metrics}))
    return folder


def test_reused_run_weights_are_checked(tmp_path: Path) -> None:
    run = reused_run(tmp_path / "run", tta=None, tta_test_accuracy=None)
    report = compare([], None, runs=[run], quiet=True, device="cpu")
    assert report.models[0].name == "lenet" and report.models[0].source == str(run)
    weights = run / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(cifarzoo.PretrainedWeightsError, match="sha256 mismatch"):
        compare([], None, runs=[run], quiet=True, device="cpu")


def test_reused_runs_are_compared_in_one_forward_pass(tmp_path: Path) -> None:
    """A run's recorded single-pass figures are the comparison's; its TTA figure is shown
    beside them, named. A run of an earlier version whose per-class figures were measured with
    TTA is refused without data to measure it again."""
    from cifarzoo.models import create_model

    run = reused_run(tmp_path / "run", tta="flip + translate", tta_test_accuracy=0.55)
    metrics = json.loads((run / "metrics.json").read_text())
    report = compare([], None, runs=[run], quiet=True, device="cpu")
    test = report.models[0].test
    assert (test["accuracy"], test["tta"], test["tta_accuracy"]) == (0.5, "flip + translate", 0.55)
    header, row = report.table().splitlines()
    assert "test accuracy" in header and "gradient ratio (init / late)" in header
    assert "50.00% (flip + translate TTA: 55.00%)" in row
    old = {**metrics, "test_accuracy": 0.55, "single_pass_test_accuracy": 0.5, "tta_flip": True}
    del old["tta"], old["tta_test_accuracy"]
    (run / "metrics.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"no single-pass test metrics.*pass data"):
        compare([], None, runs=[run], quiet=True, device="cpu")
    # with data, compare measures the run itself: one forward pass, flip TTA beside it
    data = synthetic_data(32, 40, seed=1)
    report = compare([], data, runs=[run], quiet=True, device="cpu", tta_flip=True)
    model = create_model("lenet", weights=str(run / "model.safetensors"))
    test = report.models[0].test
    assert test["accuracy"] == cifarzoo.evaluate(model, data.test).accuracy
    assert test["tta_accuracy"] == cifarzoo.evaluate(model, data.test, tta_flip=True).accuracy
    assert test["tta"] == "flip"
