"""Tests for ticketzoo.models: registry, builders, tensor names, head swap."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ticketzoo.errors import ConfigError, UnknownArchitectureError
from ticketzoo.models import (
    build_model,
    check_input,
    classifier_names,
    get_arch,
    list_archs,
    prunable_names,
    register_arch,
    swap_head,
)
from ticketzoo.models import registry

LTH = [n for n in list_archs() if get_arch(n).family == "lth"]
TORCHVISION = [n for n in list_archs() if get_arch(n).family == "torchvision"]
TINY = {"width": 0.125}


def test_expected_archs_registered():
    expected = {
        "resnet18", "resnet34", "resnet50", "resnet101", "vgg11_bn", "vgg16_bn", "vgg19_bn",
        "mobilenet_v2", "densenet121", "lenet_300_100", "conv2", "conv4", "conv6",
        "cifar_resnet20", "cifar_resnet56", "cifar_vgg16", "cifar_vgg19",
    }  # fmt: skip
    assert set(list_archs()) == expected
    assert list_archs() == sorted(list_archs())


def test_unknown_arch_lists_valid_names():
    with pytest.raises(UnknownArchitectureError) as info:
        build_model("resnet9000", num_classes=10)
    err = info.value
    assert isinstance(err, KeyError)
    assert err.name == "resnet9000"
    assert err.hint
    assert ", ".join(list_archs()) in str(err)
    assert str(err).startswith("unknown architecture 'resnet9000'")


def test_duplicate_registration_refused(monkeypatch):
    monkeypatch.setattr(registry, "_ARCHS", dict(registry._ARCHS))

    def builder(num_classes, in_channels, input_size):
        return nn.Linear(in_channels * input_size**2, num_classes)

    register_arch("toy", family="lth", default_input_size=4, min_input_size=1)(builder)
    with pytest.raises(ValueError, match="already registered"):
        register_arch("toy", family="lth", default_input_size=4, min_input_size=1)(builder)
    with pytest.raises(ValueError, match="already registered"):
        register_arch("resnet18", family="torchvision", default_input_size=4, min_input_size=1)(
            builder
        )
    assert get_arch("toy").builder is builder


@pytest.mark.parametrize("name", LTH)
@pytest.mark.parametrize(("in_channels", "size"), [(1, 16), (3, 32)])
def test_lth_arch_builds_and_forwards(name, in_channels, size):
    model = build_model(name, num_classes=7, in_channels=in_channels, input_size=size, **TINY)
    assert model(torch.randn(2, in_channels, size, size)).shape == (2, 7)
    assert check_input(model, in_channels, size) == (1, 7)
    keys = set(model.state_dict())
    assert set(prunable_names(model)) <= keys
    assert prunable_names(model) == prunable_names(name)
    assert classifier_names(model) == classifier_names(name) == ("fc.weight", "fc.bias")


# VGG-16/19 share VGG-11's code and each costs ~1.5 s to initialise on CPU: shapes only.
META_ONLY = {"vgg16_bn", "vgg19_bn"}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_arch_builds_grey_at_32px(name):
    device = torch.device("meta" if name in META_ONLY else "cpu")
    with device:
        model = build_model(name, num_classes=5, in_channels=1, input_size=32)
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    first = prunable_names(model)[0]
    assert model.state_dict()[first].shape[1] == 1
    head = classifier_names(model)
    assert model.state_dict()[head[0]].shape[0] == 5
    assert head == classifier_names(name)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_arch_rgb_shapes_on_meta(name):
    # Meta tensors check shapes without allocating (VGG's 100M-weight classifier is slow on CPU).
    with torch.device("meta"):
        model = build_model(name, num_classes=5, in_channels=3, input_size=32)
    assert check_input(model, 3, 32) == (1, 5)
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None, num_classes=5)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_known_classifier_names():
    assert classifier_names("resnet18") == ("fc.weight", "fc.bias")
    assert classifier_names("vgg16_bn") == ("classifier.6.weight", "classifier.6.bias")
    assert classifier_names("mobilenet_v2") == ("classifier.1.weight", "classifier.1.bias")
    assert classifier_names("densenet121") == ("classifier.weight", "classifier.bias")


def test_resnet50_state_dict_matches_torchvision():
    ours = build_model("resnet50", num_classes=1000, input_size=32)
    theirs = torchvision.models.resnet50().state_dict()
    ours.load_state_dict(theirs)  # strict: same names and shapes
    assert list(ours.state_dict()) == list(theirs)
    assert classifier_names(ours) == ("fc.weight", "fc.bias")
    assert len(prunable_names(ours)) == 54  # 53 convs + fc


def test_prunable_and_classifier_names_resnet18():
    model = build_model("resnet18", num_classes=10, input_size=32)
    names = prunable_names(model)
    assert names[0] == "conv1.weight"
    assert names[-1] == "fc.weight"
    assert "layer2.0.downsample.0.weight" in names
    assert len(names) == 21  # 17 convs + 3 downsample convs + fc
    assert not any("bn" in n or n.endswith(".bias") for n in names)
    assert classifier_names(model) == ("fc.weight", "fc.bias")


def test_prunable_and_classifier_names_conv4():
    model = build_model("conv4", num_classes=10, input_size=32, **TINY)
    assert prunable_names(model) == [
        "features.0.weight",
        "features.2.weight",
        "features.5.weight",
        "features.7.weight",
        "fc_layers.0.weight",
        "fc_layers.1.weight",
        "fc.weight",
    ]
    assert classifier_names(model) == ("fc.weight", "fc.bias")
    # 16 channels (128 * 0.125) on an 8x8 map after two pools.
    assert model.fc_layers[0].in_features == 16 * 8 * 8


def test_seed_is_deterministic_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a = build_model("conv2", num_classes=3, input_size=16, seed=0, **TINY).state_dict()
    b = build_model("conv2", num_classes=3, input_size=16, seed=0, **TINY).state_dict()
    c = build_model("conv2", num_classes=3, input_size=16, seed=1, **TINY).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_xavier_init():
    model = build_model(
        "lenet_300_100", num_classes=10, in_channels=1, input_size=28, init="xavier", seed=0
    )
    for module in model.modules():
        if isinstance(module, nn.Linear):
            assert torch.count_nonzero(module.bias) == 0
    first = model.fc_layers[0].weight  # 300 x 784
    expected = (2.0 / (784 + 300)) ** 0.5
    assert abs(first.std().item() - expected) / expected < 0.05
    default = build_model("lenet_300_100", num_classes=10, in_channels=1, seed=0)
    assert torch.count_nonzero(default.fc.bias) > 0


def test_xavier_keeps_batchnorm():
    model = build_model("cifar_resnet20", num_classes=2, init="xavier", seed=0, **TINY)
    assert torch.equal(model.bn.weight, torch.ones_like(model.bn.weight))


@pytest.mark.parametrize("name", ["conv4", "cifar_vgg16"])
def test_swap_head(name):
    model = build_model(name, num_classes=10, input_size=32, **TINY)
    keys_before = list(model.state_dict())
    body_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    assert swap_head(model, 3) is model
    assert list(model.state_dict()) == keys_before
    assert model.fc.out_features == 3 and model.fc.bias is not None
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in body_before.items())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_swap_head_inside_sequential():
    with torch.device("meta"):
        model = build_model("vgg11_bn", num_classes=10, input_size=32)
    swap_head(model, 4)
    assert model.classifier[6].out_features == 4
    assert classifier_names(model) == ("classifier.6.weight", "classifier.6.bias")


@pytest.mark.parametrize(
    ("name", "size", "minimum"), [("cifar_vgg16", 8, 16), ("resnet18", 16, 32)]
)
def test_input_too_small(name, size, minimum):
    with pytest.raises(ConfigError, match=f"minimum is {minimum}"):
        build_model(name, num_classes=10, input_size=size, **({} if name == "resnet18" else TINY))


def test_check_input_reports_mismatch():
    model = build_model("conv4", num_classes=10, input_size=32, **TINY)
    was_training = model.training
    with pytest.raises(ConfigError, match="3-channel 16x16"):
        check_input(model, 3, 16)  # the FC layer was sized for 32 px
    assert model.training == was_training
    with pytest.raises(ConfigError):
        check_input(model, 1, 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"num_classes": 2.5},
        {"num_classes": 2, "in_channels": 0},
        {"num_classes": 2, "init": "he"},
        {"num_classes": 2, "width": 0},
        {"num_classes": 2, "depth": 3},
        {"num_classes": 2, "seed": "x"},
    ],
)
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        build_model("conv2", input_size=16, **kwargs)


def test_single_class_and_torchvision_options():
    model = build_model("lenet_300_100", num_classes=1, input_size=8)
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 1)
    model = build_model("mobilenet_v2", num_classes=2, input_size=32, dropout=0.5)
    assert model.classifier[0].p == 0.5
    with pytest.raises(ConfigError, match="bad option"):
        build_model("mobilenet_v2", num_classes=2, input_size=32, width=0.5)
