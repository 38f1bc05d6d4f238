"""The zoo: torchvision-compatible layouts, published parameter counts, small inputs, handles."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.handle import IMAGENET_MEAN, IMAGENET_STD
from squeezestudio.core.model.zoo import ZOO_NAMES, build_model, default_input_spec, zoo_handle
from squeezestudio.core.model.zoo.registry import ZOO_ENTRIES
from squeezestudio.core.model.zoo.squeezenet import Fire


def _meta(name: str, **kwargs: int) -> nn.Module:
    """Shapes without memory: how the big models are checked quickly."""
    with torch.device("meta"):
        return build_model(name, **kwargs)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, expected", [
    ("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496), ("alexnet", 61_100_840),
    ("vgg11", 132_863_336), ("vgg16", 138_357_544), ("resnet18", 11_689_512),
    ("lenet300_100", 266_610),
    # torchvision's published figures (the "num_params" of its weight tables)
    ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("mobilenet_v2", 3_504_872),
    ("mobilenet_v3_small", 2_542_856), ("mobilenet_v3_large", 5_483_032), ("shufflenet_v2_x1_0", 2_278_604),
    ("efficientnet_b0", 5_288_548), ("densenet121", 7_978_856),
])
def test_parameter_counts_match_published_models(name: str, expected: int) -> None:
    assert _params(_meta(name, num_classes=1000 if name != "lenet300_100" else 10)) == expected


@pytest.mark.parametrize("name, key, shape", [
    ("squeezenet1_0", "features.0.weight", (96, 3, 7, 7)),
    ("squeezenet1_0", "features.12.expand3x3.weight", (256, 64, 3, 3)),
    ("squeezenet1_1", "features.3.squeeze.weight", (16, 64, 1, 1)),
    ("squeezenet1_1", "classifier.1.weight", (1000, 512, 1, 1)),
    ("alexnet", "features.10.weight", (256, 256, 3, 3)),
    ("alexnet", "classifier.1.weight", (4096, 9216)),
    ("vgg11", "features.18.weight", (512, 512, 3, 3)),
    ("vgg16", "features.28.weight", (512, 512, 3, 3)),
    ("vgg16", "classifier.0.weight", (4096, 25088)),
    ("resnet18", "layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("resnet18", "layer4.1.bn2.running_var", (512,)),
    ("resnet18", "fc.weight", (1000, 512)),
])
def test_torchvision_parameter_names_and_shapes(name: str, key: str, shape: tuple[int, ...]) -> None:
    state = _meta(name).state_dict()
    assert tuple(state[key].shape) == shape


def test_resnet18_has_torchvision_key_count() -> None:
    model = _meta("resnet18")
    assert len(list(model.parameters())) == 62
    assert len(model.state_dict()) == 122  # + running mean/var/num_batches_tracked of 20 BNs


def test_fire_module_concatenates_expand_branches() -> None:
    fire = Fire(32, 8, 16, 24)
    names = dict(fire.named_children())
    assert list(names) == ["squeeze", "squeeze_activation", "expand1x1", "expand1x1_activation",
                           "expand3x3", "expand3x3_activation"]
    out = fire(torch.randn(2, 32, 9, 9))
    assert out.shape == (2, 40, 9, 9)
    assert out.min() >= 0  # both branches end in ReLU


SMALL = [
    ("squeezenet1_0", 1, 32), ("squeezenet1_1", 1, 32), ("resnet18", 1, 32),
    ("lenet5", 1, 28), ("lenet300_100", 1, 8), ("cnds8", 3, 32),
]


@pytest.mark.parametrize("name, channels, size", SMALL)
def test_small_models_run_forward_at_small_sizes(name: str, channels: int, size: int) -> None:
    model = build_model(name, num_classes=7, in_channels=channels, input_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(3, channels, size, size))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16"])
def test_big_models_pool_adaptively_to_fixed_classifier_shapes(name: str) -> None:
    small, big = _meta(name, num_classes=10, in_channels=1, input_size=64), _meta(name)
    assert small(torch.empty(2, 1, 64, 64, device="meta")).shape == (2, 10)
    classifier_first = [k for k in small.state_dict() if k.startswith("classifier")][0]
    assert small.state_dict()[classifier_first].shape == big.state_dict()[classifier_first].shape


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_minimum_input_size_is_exact(name: str) -> None:
    entry = ZOO_ENTRIES[name]
    size = entry.min_input_size
    model = _meta(name, num_classes=5, in_channels=1, input_size=size).eval()
    assert model(torch.empty(1, 1, size, size, device="meta")).shape == (1, 5)
    if size > 1:
        with pytest.raises(ModelLoadError, match=f"at least {size}x{size}"):
            build_model(name, input_size=size - 1)
        if not entry.size_dependent:  # the declared minimum really is the smallest that runs
            with pytest.raises(RuntimeError):
                model(torch.empty(1, 1, size - 1, size - 1, device="meta"))


def test_lenet5_matches_the_paper_at_28_pixels() -> None:
    model = build_model("lenet5")
    assert model.fc1.weight.shape == (120, 16 * 5 * 5)
    assert build_model("lenet5", input_size=32).fc1.weight.shape == (120, 16 * 6 * 6)


def test_cnds8_has_eight_batch_normed_convolutions() -> None:
    model = _meta("cnds8")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 8 and len(norms) == 8
    assert all(c.kernel_size == (3, 3) for c in convs)


def test_zoo_handle_records_how_to_rebuild() -> None:
    handle = zoo_handle("squeezenet1_1", num_classes=10, in_channels=1, input_size=32)
    assert handle.architecture is not None and handle.architecture.kind == "zoo"
    assert handle.architecture.kwargs == {"num_classes": 10, "in_channels": 1, "input_size": 32}
    rebuilt = build_model(handle.architecture.name, **handle.architecture.kwargs)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in handle.module.state_dict().items()}
    assert handle.class_names == [f"class {i}" for i in range(10)]
    assert handle.source_format == "zoo"
    spec = handle.input_spec
    assert (spec.channels, spec.height, spec.width, spec.mean, spec.std) == (1, 32, 32, (0.5,), (0.5,))


def test_default_input_specs() -> None:
    rgb = default_input_spec("resnet18")
    assert (rgb.channels, rgb.height, rgb.mean, rgb.std) == (3, 224, IMAGENET_MEAN, IMAGENET_STD)
    digits = default_input_spec("lenet5")
    assert (digits.channels, digits.height, digits.mean) == (1, 28, (0.5,))


def test_zoo_handle_class_names_and_statistics() -> None:
    handle = zoo_handle("lenet300_100", class_names=list("abc"), input_size=8, mean=(0.2,), std=(0.3,))
    assert handle.num_classes == 3 and handle.module.fc3.out_features == 3
    assert (handle.input_spec.mean, handle.input_spec.std) == ((0.2,), (0.3,))
    with pytest.raises(ModelLoadError, match="2 class names"):
        zoo_handle("lenet300_100", num_classes=3, class_names=["a", "b"])
    with pytest.raises(ModelLoadError, match="one value per input channel"):
        zoo_handle("resnet18", mean=(0.5,))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, "num_classes must be a positive"),
    ({"in_channels": 2.5}, "in_channels must be a positive"),
])
def test_bad_zoo_arguments_are_reported(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        build_model("lenet5", **kwargs)


def test_unknown_architecture_lists_the_choices() -> None:
    with pytest.raises(ModelLoadError, match="squeezenet1_1") as info:
        build_model("resnet101")
    assert "resnet101" in str(info.value) and "densenet121" in str(info.value)
