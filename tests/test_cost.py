"""cifarzoo.cost.count_activation_bytes: what autograd keeps for the backward pass, counted on
a meta copy that leaves the model as it was."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cifarzoo
from cifarzoo.cost import count_activation_bytes, count_params

FLOAT32 = 4


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 8),
    widths=st.lists(st.integers(1, 64), min_size=2, max_size=5),
)
def test_an_mlp_keeps_its_input_and_each_hidden_activation_once(
    batch: int, widths: list[int]
) -> None:
    """Each Linear keeps its input (for its weight's gradient); each ReLU keeps its output,
    which is the next Linear's input: one storage, counted once. The weights are not counted."""
    layers: list[nn.Module] = []
    for width_in, width_out in itertools.pairwise(widths):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    mlp = nn.Sequential(*layers[:-1])  # no ReLU after the last Linear
    expected = batch * sum(widths[:-1]) * FLOAT32
    assert count_activation_bytes(mlp, (batch, widths[0])) == expected


class _SliceReader(nn.Module):
    """A ReLU whose output is read twice: whole, and a slice of it (a view of its storage)."""

    def __init__(self, width: int, kept: int) -> None:
        super().__init__()
        self.kept = kept
        self.whole, self.part = nn.Linear(width, 1), nn.Linear(kept, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(x)
        return self.whole(hidden) + self.part(hidden[:, : self.kept])


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 8), width=st.integers(2, 64), data=st.data())
def test_a_saved_view_counts_its_storage_once(batch: int, width: int, data: st.DataObject) -> None:
    """The ReLU's output, the first Linear's input and the slice the second Linear keeps are
    one storage: counted once and whole (a slice keeps all of its base alive)."""
    kept = data.draw(st.integers(1, width - 1))
    model = _SliceReader(width, kept)
    assert count_activation_bytes(model, (batch, width)) == batch * width * FLOAT32


@pytest.mark.parametrize("name", ["lenet", "plain20"])
def test_activations_grow_with_the_batch(name: str) -> None:
    """Linearly, exactly: each image adds the same bytes; BatchNorm's per-channel statistics
    (none in lenet) are the part that does not grow."""
    model = cifarzoo.create_model(name)
    one, two, four = (count_activation_bytes(model, (n, 3, 32, 32)) for n in (1, 2, 4))
    per_image = two - one
    assert per_image > 0 and four - one == 3 * per_image
    assert (one == per_image) == (name == "lenet")


def test_counting_works_under_no_grad_and_leaves_hooks_alone() -> None:
    model = cifarzoo.create_model("resnet20")
    seen: list[torch.Tensor] = []
    model.layer1.register_forward_hook(lambda module, inputs, output: seen.append(output))
    expected = count_activation_bytes(model)
    with torch.no_grad():
        assert count_activation_bytes(model) == expected
    with torch.inference_mode():
        assert count_activation_bytes(model) == expected
    assert seen == []  # the meta copy ran without the model's hooks


def test_counting_leaves_the_model_as_it_was() -> None:
    model = cifarzoo.create_model("resnet20").eval().to(torch.bfloat16)
    model.layer1[0].conv1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    float32 = count_activation_bytes(cifarzoo.create_model("resnet20"))
    assert count_activation_bytes(model) == float32  # given in float32, whatever the dtype
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert not model.layer1[0].conv1.weight.requires_grad


def test_a_meta_model_counts_as_the_real_one() -> None:
    with torch.device("meta"):
        meta = cifarzoo.create_model("seresnet20")
    assert count_activation_bytes(meta) == count_activation_bytes(
        cifarzoo.create_model("seresnet20")
    )


def test_dense_connections_keep_more_than_a_resnet_of_more_parameters() -> None:
    """DenseNet-BC's concatenations are kept again by every layer that reads them (Huang et
    al.'s memory cost): more activations than ResNet-56 with fewer parameters."""
    with torch.device("meta"):
        dense = cifarzoo.create_model("densenet_bc_100_k12")
        resnet = cifarzoo.create_model("resnet56")
    assert count_params(dense) < count_params(resnet)
    assert count_activation_bytes(dense) > 4 * count_activation_bytes(resnet)
