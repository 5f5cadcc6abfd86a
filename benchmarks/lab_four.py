"""The lab's own four networks: lenet, resnet18, seresnet18 and densenet121, one recipe.

The same machinery as ``lab_comparison.py`` (resumable run folders, gradient norms of every layer
from step 0, ``grad_flow.json``), with the short ResNet-18 recipe of the fast-training literature
(26 epochs reach ~93.4% single pass on the original images): Nesterov SGD, batch 500, peak lr 0.2
reached at 20% of the steps then linear decay to 0, weight decay 5e-4, flips, 4-pixel
translations, 12-pixel cutout (8 here: the rule below). The one recipe for all four, fixed before
the runs:

* 30 epochs (the most this comparison allows; the warm-up stays at 20% of them, 6 epochs) and
  cifarzoo's label smoothing 0.1 where the published recipe names none; no EMA, so the curves, the
  gradients and the test figures see the same weights.
* bf16 autocast and channels_last: on CPUs with native bf16 instructions this is 2-3x faster than
  fp32 (docs/training.rst); a resume keeps it, so it stays bit-identical.
* Models are cifarzoo's own (what ``cifarzoo.resnet18()`` builds), so the shipped weights load
  into them; their constructor arguments (``model_args``) set only how they start: the second
  rule below chose PyTorch's default convolutions.

The rule for changing the recipe, written before the runs: resnet18 trains first (after the
minutes of lenet); if its last-epoch single-pass accuracy on the 5,000 held-out images is below
91.8% (the earlier GPU run), the recipe changes to cutout 8 and every run restarts; otherwise
seresnet18 and densenet121 train with it unchanged. The test set is
read once per model, after its last epoch.

The rule applied: with 12-pixel cutout resnet18 ended at 89.18% validation accuracy (30 epochs,
training accuracy 91.7% under augmentation: it under-fits), so ``RECIPE`` has 8-pixel cutout and
every run restarted. Written before the cutout-8 runs: that recipe is final for the four (another
resnet18 try costs about 4 CPU hours here); a target it misses is stated, not chased on the test
set. The candidate below keeps every setting of that recipe and changes only how the
convolutions start, for a cause found in the code, and is judged on the validation split alone.

    python benchmarks/lab_four.py --data DATA --data-name "CIFAR-10 (JPEG mirror)" \\
        --out runs/lab-four --threads 2
    cifarzoo compare --runs runs/lab-four/{lenet,resnet18,densenet121,seresnet18} \\
        --data DATA --data-name "CIFAR-10 (JPEG mirror)" --out reports/lab-four

(docs/lab.rst's lab-four report is this report, kept in docs/_static/lab-four.)

A candidate, and its rule, fixed on 2026-12-06 before its run (then ``--reference-init``): every
convolution at PyTorch's default initialisation and no zero-initialised residual BN, as the
published recipe trains its ResNet-18 (cifarzoo's Kaiming fan-out start gives the convolutions,
which all feed a BatchNorm, 3-6x the squared norm, which is the same as a 3-6x lower learning
rate; a 3-epoch probe of resnet18 had 40.72%, 58.62% and 62.16% validation accuracy after epochs
1 to 3, against 34.74%, 37.86% and 44.64%). resnet18 trains first with it, into its own --out
folder. If its last-epoch validation accuracy reaches 90.36% (the cutout-8 run's recorded
89.56% plus 0.8 points, about two standard errors on 5,000 images), the reference
initialisation becomes the lab's recipe and the four train again with it; otherwise the
cutout-8 runs stand.

The rule applied: resnet18 with PyTorch's default start ended at 90.80% validation
accuracy, so every network of the four starts that way (``model_args``: ``conv_init="pytorch"``
and, in the ResNets, ``zero_init_residual=False``; LeNet's convolutions always do) and they train
with it. The Kaiming run's record is kept in ``benchmarks/lab_four_kaiming``.

Interrupted runs (Ctrl-C, SIGTERM, SIGKILL) resume from their last epoch with the same command.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from lab_comparison import Lab, main

from cifarzoo.training import Recipe, RunOptions

MODELS = ("lenet", "resnet18", "seresnet18", "densenet121")
EPOCHS = 30
RECIPE = Recipe(
    epochs=EPOCHS,
    batch_size=500,
    lr=0.2,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    label_smoothing=0.1,
    schedule="onecycle",
    warmup_epochs=0.2 * EPOCHS,
    ema_decay=0.0,
    crop_padding=4,
    flip=True,
    cutout=8,
    seed=0,
)
OPTIONS = RunOptions(tta_flip=False, amp=True, channels_last=True, resume=True)


#: Measured on this project's 2-core AMD EPYC (Zen 4), bf16, channels_last, batch 500: torch.compile
#: trains densenet121 1.11x faster (9.9 vs 11.0 s a step with the memory kept between steps, as
#: ``fit`` keeps it; 16.0 vs 19.5 s before; about 3.5 minutes of compiling at each start),
#: resnet18 and seresnet18 no faster (4.9 vs 4.7 s, 5.7 vs 5.3 s), so only densenet121 is
#: compiled. Its seconds per epoch are the compiled model's.
def model_args(name: str) -> dict[str, Any]:
    """How each network starts (the second rule): PyTorch's default convolutions (LeNet's always
    are) and, in the ResNets, no residual block's last BN at zero."""
    if name == "lenet":
        return {}
    return {"conv_init": "pytorch", **({"zero_init_residual": False} if "resnet" in name else {})}


LAB_FOUR = Lab(
    MODELS, RECIPE, OPTIONS, channels_last=MODELS, model_args=model_args, compiled=("densenet121",)
)
#: The start the second rule replaced: each model's own (Kaiming convolutions, zeroed last BNs).
LAB_FOUR_KAIMING = dataclasses.replace(LAB_FOUR, model_args=lambda name: {})

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], lab=LAB_FOUR, doc=__doc__))
