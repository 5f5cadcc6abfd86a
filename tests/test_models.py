"""Model families: shapes, parameter counts, the timm interface, torchvision compatibility."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from typing import Any

import pytest
import timm
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models import FeatureListNet, checkpoint_seq, group_parameters
from timm.optim import create_optimizer_v2
from torch import nn

import cifarzoo
from cifarzoo.layers import BasicBlock, Bottleneck, DenseLayer, SEBlock
from cifarzoo.models import cifar_densenet, cifar_resnet
from cifarzoo.runs import recorded_accuracy

SMALL = ["lenet", "resnet20", "seresnet20", "densenet_bc_100_k12"]
# Families with timm's feature extraction and gradient checkpointing.
PYRAMIDS = ["resnet20", "seresnet20", "densenet_bc_100_k12"]
ALL = cifarzoo.list_models()

# At 10 classes: torchvision's model with a 3x3 stride-1 conv1 and no max-pool.
PARAM_COUNTS = {
    "resnet18": 11_173_962,
    "resnet34": 21_282_122,
    "resnet50": 23_520_842,
    "resnet101": 42_512_970,
    "resnet152": 58_156_618,
    "densenet121": 6_956_426,
    "densenet169": 12_493_450,
    "densenet201": 18_104_458,
    "lenet": 62_006,
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_family_is_listed() -> None:
    expected = {"lenet", "densenet_bc_100_k12"}
    expected |= {f"{p}resnet{d}" for p in ("", "se") for d in (18, 34, 50, 101, 152)}
    expected |= {f"{p}resnet{d}" for p in ("", "se") for d in (20, 32, 44, 56, 110)}
    expected |= {f"densenet{d}" for d in (121, 169, 201, 264)}
    expected |= {f"plain{d}" for d in (20, 32, 44, 56, 110)}
    assert set(ALL) == expected
    assert ALL.index("resnet20") < ALL.index("resnet101"), "natural order"
    assert cifarzoo.list_models("seresnet2*") == ["seresnet20"]


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_counts(name: str) -> None:
    assert n_params(cifarzoo.create_model(name)) == PARAM_COUNTS[name]


def test_small_tier_sizes() -> None:
    assert 0.26e6 < n_params(cifarzoo.resnet20()) < 0.28e6  # He et al.: 0.27 M
    assert 0.84e6 < n_params(cifarzoo.resnet56()) < 0.87e6  # 0.85 M
    assert 1.7e6 < n_params(cifarzoo.resnet110()) < 1.75e6  # 1.7 M
    assert 0.75e6 < n_params(cifarzoo.densenet_bc_100_k12()) < 0.8e6  # 0.8 M


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_networks_are_resnets_without_shortcuts(depth: int) -> None:
    plain = cifarzoo.create_model(f"plain{depth}")
    residual = cifarzoo.create_model(f"resnet{depth}")
    assert timm.create_model(f"cifar_plain{depth}").__class__ is cifar_resnet.ResNet
    blocks = [m for m in plain.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == (depth - 2) // 2 and all(not b.residual for b in blocks)
    assert all(b.downsample is None for b in blocks)
    # The same layers less the two projection shortcuts (1x1 conv + BN each).
    shortcut_params = sum(
        sum(p.numel() for p in b.downsample.parameters())
        for b in residual.modules()
        if isinstance(b, BasicBlock) and b.downsample is not None
    )
    assert n_params(plain) == n_params(residual) - shortcut_params
    # Without shortcuts, a block's output depends on its input only through its convolutions.
    block = blocks[0].eval()
    x = torch.rand(2, 16, 8, 8)
    with torch.no_grad():
        expected = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))
        torch.testing.assert_close(block(x), expected)
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_plain_networks_start_with_nonzero_blocks() -> None:
    plain = cifarzoo.plain20()
    assert all(bool(m.bn2.weight.ne(0).all()) for m in plain.modules() if isinstance(m, BasicBlock))
    assert all(
        bool(m.bn2.weight.eq(0).all())
        for m in cifarzoo.resnet20().modules()
        if isinstance(m, BasicBlock)
    )
    same_init = cifarzoo.resnet20(zero_init_residual=False)
    assert all(
        bool(m.bn2.weight.eq(1).all()) for m in same_init.modules() if isinstance(m, BasicBlock)
    )
    with pytest.raises(ValueError, match="zero_init_residual=True needs residual=True"):
        cifarzoo.plain20(zero_init_residual=True)


def _conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach() for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["resnet20", "seresnet20", "plain20", "densenet_bc_100_k12"])
def test_conv_init_pytorch_starts_every_convolution_at_pytorchs_default(name: str) -> None:
    """PyTorch's default is uniform within 1/sqrt(fan_in); the Kaiming start (the default) is
    normal with variance 2/fan (fan-out in ResNets, fan-in in DenseNets), six times as large
    where the two fans agree. Nothing but the convolutions' weights changes."""
    torch.manual_seed(0)
    kaiming = cifarzoo.create_model(name)
    torch.manual_seed(0)
    default = cifarzoo.create_model(name, conv_init="pytorch")
    for w_k, w_p in zip(_conv_weights(kaiming), _conv_weights(default), strict=True):
        fan_in = w_p[0].numel()
        assert float(w_p.abs().max()) <= fan_in**-0.5
        if w_p.numel() >= 4096 and w_p.shape[0] == w_p.shape[1]:  # fan-in = fan-out
            assert 5.0 < float(w_k.var() / w_p.var()) < 7.2, w_p.shape
    conv_weights = {n for n, m in default.named_modules() if isinstance(m, nn.Conv2d)}
    for key, value in kaiming.state_dict().items():
        if key.rpartition(".")[0] not in conv_weights or not key.endswith("weight"):
            assert torch.equal(value, default.state_dict()[key]), key


