"""timm's generic model checks (the ones its tests/test_models.py runs on every timm model),
run against the cifarzoo models.

Checks of shapes and configuration run for every registered model on the meta device (no
compute); checks that compare numbers, trace, compile or train run for one model of each kind.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from timm.models._features import FeatureGetterNet  # the wrapper timm picks; no public name
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import cifarzoo
from cifarzoo.timm_compat import feature_take_indices

ALL = cifarzoo.list_models()
# One model of each family and kind of block, for the checks that compute.
KINDS = ["lenet", "resnet20", "seresnet20", "plain20", "densenet_bc_100_k12"]
# For the checks that only trace and compile (on the meta device): every kind of graph.
GRAPH_KINDS = [*KINDS, "resnet18", "resnet50", "seresnet50", "densenet121"]
SIZE = 32


def meta_model(name: str, **kwargs: Any) -> nn.Module:
    with torch.device("meta"):
        model: nn.Module = timm.create_model(f"cifar_{name}", **kwargs)
    return model.eval()


def meta_input(batch_size: int = 1) -> torch.Tensor:
    return torch.empty(batch_size, 3, SIZE, SIZE, device="meta")


def spatial(t: torch.Tensor) -> tuple[int, int]:
    return t.shape[-2], t.shape[-1]


@pytest.mark.parametrize("name", ALL)
def test_default_cfg_describes_the_model(name: str) -> None:
    """timm's test_model_default_cfgs."""
    model = meta_model(name)
    cfg = model.pretrained_cfg
    x = meta_input()
    features = model.forward_features(x)
    assert spatial(features) == tuple(cfg["pool_size"]), "unpooled feature size != pool_size"
    assert features.shape[1] == model.num_features
    pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (1, model.head_hidden_size)
    model.reset_classifier(0)
    assert model(x).shape == pre_logits.shape
    model.reset_classifier(0, "")  # no classifier, no pooling
    out = model(x)
    assert out.ndim == 4 and spatial(out) == tuple(cfg["pool_size"])
    unpooled = meta_model(name, num_classes=0, global_pool="")
    assert unpooled(x).shape == out.shape
    state_dict = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state_dict
    assert f"{cfg['classifier']}.weight" in meta_model(name).state_dict()


@pytest.mark.parametrize("name", ["resnet20", "lenet"])
def test_no_pooling_needs_no_classifier(name: str) -> None:
    with pytest.raises(ValueError, match=r"global_pool='' \(no pooling\) needs num_classes=0"):
        timm.create_model(f"cifar_{name}", global_pool="")
    model = cifarzoo.create_model(name)
    with pytest.raises(ValueError, match=r"needs num_classes=0"):
        model.reset_classifier(5, "")
    assert model.num_classes == 10 and model.global_pool == "avg"
    model.reset_classifier(0, "")
    model.reset_classifier(0)  # None keeps the pooling
    assert model.global_pool == ""
    model.reset_classifier(3, "avg")
    assert model.eval()(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_forward_intermediates_shapes(name: str) -> None:
    """timm's test_model_forward_intermediates, shapes."""
    model = meta_model(name)
    info = timm.models.FeatureInfo(model.feature_info, list(range(len(model.feature_info))))
    x = meta_input(2)
    final, intermediates = model.forward_intermediates(x)
    assert final.shape == model.forward_features(x).shape
    assert len(intermediates) == len(info) >= 2
    for channels, reduction, out in zip(
        info.channels(), info.reduction(), intermediates, strict=True
    ):
        assert out.shape[:2] == (2, channels)
        assert max(spatial(out)) <= math.ceil(SIZE / reduction) + 1
    assert intermediates[-1].shape == final.shape
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [o.shape for o in last_two] == [o.shape for o in intermediates[-2:]]
    first = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
    assert [o.shape for o in first] == [intermediates[0].shape, intermediates[-1].shape]
    early, [stem] = model.forward_intermediates(x, indices=[0], stop_early=True)
    assert early.shape == stem.shape == intermediates[0].shape
    with pytest.raises(AssertionError, match="out of range"):
        model.forward_intermediates(x, indices=[len(info)])
    with pytest.raises(ValueError, match="output_fmt must be 'NCHW'"):
        model.forward_intermediates(x, output_fmt="NHWC")


def same_weights(name: str, **kwargs: Any) -> nn.Module:
    """The model ``name`` with the same initial weights on every call."""
    torch.manual_seed(0)
    model: nn.Module = timm.create_model(f"cifar_{name}", **kwargs)
    return model.eval()


@pytest.mark.parametrize("name", KINDS)
def test_forward_intermediates_are_the_models_features(name: str) -> None:
    """The intermediates are what features_only returns, the final output is forward_features'
    (with gradient checkpointing too, as timm checks)."""
    model, extractor = same_weights(name), same_weights(name, features_only=True)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        for got, expected in zip(intermediates, extractor(x), strict=True):
            torch.testing.assert_close(got, expected)
        if model.supports_grad_checkpointing:
            model.set_grad_checkpointing()
            checkpointed, _ = model.forward_intermediates(x)
            torch.testing.assert_close(checkpointed, final)


def test_lenet_feature_points_are_the_lab_network_poolings() -> None:
    model, extractor = same_weights("lenet"), same_weights("lenet", features_only=True)
    x = torch.randn(2, 3, SIZE, SIZE)
    assert isinstance(extractor, FeatureGetterNet)
    assert extractor.feature_info.channels() == [6, 16]
    with torch.no_grad():
        first = model.pool(torch.relu(model.conv1(x)))
        second = model.pool(torch.relu(model.conv2(first)))
        outs = extractor(x)
    torch.testing.assert_close(outs[0], first)
    torch.testing.assert_close(outs[1], second)
    [only] = timm.create_model("cifar_lenet", features_only=True, out_indices=(0,))(x)
    assert only.shape == (2, 6, 14, 14)


@pytest.mark.parametrize("feature_cls", ["hook", "fx"])
def test_lenet_features_only_refuses_module_hooks(feature_cls: str) -> None:
    with pytest.raises(ValueError, match=r"cifar_lenet.*feature_cls='getter'"):
        timm.create_model(
            "cifar_lenet", features_only=True, feature_cfg={"feature_cls": feature_cls}
        )


@pytest.mark.parametrize("name", ALL)
def test_features_only(name: str) -> None:
    """timm's test_model_forward_features, shapes."""
    extractor = meta_model(name, features_only=True)
    channels, reductions = extractor.feature_info.channels(), extractor.feature_info.reduction()
    outs = extractor(meta_input())
    assert len(outs) == len(channels) >= 2
    for c, r, out in zip(channels, reductions, outs, strict=True):
        assert out.shape[:2] == (1, c) and max(spatial(out)) <= math.ceil(SIZE / r) + 1


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("indices", [1, [0], [1], [0, 2], [-2]])
def test_prune_intermediate_layers(name: str, indices: int | list[int]) -> None:
    """Pruning keeps the chosen feature points, with the same values, and drops the layers
    after the last one and the head, as timm's models do."""
    model = cifarzoo.create_model(name).eval()
    n_points = len(model.feature_info)
    if not isinstance(indices, int) and max(indices) >= n_points:
        pytest.skip(f"{name} has {n_points} feature points")
    pruned = copy.deepcopy(model)
    kept = pruned.prune_intermediate_layers(indices)
    expected_kept, max_index = feature_take_indices(n_points, indices)
    assert kept == expected_kept
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        full = model.forward_intermediates(x, intermediates_only=True)
        got = pruned.forward_intermediates(x, indices=kept, intermediates_only=True)
        out = pruned(x)
    assert len(got) == len(kept)
    for i, g in zip(kept, got, strict=True):
        torch.testing.assert_close(g, full[i])
    torch.testing.assert_close(out, full[max_index])  # unpooled, no head
    assert pruned.num_features == model.feature_info[max_index]["num_chs"]
    assert isinstance(pruned.get_classifier(), nn.Identity) and pruned.num_classes == 0
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in pruned.parameters()) < n_params


