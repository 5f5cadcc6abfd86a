"""Side-by-side comparison of architectures trained with one recipe: ``cifarzoo compare``.

:func:`compare` trains each model with :func:`cifarzoo.training.fit` (same recipe, same seed, same
data) -- or reads the output folders of earlier ``cifarzoo train`` runs -- and measures:

* loss and accuracy curves (train and validation), the final training error (unaugmented
  training images, eval mode), validation and test accuracy, and the test set's per-class
  accuracy and confusion matrix;
* parameters, multiply-accumulates of one 32x32 image (:func:`cifarzoo.cost.count_macs`), the
  activations a training step keeps per image (:func:`cifarzoo.cost.count_activation_bytes`),
  seconds per epoch and the peak memory of a training step;
* gradient flow: the gradient norm of every convolution/linear layer every ``k`` steps
  (:class:`~cifarzoo.instrument.GradientFlowRecorder`), and plain vs residual networks of the
  same depth at initialisation and late in training;
* for SE models, the distribution of the SE gate values of each stage over test images
  (:class:`~cifarzoo.instrument.SEGateRecorder`).

:func:`findings` states what those numbers show, in words (or, for runs too short to mean
anything, says so: :func:`too_short`); :func:`write_report` turns the result into a folder:
``report.html`` (self-contained: a conclusion and one table of results at the top, then the
figures, embedded as base64 PNG), the figures as PNG files, ``summary.txt`` and ``report.json``
with every number. The report can be written again from ``report.json`` alone
(:func:`rerender`, ``cifarzoo compare --render report.json --out DIR``).

The package is split by job: :mod:`~cifarzoo.compare.measure` (:func:`compare`, from
:mod:`~cifarzoo.compare.trained` models, :mod:`~cifarzoo.compare.reused` run folders, their
:mod:`~cifarzoo.compare.evaluation` and the report's :mod:`~cifarzoo.compare.meta`),
:mod:`~cifarzoo.compare.results` (the report objects and their JSON),
:mod:`~cifarzoo.compare.findings` (the numbers in words), :mod:`~cifarzoo.compare.figures`,
:mod:`~cifarzoo.compare.page` (the HTML page, from a template),
:mod:`~cifarzoo.compare.report` (the files); the command is :mod:`cifarzoo.cli.compare`.

>>> from cifarzoo.compare import compare, synthetic_data
>>> report = compare(["lenet"], synthetic_data(256, 128), epochs=1, quiet=True)
>>> report.models[0].name, len(report.models[0].test["per_class_accuracy"])
('lenet', 10)
"""

from ..cost import count_activation_bytes, count_macs, count_params
from ..runs import GRAD_FLOW_FILE
from .figures import FIGURES
from .findings import (
    CONCLUSION_TOPICS,
    MIN_EPOCHS,
    MIN_LEAD_OVER_CHANCE,
    Finding,
    degradation_rows,
    findings,
    gradient_ratio,
    too_short,
)
from .measure import (
    COMPARE_RECIPE,
    DEFAULT_MODELS,
    LAB_MODELS,
    compare,
    subset_train,
    synthetic_data,
)
from .report import REPORT_HTML, REPORT_JSON, REPORT_TXT, render_report, rerender, write_report
from .results import SCHEMA, ComparisonReport, ModelReport

__all__ = [
    "COMPARE_RECIPE",
    "CONCLUSION_TOPICS",
    "DEFAULT_MODELS",
    "FIGURES",
    "GRAD_FLOW_FILE",
    "LAB_MODELS",
    "MIN_EPOCHS",
    "MIN_LEAD_OVER_CHANCE",
    "REPORT_HTML",
    "REPORT_JSON",
    "REPORT_TXT",
    "SCHEMA",
    "ComparisonReport",
    "Finding",
    "ModelReport",
    "compare",
    "count_activation_bytes",
    "count_macs",
    "count_params",
    "degradation_rows",
    "findings",
    "gradient_ratio",
    "render_report",
    "rerender",
    "subset_train",
    "synthetic_data",
    "too_short",
    "write_report",
]