def test_conv_init_is_checked_and_passes_through_timm() -> None:
    with pytest.raises(ValueError, match="conv_init must be one of 'kaiming', 'pytorch'"):
        cifarzoo.resnet18(conv_init="xavier")
    model = timm.create_model("cifar_densenet121", conv_init="pytorch")
    assert all(float(w.abs().max()) <= w[0].numel() ** -0.5 for w in _conv_weights(model))


@pytest.mark.parametrize("name", ALL)
def test_forward_every_model(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(SMALL),
    batch=st.integers(1, 5),
    num_classes=st.integers(1, 120),
    in_chans=st.integers(1, 4),
)
def test_forward_shapes_small_models(
    name: str, batch: int, num_classes: int, in_chans: int
) -> None:
    model = cifarzoo.create_model(name, num_classes=num_classes, in_chans=in_chans).eval()
    x = torch.randn(batch, in_chans, 32, 32)
    assert model(x).shape == (batch, num_classes)
    features = model.forward_features(x)
    assert features.shape[:2] == (batch, model.num_features)
    pre = model.forward_head(features, pre_logits=True)
    assert pre.shape == (batch, model.head_hidden_size)
    assert model.get_classifier()(pre).shape == (batch, num_classes)


@settings(max_examples=6, deadline=None)
@given(
    name=st.sampled_from(["resnet18", "seresnet50", "densenet121"]),
    num_classes=st.integers(1, 200),
    size=st.sampled_from([32, 40, 64]),
)
def test_forward_shapes_big_models(name: str, num_classes: int, size: int) -> None:
    model = cifarzoo.create_model(name, num_classes=num_classes).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, num_classes)


@pytest.mark.parametrize("name", [*SMALL, "resnet50"])
def test_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    # zero_init_residual would leave exact zero gradients behind the zeroed BNs.
    kwargs = {"zero_init_residual": False} if "resnet" in name else {}
    model = cifarzoo.create_model(name, **kwargs).train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ["resnet20", "seresnet20", "resnet50"])
def test_zero_init_residual_starts_every_block_as_its_shortcut(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]
    assert len(blocks) == {"resnet50": 16}.get(name, 9)
    for block in blocks:
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        shortcut = x if block.downsample is None else block.downsample(x)
        with torch.no_grad():
            torch.testing.assert_close(block(x), torch.relu(shortcut), rtol=0, atol=0)
    # Without it, the residual branch contributes from the start.
    block = cifarzoo.create_model(name, zero_init_residual=False).eval().layer1[0]
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    shortcut = x if block.downsample is None else block.downsample(x)
    with torch.no_grad():
        assert not torch.equal(block(x), torch.relu(shortcut))


