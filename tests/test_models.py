"""Model families: shapes, parameter counts, the timm interface, torchvision compatibility."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cifarzoo
from cifarzoo.layers import SEBlock

SMALL = ["lenet", "resnet20", "seresnet20", "densenet_bc_100_k12"]
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
    model = cifarzoo.create_model(name).train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


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
    lenet = cifarzoo.lenet()
    lenet.reset_classifier(3)
    assert lenet.get_classifier() is lenet.fc3
    assert lenet(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_lenet_is_the_lab_network() -> None:
    model = cifarzoo.lenet()
    assert [name for name, _ in model.named_children()] == [
        "conv1",
        "pool",
        "conv2",
        "fc1",
        "fc2",
        "fc3",
    ]
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


@pytest.mark.parametrize("size", [28, 64])
def test_lenet_rejects_other_sizes(size: int) -> None:
    with pytest.raises(ValueError, match=f"32x32 images.*got {size}x{size}"):
        cifarzoo.lenet()(torch.randn(1, 3, size, size))


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_bad_num_classes(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        cifarzoo.resnet20(num_classes=num_classes)


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


def test_no_registry_overwrite_warnings_on_reimport() -> None:
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("cifarzoo")


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


def test_torch_compile_inductor_trains() -> None:
    torch._dynamo.reset()
    model = cifarzoo.resnet20().train()
    compiled = torch.compile(model)
    x = torch.randn(4, 3, 32, 32)
    loss = nn.functional.cross_entropy(compiled(x), torch.arange(4))
    loss.backward()
    assert model.conv1.weight.grad is not None