@pytest.mark.parametrize("name", KINDS)
def test_prune_keeping_the_last_point_and_the_head_changes_nothing(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    pruned = copy.deepcopy(model)
    assert pruned.prune_intermediate_layers(prune_head=False) == [len(model.feature_info) - 1]
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x))


# --- torch.fx, as timm traces (timm's test_model_forward_fx and its TorchScript variant) ---


def fx_model(model: nn.Module) -> nn.Module:
    """``model`` traced to its output node with timm's tracer settings."""
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(),
        autowrap_functions=get_notrace_functions(),
        param_shapes_constant=True,
    )
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    traced: nn.Module = create_feature_extractor(
        model,
        train_return_nodes=[train_nodes[-1]],
        eval_return_nodes=[eval_nodes[-1]],
        tracer_kwargs=tracer_kwargs,
    )
    return traced


def script(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still used
        scripted: torch.jit.ScriptModule = torch.jit.script(module)
    return scripted


@pytest.mark.parametrize("name", KINDS)
def test_fx_traced_model_gives_the_models_outputs(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    traced = fx_model(model).eval()
    with torch.no_grad():
        [out] = traced(x).values()
        torch.testing.assert_close(out, model(x))
        [scripted_out] = script(traced)(x).values()
        torch.testing.assert_close(scripted_out, out)


@pytest.mark.parametrize("name", KINDS)
def test_fx_traced_model_trains(name: str) -> None:
    """timm's test_model_backward_fx."""
    model = cifarzoo.create_model(name, num_classes=42).train()
    [out] = fx_model(model).train()(torch.randn(2, 3, SIZE, SIZE)).values()
    assert out.shape == (2, 42)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", GRAPH_KINDS)
def test_fx_traced_graph_scripts(name: str) -> None:
    """timm's test_model_forward_fx_torchscript: fails with "Unknown type name '_Tensor_'" when
    the traced forward's annotations are strings."""
    with timm.set_scriptable(True):
        model = meta_model(name)
    [out] = script(fx_model(model))(meta_input()).values()
    assert out.shape == (1, 10)


@pytest.mark.parametrize("name", [n for n in GRAPH_KINDS if n != "lenet"])
def test_fx_feature_extractor_scripts(name: str) -> None:
    """timm's test_model_forward_torchscript_with_features_fx."""
    with timm.set_scriptable(True):
        extractor = meta_model(name, features_only=True, feature_cfg={"feature_cls": "fx"})
    outs = script(extractor)(meta_input())
    assert isinstance(outs, list)
    assert [o.shape[1] for o in outs] == extractor.feature_info.channels()