@pytest.mark.parametrize("name", SMALL)
def test_eval_mode_is_deterministic(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_reset_classifier_follows_timm() -> None:
    model = cifarzoo.resnet20()
    model.reset_classifier(5)
    assert model.num_classes == 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, model.num_features)
    model.reset_classifier(4, "avg")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    lenet = cifarzoo.lenet()
    lenet.reset_classifier(3, global_pool=None)
    assert lenet.get_classifier() is lenet.fc3
    assert lenet(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("global_pool", ["max", "avgmax", "token"])
def test_reset_classifier_only_average_pooling(global_pool: str) -> None:
    model = cifarzoo.seresnet20()
    with pytest.raises(ValueError, match=r"only supports average pooling.*forward_features\(x\)"):
        model.reset_classifier(5, global_pool)
    assert model.num_classes == 10 and model.get_classifier().out_features == 10


@pytest.mark.parametrize("name", SMALL)
def test_reset_classifier_follows_the_model_dtype_and_device(name: str) -> None:
    model = cifarzoo.create_model(name).double()
    model.reset_classifier(0)
    model.reset_classifier(5)
    assert model.get_classifier().weight.dtype == torch.float64
    assert model.eval()(torch.randn(2, 3, 32, 32, dtype=torch.float64)).shape == (2, 5)
    model.to("meta").reset_classifier(3)
    assert model.get_classifier().weight.device.type == "meta"


@pytest.mark.parametrize("name", SMALL)
def test_num_classes_zero_builds_a_backbone(name: str) -> None:
    model = timm.create_model(f"cifar_{name}", num_classes=0).eval()
    assert model.num_classes == 0
    assert isinstance(model.get_classifier(), nn.Identity)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, model.head_hidden_size)
        torch.testing.assert_close(
            out, model.forward_head(model.forward_features(x), pre_logits=True)
        )


def test_pretrained_backbone_with_num_classes_zero() -> None:
    full = cifarzoo.resnet20(pretrained=True).eval()
    backbone = cifarzoo.resnet20(pretrained=True, num_classes=0).eval()
    assert isinstance(backbone.fc, nn.Identity)
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    assert backbone.state_dict().keys() == expected.keys()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, expected[key]), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = backbone(x)
        torch.testing.assert_close(full.fc(features), full(x))


def test_lenet_is_the_lab_network() -> None:
    model = cifarzoo.lenet()
    assert [name for name, _ in model.named_children()] == [
        "conv1",
        "pool",
        "conv2",
        "fc1",
        "fc2",
        "head_drop",
        "fc3",
    ]
    assert model.head_drop.p == 0.0
    assert (model.conv1.in_channels, model.conv1.out_channels) == (3, 6)
    assert model.conv1.kernel_size == (5, 5)
    assert (model.fc1.in_features, model.fc1.out_features) == (400, 120)
    assert (model.fc2.out_features, model.fc3.in_features) == (84, 84)
    text = repr(model)
    assert "(pool): MaxPool2d(kernel_size=2, stride=2" in text


