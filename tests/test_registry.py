"""cifarzoo's model names are a view of timm's registry, which is the only registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Run in a child process: a model registered with timm cannot be unregistered, and the other
# tests list every model.
REGISTER_WITH_TIMM_ALONE = """
import sys, types
from timm.models import register_model
import cifarzoo

module = types.ModuleType("another_zoo")
sys.modules["another_zoo"] = module

def cifar_tinynet(pretrained=False, **kwargs):
    '''A LeNet that only timm knows of.'''
    return cifarzoo.lenet(pretrained=pretrained, **kwargs)

cifar_tinynet.__module__ = "another_zoo"
module.cifar_tinynet = cifar_tinynet
register_model(cifar_tinynet)
names = cifarzoo.list_models()
print(names.index("tinynet") - names.index("seresnet152"), cifarzoo.list_models("tiny*"))
print(type(cifarzoo.create_model("cifar_tinynet", num_classes=3)).__name__)
"""


@pytest.mark.slow(seconds=4)
def test_a_model_registered_with_timm_is_a_cifarzoo_model() -> None:
    """A ``cifar_*`` model registered with timm alone is listed (in timm's natural order) and
    created by name, with nothing registered with cifarzoo itself."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", REGISTER_WITH_TIMM_ALONE],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # generous: a loaded machine is slow, a hang still ends
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1 ['tinynet']", "LeNet"]
