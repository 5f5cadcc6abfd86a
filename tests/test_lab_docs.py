"""docs/lab.rst's analysis of the lab runs and the page's opening summary of it: every number
they write is the docs/_static/lab/report.json field it names, rounded as the report rounds
(Python's float format at the written precision), in the order the text names them."""

from __future__ import annotations

import ast
import functools
import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_claims import (
    EPOCHS,
    Claim,
    Field,
    Number,
    Report,
    accuracy,
    activations,
    activations_ratio,
    as_written,
    claim,
    classes,
    epochs_leading,
    error,
    gate,
    late_ratios,
    lead,
    leads_from,
    macs,
    macs_ratio,
    more_params,
    numbers,
    params,
    ratio,
    section,
    val_after,
    wrong_numbers,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"
REPORT = DOCS / "_static" / "lab" / "report.json"
PAGE = DOCS / "lab.rst"
SECTION = "What the runs show"
OPENING = "The lab: how networks differ while they train"

PLAIN_AND_RESIDUAL = ("plain20", "resnet20", "plain56", "resnet56")


def _lab_four_epochs() -> float:
    script = DOCS.parent / "benchmarks" / "lab_four.py"
    found = re.search(r"^EPOCHS = (\d+)$", script.read_text(), re.MULTILINE)
    assert found is not None, f"{script} sets no EPOCHS"
    return float(found[1])


#: the lab's own four's epochs (benchmarks/lab_four.py), not a figure of the seven's report
LAB_FOUR_EPOCHS = Field("epochs of the lab's own four", lambda r: _lab_four_epochs())
DENSE = "densenet_bc_100_k12"

#: docs/lab.rst's "What the runs show", in order
ANALYSIS = [
    claim("CIFAR-10 (JPEG mirror)"),
    claim("Removing the shortcuts at depth 20 costs"),
    claim(
        "``plain20`` ends at {}% test / {}%",
        accuracy("plain20", "test"),
        accuracy("plain20", "val"),
    ),
    claim("``resnet20`` at {}% / {}%", accuracy("resnet20", "test"), accuracy("resnet20", "val")),
    claim(": {} points,", lead("resnet20", "plain20", "test")),
    claim("({} M;", params("plain20")),
    claim("1x1 downsampling shortcuts add {})", more_params("resnet20", "plain20")),
    claim("MACs ({} M vs {} M)", macs("plain20"), macs("resnet20")),
    claim("({}% vs {}%)", error("plain20", "train_eval"), error("resnet20", "train_eval")),
    claim("At depth 56 it costs {} points", lead("resnet56", "plain56", "test")),
    claim(
        "``plain56`` ends at {}% test / {}%",
        accuracy("plain56", "test"),
        accuracy("plain56", "val"),
    ),
    claim("``resnet56`` at {}% / {}%", accuracy("resnet56", "test"), accuracy("resnet56", "val")),
    claim("from 20 to 56 layers"),
    claim("rises from {}% to {}%", error("plain20", "train_eval"), error("plain56", "train_eval")),
    claim(
        "falls from {}% to {}%", error("resnet20", "train_eval"), error("resnet56", "train_eval")
    ),
    claim(
        "(test error {}% to {}%, validation error {}% to {}%)",
        error("resnet20", "test"),
        error("resnet56", "test"),
        error("resnet20", "val"),
        error("resnet56", "val"),
    ),
    claim("(2016, Fig. 6)"),
    claim("after 7 epochs ``plain56`` had {}%", val_after("plain56", 7)),
    claim("``plain20`` {}%, ``resnet56`` {}%.", val_after("plain20", 7), val_after("resnet56", 7)),
    claim("is {}x that of its last quarter", ratio("plain56")),
    claim("through 56 layers"),
    claim("``resnet56``'s ratio is {}x", ratio("resnet56")),
    claim("``plain20``'s {}x and ``resnet20``'s {}x.", ratio("plain20"), ratio("resnet20")),
    claim(
        "between {}x and {}x",
        late_ratios(min, PLAIN_AND_RESIDUAL),
        late_ratios(max, PLAIN_AND_RESIDUAL),
    ),
    claim(
        "``seresnet20`` ends at {}% test / {}%",
        accuracy("seresnet20", "test"),
        accuracy("seresnet20", "val"),
    ),
    claim("``resnet20`` at {}% / {}%", accuracy("resnet20", "test"), accuracy("resnet20", "val")),
    claim(
        ": {} and {} points less",
        lead("resnet20", "seresnet20", "test"),
        lead("resnet20", "seresnet20", "val"),
    ),
    claim("for {} more parameters", more_params("seresnet20", "resnet20")),
    claim(
        "layer1 {} ± {},", gate("seresnet20", "layer1", "mean"), gate("seresnet20", "layer1", "std")
    ),
    claim(
        "layer2 {} ± {},", gate("seresnet20", "layer2", "mean"), gate("seresnet20", "layer2", "std")
    ),
    claim(
        "layer3 {} ± {})", gate("seresnet20", "layer3", "mean"), gate("seresnet20", "layer3", "std")
    ),
    claim("after {} epochs the gates", EPOCHS),
    claim("gets {}x the gradient norm", ratio("seresnet20")),
    claim("(``resnet20``: {}x).", ratio("resnet20")),
    claim(": {}% test / {}%", accuracy(DENSE, "test"), accuracy(DENSE, "val")),
    claim("``resnet56``'s {}% / {}%", accuracy("resnet56", "test"), accuracy("resnet56", "val")),
    claim(
        "({} and {} points more)", lead(DENSE, "resnet56", "test"), lead(DENSE, "resnet56", "val")
    ),
    claim("({} M vs {} M;", params(DENSE), params("resnet56")),
    claim("{} fewer)", more_params("resnet56", DENSE)),
    claim("{} M MACs per image against {} M.", macs(DENSE), macs("resnet56")),
    claim("From the {}th epoch on", leads_from(DENSE)),
    claim("after {} of the {} epochs", epochs_leading(DENSE), EPOCHS),
    claim(
        "(after 5: {}%, ``resnet20`` {}%, ``resnet56`` {}%)",
        val_after(DENSE, 5),
        val_after("resnet20", 5),
        val_after("resnet56", 5),
    ),
    claim("(final training error {}%", error(DENSE, "train_eval")),
    claim("``resnet56`` {}%", error("resnet56", "train_eval")),
    claim("``resnet20`` {}%)", error("resnet20", "train_eval")),
    claim("validation error ({}%)", error(DENSE, "val")),
    claim("gets {}x the gradient norm", ratio(DENSE)),
    claim("and {}x late in training", ratio(DENSE, late=True)),
    claim("(``resnet20``: {}x and {}x)", ratio("resnet20"), ratio("resnet20", late=True)),
    claim(
        "From ``lenet`` ({}% test / {}% validation)",
        accuracy("lenet", "test"),
        accuracy("lenet", "val"),
    ),
    claim("cat gains the most ({}% to {}%)", *classes("cat", "lenet", DENSE)),
    claim("ship the least ({}% to {}%)", *classes("ship", "lenet", DENSE)),
    claim("deer ({}% to {}%)", *classes("deer", "plain56", "resnet56")),
    claim("cat ({}% to {}%)", *classes("cat", "plain56", "resnet56")),
    claim("bird ({}% to {}%)", *classes("bird", "plain56", "resnet56")),
    claim("automobile gains the least ({}% to {}%)", *classes("automobile", "plain56", "resnet56")),
    claim("bird ({}% to {}%)", *classes("bird", "resnet56", DENSE)),
    claim("deer ({}% to {}%)", *classes("deer", "resnet56", DENSE)),
    claim("cat ({}% to {}%)", *classes("cat", "resnet56", DENSE)),
    claim("airplane ({}% to {}%)", *classes("airplane", "resnet56", DENSE)),
    claim("automobile ({}% to {}%)", *classes("automobile", "resnet56", DENSE)),
    claim("frog ({}% to {}%)", *classes("frog", "resnet56", DENSE)),
    claim("ship ({}% to {}%)", *classes("ship", "resnet56", DENSE)),
    claim("needs {}x the MACs of ``resnet56``", macs_ratio(DENSE, "resnet56")),
    claim("keeps {}x its activations per image", activations_ratio(DENSE, "resnet56")),
    claim("({} MiB against {} MiB in float32;", activations(DENSE), activations("resnet56")),
]

#: docs/lab.rst's opening summary of it, in order
SUMMARY = [
    claim("ResNet-18, DenseNet-121 and SE-ResNet-18 on CIFAR-10"),
    claim("for {} epochs", EPOCHS),
    claim(
        "``plain56`` ends at {}% test / {}% validation",
        accuracy("plain56", "test"),
        accuracy("plain56", "val"),
    ),
    claim("``resnet56`` at {}% / {}%", accuracy("resnet56", "test"), accuracy("resnet56", "val")),
    claim("(``densenet_bc_100_k12``: {}% / {}%)", accuracy(DENSE, "test"), accuracy(DENSE, "val")),
    claim("The lab's own four networks train for {} epochs", LAB_FOUR_EPOCHS),
]


@functools.cache
def _report() -> Report:
    return dict(json.loads(REPORT.read_text()))


def _wrong(text: str, claims: list[Claim]) -> list[str]:
    return wrong_numbers(text, claims, _report())


def _analysis() -> str:
    return section(PAGE.read_text(), SECTION)


def test_every_number_of_the_analysis_is_the_field_it_names() -> None:
    text = _analysis()
    assert len(list(numbers(text, ANALYSIS))) > 90  # the section was found and read
    assert _wrong(text, ANALYSIS) == []


def test_every_number_of_the_opening_summary_is_the_field_it_names() -> None:
    text = section(PAGE.read_text(), OPENING)
    assert len(list(numbers(text, SUMMARY))) >= 7  # the section was found and read
    assert _wrong(text, SUMMARY) == []


def _replace(text: str, number: Number, written: str) -> str:
    return text[: number.start] + written + text[number.end :]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_wrong_number_is_found(data: st.DataObject) -> None:
    """Any number of the analysis moved by up to 99 units of its last digit is wrong, and is
    the one found: the report's other numbers do not excuse it."""
    text = _analysis()
    number = data.draw(st.sampled_from(list(numbers(text, ANALYSIS))))
    digits = number.written.replace(",", "")
    units = int(digits.replace(".", ""))  # the number in units of its last digit
    moved = units + data.draw(st.integers(-min(units, 99), 99).filter(bool))
    written = as_written(moved / 10 ** len(digits.partition(".")[2]), number.written)
    wrong = _wrong(_replace(text, number, written), ANALYSIS)
    assert len(wrong) == 1 and wrong[0].startswith(f"{written!r} is {number.field.name}:")


@functools.cache
def _swappable() -> list[tuple[Number, Number]]:
    """Pairs of numbers of the analysis each wrong in the other's place (not one value at two
    precisions, such as 74.00% and 74.0%)."""

    def misplaced(number: Number, written: str) -> bool:
        return as_written(number.field.value(_report()), written) != written

    return [
        (a, b)
        for a, b in itertools.combinations(numbers(_analysis(), ANALYSIS), 2)
        if misplaced(a, b.written) and misplaced(b, a.written)
    ]


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_two_numbers_swapped_are_found(data: st.DataObject) -> None:
    """Two numbers of the analysis written in each other's place are both found."""
    first, second = data.draw(st.sampled_from(_swappable()))
    swapped = _replace(_replace(_analysis(), second, first.written), first, second.written)
    wrong = _wrong(swapped, ANALYSIS)
    assert [w.partition(" is ")[0] for w in wrong] == [repr(second.written), repr(first.written)]


def test_a_number_no_phrase_names_is_found() -> None:
    text = _analysis().replace("as He et al.", "as He et al., 4.2% of them,")
    with pytest.raises(AssertionError, match=r"names a field for: '4\.2' in [^;]*$"):
        list(numbers(text, ANALYSIS))


def test_the_lab_four_recipe_choice_gives_the_figures_its_runs_recorded() -> None:
    """The cutout-12 first try (benchmarks/lab_four_cutout12), the Kaiming-start cutout-8 run
    (benchmarks/lab_four_kaiming) and the shipped resnet18 (its metadata and training record),
    as docs/lab.rst tells the two rules' outcomes."""
    from cifarzoo.pretrained import read_training_record, read_weights_meta

    text = " ".join(PAGE.read_text().split())
    start = text.index("**How the recipe was chosen.**")
    story = text[start : text.index("**No GPU needed.**")]
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    tried = json.loads((benchmarks / "lab_four_cutout12" / "resnet18" / "history.json").read_text())
    kaiming = json.loads((benchmarks / "lab_four_kaiming" / "resnet18.lab.record.json").read_text())
    kaiming_meta = json.loads((benchmarks / "lab_four_kaiming" / "resnet18.lab.json").read_text())
    meta = read_weights_meta("resnet18", tag="lab")
    record = read_training_record("resnet18", tag="lab")
    assert meta is not None and record is not None
    shipped, before = record["history"], kaiming["history"]
    assert f"ended at {100 * tried['eval_acc'][-1]:.2f}% validation accuracy" in story
    assert f"got only {100 * tried['train_acc'][-1]:.1f}% of its augmented" in story
    assert f"With 8 pixels resnet18 ended at {100 * before['eval_acc'][-1]:.2f}% and " in story
    assert f"and {100 * before['train_acc'][-1]:.1f}% on its augmented" in story
    assert kaiming_meta["metrics"]["recipe"]["cutout"] == meta["metrics"]["recipe"]["cutout"] == 8
    # the candidate's rule, as the script that fixed it states it, and the run it judged
    script = benchmarks / "lab_four.py"
    docstring = " ".join((ast.get_docstring(ast.parse(script.read_text())) or "").split())
    probe = re.search(r"had [\d.]+%, [\d.]+% and ([\d.]+)% validation accuracy", docstring)
    assert probe is not None
    after_3 = f"{100 * before['eval_acc'][2]:.2f}"
    assert f"had {probe[1]}% validation accuracy after 3 epochs, against {after_3}% with" in story
    first_three = [f"{100 * v:.2f}%" for v in before["eval_acc"][:3]]
    assert "against {}, {} and {})".format(*first_three) in docstring
    threshold = before["eval_acc"][-1] + 0.008
    assert f"gains at least 0.8 points, to {100 * threshold:.2f}%" in story
    assert f"reaches {100 * threshold:.2f}%" in docstring
    ended = shipped["eval_acc"][-1]
    assert ended >= threshold and f"It ended at {100 * ended:.2f}%, and " in story
    assert f"{100 * shipped['train_acc'][-1]:.1f}% on its augmented" in story
    assert meta["metrics"]["model_args"] == {"conv_init": "pytorch", "zero_init_residual": False}
    assert kaiming_meta["metrics"].get("model_args", {}) == {}


def test_the_lab_four_training_hours_are_the_shipped_weights_own() -> None:
    """ "No GPU needed" gives, for each lab network whose weights ship, the hours its
    training recorded, on the CPU it recorded; the others are estimates, said so."""
    from cifarzoo.formats import hardware_name
    from cifarzoo.pretrained import list_weights

    text = " ".join(PAGE.read_text().split())
    start = text.index("**No GPU needed.**")
    paragraph = text[start : text.index(".. code-block::", start)]
    shipped = {e.arch: e.meta["metrics"] for e in list_weights() if e.tag == "lab" and e.loads}
    big = [arch for arch in ("resnet18", "seresnet18", "densenet121") if arch in shipped]
    assert big, "no lab network ships: the paragraph has nothing to report"
    for arch in big:
        hours = shipped[arch]["seconds"] / 3600
        assert f"{arch} trained in {hours:.1f} hours" in paragraph, arch
        cpu = hardware_name(shipped[arch]["hardware"]).split(" (")[0]
        assert cpu in paragraph and "with AMX" in paragraph, cpu
    for arch in {"seresnet18", "densenet121"} - set(big):
        assert re.search(rf"{arch} (?:takes )?about [\d.]+ hours", paragraph), arch