def test_cifar_stems() -> None:
    resnet = cifarzoo.resnet18()
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())
    densenet = cifarzoo.densenet121()
    assert densenet.features.conv0.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in densenet.modules())
    assert resnet.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_seresnet_is_resnet_with_se_in_every_block() -> None:
    plain, se = cifarzoo.resnet20(), cifarzoo.seresnet20()
    se_blocks = [m for m in se.modules() if isinstance(m, SEBlock)]
    assert len(se_blocks) == 9
    plain_keys = set(plain.state_dict())
    se_keys = {k for k in se.state_dict() if ".se." not in k}
    assert plain_keys == se_keys
    assert sum(isinstance(m, SEBlock) for m in cifarzoo.seresnet50().modules()) == 16


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.randn(2, 1, 32, 32), r"shape \(N, 3, H, W\).*\[2, 1, 32, 32\]"),
        (torch.randn(3, 32, 32), r"x.unsqueeze\(0\)"),
    ],
)
@pytest.mark.parametrize("name", SMALL)
def test_wrong_channels_give_clear_error(name: str, bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cifarzoo.create_model(name)(bad)


def test_errors_name_the_registered_architecture() -> None:
    bad = torch.randn(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"^cifar_seresnet20 expects a batch"):
        cifarzoo.seresnet20()(bad)
    with pytest.raises(ValueError, match=r"^cifar_densenet_bc_100_k12 expects a batch"):
        timm.create_model("cifar_densenet_bc_100_k12")(bad)
    with pytest.raises(ValueError, match=r"^cifar_resnet20 expects a batch"):
        cifarzoo.resnet20(pretrained=True)(bad)  # the shipped weights
    # A model built without timm has no pretrained_cfg: the class names it.
    with pytest.raises(ValueError, match=r"^ResNet expects a batch"):
        cifarzoo.ResNet(BasicBlock, [1, 1, 1], widths=(8, 16, 32))(bad)


@pytest.mark.parametrize("size", [28, 64])
def test_lenet_rejects_other_sizes(size: int) -> None:
    with pytest.raises(ValueError, match=f"32x32 images.*got {size}x{size}"):
        cifarzoo.lenet()(torch.randn(1, 3, size, size))


@pytest.mark.parametrize("num_classes", [-1, 2.5, True, "10"])
@pytest.mark.parametrize("name", SMALL)
def test_bad_num_classes(name: str, num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes must be a non-negative integer"):
        cifarzoo.create_model(name, num_classes=num_classes)


@pytest.mark.parametrize("drop_rate", [-0.1, 1.0, 1.5, float("nan"), True, "0.2"])
@pytest.mark.parametrize("name", SMALL)
def test_bad_drop_rate_fails_at_build_time(name: str, drop_rate: object) -> None:
    with pytest.raises(ValueError, match=r"drop_rate .* must be in \[0, 1\)"):
        cifarzoo.create_model(name, drop_rate=drop_rate)


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(SMALL), p=st.floats(0.1, 0.9), seed=st.integers(0, 2**16))
def test_drop_rate_is_classifier_dropout_in_train_mode_only(name: str, p: float, seed: int) -> None:
    torch.manual_seed(seed)
    model = cifarzoo.create_model(name, drop_rate=p, num_classes=3)
    assert model.drop_rate == p
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        features = model.eval().forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(model.forward_head(features), model.get_classifier()(pooled))
        assert torch.equal(model.forward_head(features, pre_logits=True), pooled)
        dropped = model.train().forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    # Inverted dropout on the pre-logit features: each one is zeroed or scaled by 1 / (1 - p).
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], pooled[kept] / (1 - p))
    assert (~kept & (pooled != 0)).any()
    assert logits.shape == (4, 3)


def test_densenet_drop_rate_is_the_classifier_dropout() -> None:
    model = timm.create_model("cifar_densenet_bc_100_k12", drop_rate=0.2)
    names = [name for name, _ in model.named_children()]
    assert names == ["features", "head_drop", "classifier"]
    assert isinstance(model.head_drop, nn.Dropout) and model.head_drop.p == 0.2
    layers = [m for m in model.modules() if isinstance(m, DenseLayer)]
    assert len(layers) == 48
    assert all(layer.drop_rate == 0.0 for layer in layers)
    assert not any(isinstance(m, nn.Dropout) for m in model.features.modules())
    # torchvision's per-layer dropout is timm's proj_drop_rate.
    model = timm.create_model("cifar_densenet_bc_100_k12", proj_drop_rate=0.1)
    assert all(m.drop_rate == 0.1 for m in model.modules() if isinstance(m, DenseLayer))
    assert model.head_drop.p == 0.0


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"Unknown cifarzoo model 'resnet21'.*resnet20"):
        cifarzoo.create_model("resnet21")
    with pytest.raises(ValueError, match=r"Did you mean: .*densenet121"):
        cifarzoo.create_model("densenet12")
    with pytest.raises(ValueError, match=r"list_models"):
        cifarzoo.create_model("vgg16")


def test_create_model_accepts_the_timm_prefix() -> None:
    model = cifarzoo.create_model("cifar_resnet20", num_classes=7)
    assert isinstance(model, cifarzoo.ResNet) and model.num_classes == 7


# --- torchvision compatibility ------------------------------------------------------------


