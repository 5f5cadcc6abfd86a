"""Run folders: what ``cifarzoo train`` writes, and the one place that writes and reads them.

A run folder holds ``model.safetensors`` (:data:`WEIGHTS_FILE`) and its
``model.safetensors.sha256`` sidecar, ``history.json`` (:data:`HISTORY_FILE`, per-epoch curves),
PNG curves, ``checkpoint.pt`` while the run trains, ``grad_flow.json`` (:data:`GRAD_FLOW_FILE`)
when the run recorded gradients, and, written last, ``metrics.json`` (:data:`MARKER`): at least
``model``, ``test_accuracy``, ``val_accuracy`` (one forward pass), ``epochs``, ``seconds``,
``data``; also ``tta``, ``tta_test_accuracy`` and ``tta_val_accuracy`` (the test-time
augmentation's figures), ``hardware``, ``per_class_accuracy`` and the recipe (``recipe``, in
older runs ``config``).

- :mod:`~cifarzoo.runs.folder`: file names; folders named, locked, finished and replaced.
- :mod:`~cifarzoo.runs.write`: :func:`write_run` (the final evaluation and files of a run) and
  :func:`restore_run` (a run folder rebuilt from its recorded parts).
- :mod:`~cifarzoo.runs.read`: :func:`read_run` (checked, for installing and publishing) and the
  lenient reads of ``compare`` and ``eval``.
- :mod:`~cifarzoo.runs.recorded`: what recorded metrics say, in every layout cifarzoo has
  written (:func:`recorded_accuracy`: the single-pass headline and the TTA figures beside it;
  :func:`recorded_tta`, :func:`recorded_bf16`: how they were measured).
"""

from __future__ import annotations

from . import folder, read, recorded, write
from .folder import *  # noqa: F403
from .read import *  # noqa: F403
from .recorded import *  # noqa: F403
from .write import *  # noqa: F403

__all__ = [*folder.__all__, *read.__all__, *recorded.__all__, *write.__all__]