def _torchvision_cifar_resnet(name: str) -> nn.Module:
    model = getattr(torchvision.models, name)(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _torchvision_cifar_densenet(name: str) -> nn.Module:
    model = getattr(torchvision.models, name)(num_classes=10)
    model.features.conv0 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.features.pool0 = nn.Identity()
    return model


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet34", "resnet50", "densenet121", "densenet169", "densenet201"]
)
def test_torchvision_state_dict_round_trip(name: str) -> None:
    torch.manual_seed(0)
    if name.startswith("resnet"):
        reference = _torchvision_cifar_resnet(name)
    else:
        reference = _torchvision_cifar_densenet(name)
    ours = cifarzoo.create_model(name)
    assert n_params(ours) == n_params(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.load_state_dict(ours.state_dict(), strict=True)
    # Non-trivial BN statistics, so that a mismatch in any buffer would show.
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    ours.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize(
    ("name", "stem", "classifier", "deep_weight"),
    [
        ("resnet18", "conv1", "fc", "layer4.1.conv2.weight"),
        (
            "densenet121",
            "features.conv0",
            "classifier",
            "features.denseblock4.denselayer16.conv2.weight",
        ),
    ],
)
def test_imagenet_torchvision_backbone_transfers(
    name: str, stem: str, classifier: str, deep_weight: str
) -> None:
    imagenet = getattr(torchvision.models, name)().state_dict()  # 7x7 stem, 1000 classes
    dropped = {f"{stem}.weight", f"{classifier}.weight", f"{classifier}.bias"}
    backbone = {k: v for k, v in imagenet.items() if k not in dropped}
    model = cifarzoo.create_model(name)
    result = model.load_state_dict(backbone, strict=False)
    assert set(result.missing_keys) == dropped
    assert result.unexpected_keys == []
    assert torch.equal(model.state_dict()[deep_weight], imagenet[deep_weight])
    with pytest.raises(RuntimeError, match=rf"size mismatch for {stem}.weight"):
        model.load_state_dict(imagenet, strict=True)


# --- timm -----------------------------------------------------------------------------------


def test_timm_registry() -> None:
    names = timm.list_models("cifar_*")
    assert {f"cifar_{n}" for n in ALL} == set(names)
    assert set(timm.list_models(module="cifar_resnet")) >= {"cifar_resnet18", "cifar_seresnet20"}
    # cifarzoo must not overwrite timm's own ImageNet models.
    assert timm.create_model("resnet18").conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("name", ["cifar_densenet121", "cifar_seresnet18", "cifar_lenet"])
def test_timm_create_and_cfg(name: str) -> None:
    model = timm.create_model(name, num_classes=4)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 32, 32)
    assert cfg["crop_pct"] == 1.0
    assert tuple(cfg["mean"]) == (0.4914, 0.4822, 0.4465)
    assert tuple(cfg["std"]) == (0.2470, 0.2435, 0.2616)
    assert cfg["num_classes"] == 10
    assert cfg["architecture"] == name
    first_conv = model.get_submodule(cfg["first_conv"])
    assert isinstance(first_conv, nn.Conv2d) and first_conv.in_channels == 3
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()


def test_timm_transforms_are_cifar_transforms() -> None:
    from PIL import Image

    model = timm.create_model("cifar_resnet20")
    config = timm.data.resolve_data_config({}, model=model)
    assert config["input_size"] == (3, 32, 32)
    transform = timm.data.create_transform(**config)
    image = Image.new("RGB", (32, 32), color=(125, 123, 114))
    x = transform(image)
    assert x.shape == (3, 32, 32)
    expected = (torch.tensor([125, 123, 114]) / 255 - torch.tensor(cifarzoo.CIFAR10_MEAN)) / (
        torch.tensor(cifarzoo.CIFAR10_STD)
    )
    torch.testing.assert_close(x[:, 0, 0], expected, atol=1e-2, rtol=0)
    # Larger images are resized to 32x32, not cropped to a 224 ImageNet view.
    assert transform(Image.new("RGB", (64, 64))).shape == (3, 32, 32)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_weights_default_loads_the_published_weights() -> None:
    """torchvision's ``weights="DEFAULT"`` is ``pretrained=True``, in every entry point."""
    pretrained = cifarzoo.resnet20(pretrained=True)
    for model in (
        cifarzoo.resnet20(weights="DEFAULT"),
        cifarzoo.create_model("resnet20", weights="DEFAULT"),
        timm.create_model("cifar_resnet20", weights="DEFAULT"),
    ):
        assert _same_weights(model, pretrained)
    with pytest.raises(cifarzoo.PretrainedWeightsError, match="no published pretrained weights"):
        cifarzoo.resnet34(weights="DEFAULT")


def test_weights_object_gives_the_transform_and_the_categories() -> None:
    from PIL import Image

    weights = cifarzoo.get_weights("cifar_resnet20")
    assert weights == cifarzoo.get_weights("resnet20") == cifarzoo.Weights("cifar_resnet20.c10")
    assert weights.meta["categories"] == list(cifarzoo.CIFAR10_CLASSES)
    assert weights.meta["num_params"] == 272_474
    assert (recorded_accuracy(weights.meta["metrics"]).test or 0.0) > 0.8
    assert _same_weights(cifarzoo.resnet20(weights=weights), cifarzoo.resnet20(pretrained=True))
    pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    x = weights.transforms()(Image.fromarray(pixels.numpy()))
    mean, std = (
        torch.tensor(v).view(3, 1, 1) for v in (cifarzoo.CIFAR10_MEAN, cifarzoo.CIFAR10_STD)
    )
    torch.testing.assert_close(x, (pixels.permute(2, 0, 1) / 255 - mean) / std)
    with pytest.raises(cifarzoo.PretrainedWeightsError, match="are resnet20's, not resnet32's"):
        cifarzoo.resnet32(weights=weights)
    with pytest.raises(cifarzoo.PretrainedWeightsError, match="no published pretrained weights"):
        cifarzoo.get_weights("resnet34")
    with pytest.raises(ValueError, match="Unknown cifarzoo model"):
        cifarzoo.get_weights("resnet21")


def test_import_emits_no_warnings() -> None:
    # A fresh interpreter: in this one cifarzoo is already imported and registered.
    code = "import cifarzoo, timm; timm.create_model('cifar_resnet20'); import cifarzoo.models"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "kwargs", "channels", "reductions"),
    [
        ("resnet18", {}, [64, 64, 128, 256, 512], [1, 1, 2, 4, 8]),
        ("resnet20", {}, [16, 16, 32, 64], [1, 1, 2, 4]),
        ("resnet20", {"out_indices": (1, 2)}, [16, 32], [1, 2]),
        ("seresnet50", {"out_indices": (0, 4)}, [64, 2048], [1, 8]),
        ("densenet121", {}, [64, 256, 512, 1024, 1024], [1, 1, 2, 4, 8]),
        ("densenet_bc_100_k12", {}, [24, 216, 300, 342], [1, 1, 2, 4]),
    ],
)
def test_timm_features_only(
    name: str, kwargs: dict[str, Any], channels: list[int], reductions: list[int]
) -> None:
    extractor = timm.create_model(f"cifar_{name}", features_only=True, **kwargs).eval()
    assert isinstance(extractor, FeatureListNet)
    assert extractor.feature_info.channels() == channels
    assert extractor.feature_info.reduction() == reductions
    with torch.no_grad():
        outs = extractor(torch.randn(2, 3, 32, 32))
    expected = [(2, c, 32 // r, 32 // r) for c, r in zip(channels, reductions, strict=True)]
    assert [o.shape for o in outs] == expected


@pytest.mark.parametrize("name", PYRAMIDS)
def test_feature_points_are_the_models_own_activations(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    info = model.feature_info
    extractor = FeatureListNet(
        copy.deepcopy(model),
        out_indices=tuple(range(len(info))),
        flatten_sequential=name.startswith("densenet"),
    ).eval()
    captured: dict[str, torch.Tensor] = {}
    for point in info:
        module = model.get_submodule(point["module"])
        module.register_forward_hook(
            lambda m, i, o, key=point["module"]: captured.__setitem__(key, o.clone())
        )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs = extractor(x)
        torch.testing.assert_close(outs[-1], model.forward_features(x))
    assert len(outs) == len(info)
    for out, point in zip(outs, info, strict=True):
        torch.testing.assert_close(out, captured[point["module"]])


@pytest.mark.parametrize("name", PYRAMIDS)
def test_grad_checkpointing_same_outputs_and_gradients(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    kwargs = {"zero_init_residual": False} if "resnet" in name else {}
    plain = cifarzoo.create_model(name, **kwargs)
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    assert checkpointed.grad_checkpointing and not plain.grad_checkpointing
    calls: list[int] = []

    def counting_checkpoint_seq(*args: Any, **kw: Any) -> torch.Tensor:
        calls.append(1)
        out: torch.Tensor = checkpoint_seq(*args, **kw)
        return out

    family = cifar_resnet if "resnet" in name else cifar_densenet
    monkeypatch.setattr(family, "checkpoint_seq", counting_checkpoint_seq)
    x = torch.randn(4, 3, 32, 32)
    outs = []
    for model in (plain, checkpointed):
        out = model.train()(x)
        nn.functional.cross_entropy(out, torch.arange(4)).backward()
        outs.append(out.detach())
    assert calls, "checkpoint_seq was not used"
    torch.testing.assert_close(outs[1], outs[0])
    for (pname, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, pname
        torch.testing.assert_close(q.grad, p.grad, msg=pname)
    checkpointed.set_grad_checkpointing(False)
    assert not checkpointed.grad_checkpointing


def test_lenet_has_no_grad_checkpointing() -> None:
    model = cifarzoo.lenet()
    with pytest.raises(ValueError, match=r"cifar_lenet does not support gradient checkpointing"):
        model.set_grad_checkpointing()
    model.set_grad_checkpointing(False)


@pytest.mark.parametrize(
    ("name", "n_blocks", "first", "last"),
    [
        ("resnet20", 9, "conv1.weight", "fc.weight"),
        ("densenet_bc_100_k12", 48, "features.conv0.weight", "classifier.weight"),
    ],
)
def test_layer_decay_optimizer(name: str, n_blocks: int, first: str, last: str) -> None:
    model = cifarzoo.create_model(name)
    optimizer = create_optimizer_v2(model, "sgd", lr=0.1, layer_decay=0.7)
    scales = {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert len(scales) == len(params)
    n_groups = n_blocks + 2  # the stem, each block, the head
    assert len(set(scales.values())) == n_groups
    assert scales[id(params[first])] == pytest.approx(0.7 ** (n_groups - 1))
    assert scales[id(params[last])] == 1.0
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    assert len(coarse) == len(model.feature_info) + 1  # the stem, each stage, the head


# --- compilers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SMALL, "resnet50"])
def test_torch_jit_script(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(Exception, match=r"expects a batch of shape"):
        scripted(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize("name", SMALL)
def test_torch_export(name: str) -> None:
    model = cifarzoo.create_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("name", SMALL)
def test_torch_compile(name: str) -> None:
    torch._dynamo.reset()
    model = cifarzoo.create_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    # aot_eager traces the full graph (forward and backward) without compiling C++ kernels.
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.slow(seconds=10)
def test_torch_compile_inductor_trains() -> None:
    # lenet: inductor's C++ compile of a resnet20 forward and backward costs a minute of CPU;
    # test_torch_compile traces every small model's full graph
    torch._dynamo.reset()
    model = cifarzoo.lenet().train()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    loss = nn.functional.cross_entropy(compiled(x), y)
    loss.backward()
    expected = nn.functional.cross_entropy(eager(x), y)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    # the same gradients as eager, up to the float32 rounding of a reordered computation
    grads = {name: param.grad for name, param in model.named_parameters()}
    expected_grads = {name: param.grad for name, param in eager.named_parameters()}
    assert None not in grads.values() and None not in expected_grads.values()
    torch.testing.assert_close(grads, expected_grads, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", SMALL)
def test_torch_fx_symbolic_trace(name: str) -> None:
    model = cifarzoo.create_model(name, drop_rate=0.5).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    # The input check is one node of the graph, run on every call.
    with pytest.raises(ValueError, match=rf"^cifar_{name} expects a batch of shape"):
        traced(torch.randn(2, 1, 32, 32))
    # The classifier dropout is a module, so the traced graph follows train() like the model.
    with torch.no_grad():
        evaluated = model(x)
        torch.manual_seed(0)
        trained = traced.train()(x)
        torch.manual_seed(0)
        torch.testing.assert_close(trained, model.train()(x))
    assert not torch.allclose(trained, evaluated)


def test_torchvision_create_feature_extractor() -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    model = cifarzoo.resnet20().eval()
    extractor = create_feature_extractor(model, {"layer2": "mid", "fc": "logits"}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = extractor(x)
        torch.testing.assert_close(out["logits"], model(x))
    assert out["mid"].shape == (2, 32, 16, 16)
