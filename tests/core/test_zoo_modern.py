"""The modern zoo (ResNet-34/50, MobileNets, ShuffleNetV2, EfficientNet-B0, DenseNet-121).

torchvision cannot be installed here, so its layouts are checked through the
names and shapes its ``state_dict()`` holds (read from its source): a
checkpoint saved from torchvision must load into our definition unchanged and
be recognised without ``--arch``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from squeezestudio.core.errors import ArchitectureMismatchError
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.io.loading.infer import infer_zoo_architecture, module_shapes
from squeezestudio.core.model.zoo import build_model

MODERN = ["resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
          "shufflenet_v2_x1_0", "efficientnet_b0", "densenet121"]


def _meta(name: str, **kwargs: int) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, **kwargs)


@pytest.mark.parametrize("name, key, shape", [
    ("resnet34", "layer3.5.conv2.weight", (256, 256, 3, 3)),
    ("resnet34", "layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("resnet50", "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("resnet50", "layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("resnet50", "layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("resnet50", "fc.weight", (1000, 2048)),
    ("mobilenet_v2", "features.1.conv.0.0.weight", (32, 1, 3, 3)),
    ("mobilenet_v2", "features.1.conv.1.weight", (16, 32, 1, 1)),
    ("mobilenet_v2", "features.2.conv.0.0.weight", (96, 16, 1, 1)),
    ("mobilenet_v2", "features.2.conv.1.0.weight", (96, 1, 3, 3)),
    ("mobilenet_v2", "features.2.conv.3.running_var", (24,)),
    ("mobilenet_v2", "features.18.0.weight", (1280, 320, 1, 1)),
    ("mobilenet_v2", "classifier.1.weight", (1000, 1280)),
    ("mobilenet_v3_small", "features.1.block.0.0.weight", (16, 1, 3, 3)),
    ("mobilenet_v3_small", "features.1.block.1.fc1.weight", (8, 16, 1, 1)),
    ("mobilenet_v3_small", "features.4.block.2.fc1.weight", (24, 96, 1, 1)),
    ("mobilenet_v3_small", "features.12.0.weight", (576, 96, 1, 1)),
    ("mobilenet_v3_small", "classifier.0.weight", (1024, 576)),
    ("mobilenet_v3_large", "features.16.0.weight", (960, 160, 1, 1)),
    ("mobilenet_v3_large", "classifier.3.weight", (1000, 1280)),
    ("shufflenet_v2_x1_0", "conv1.0.weight", (24, 3, 3, 3)),
    ("shufflenet_v2_x1_0", "stage2.0.branch1.0.weight", (24, 1, 3, 3)),
    ("shufflenet_v2_x1_0", "stage2.0.branch1.2.weight", (58, 24, 1, 1)),
    ("shufflenet_v2_x1_0", "stage2.1.branch2.0.weight", (58, 58, 1, 1)),
    ("shufflenet_v2_x1_0", "stage4.3.branch2.5.weight", (232, 232, 1, 1)),
    ("shufflenet_v2_x1_0", "conv5.0.weight", (1024, 464, 1, 1)),
    ("efficientnet_b0", "features.1.0.block.1.fc1.weight", (8, 32, 1, 1)),
    ("efficientnet_b0", "features.2.0.block.2.fc1.weight", (4, 96, 1, 1)),
    ("efficientnet_b0", "features.6.3.block.1.0.weight", (1152, 1, 5, 5)),
    ("efficientnet_b0", "features.8.0.weight", (1280, 320, 1, 1)),
    ("efficientnet_b0", "classifier.1.weight", (1000, 1280)),
    ("densenet121", "features.denseblock1.denselayer1.norm1.weight", (64,)),
    ("densenet121", "features.denseblock1.denselayer6.conv2.weight", (32, 128, 3, 3)),
    ("densenet121", "features.transition1.conv.weight", (128, 256, 1, 1)),
    ("densenet121", "features.denseblock4.denselayer16.norm1.running_mean", (992,)),
    ("densenet121", "features.norm5.weight", (1024,)),
    ("densenet121", "classifier.weight", (1000, 1024)),
])
def test_torchvision_names_and_shapes(name: str, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(_meta(name).state_dict()[key].shape) == shape


def test_resnet50_has_torchvision_key_count() -> None:
    state = _meta("resnet50").state_dict()
    assert len(state) == 320  # 161 parameters + 3 buffers of each of its 53 BatchNorms
    assert sum(k.endswith("num_batches_tracked") for k in state) == 53


def test_mobilenet_v3_uses_the_reference_batchnorm_settings() -> None:
    bn = _meta("mobilenet_v3_small").features[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    assert _meta("efficientnet_b0").features[0][1].eps == 1e-5


@pytest.mark.parametrize("name", MODERN)
def test_a_checkpoint_is_recognised_without_arch(name: str) -> None:
    shapes = module_shapes(_meta(name, num_classes=7, in_channels=1))
    assert infer_zoo_architecture(shapes, "x.pth") == (name, {"num_classes": 7, "in_channels": 1,
                                                             "input_size": 224})


def test_a_modified_checkpoint_names_the_closest_architecture() -> None:
    shapes = module_shapes(_meta("efficientnet_b0"))
    shapes["features.8.0.weight"] = (1000, 320, 1, 1)
    with pytest.raises(ArchitectureMismatchError, match="closest is efficientnet_b0.*features.8.0.weight"):
        infer_zoo_architecture(shapes, "x.pth")


@pytest.mark.parametrize("name, size", [("mobilenet_v3_small", 32), ("shufflenet_v2_x1_0", 32),
                                        ("efficientnet_b0", 32), ("densenet121", 29)])
def test_forward_at_small_sizes_in_train_and_eval(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, input_size=size)
    x = torch.randn(2, 3, size, size)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert train_out.shape == eval_out.shape == (2, 5)
    assert torch.isfinite(eval_out).all()


def test_saved_state_dict_loads_unchanged_and_is_recognised(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model("mobilenet_v3_small", num_classes=10).eval()
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(model.state_dict(), path)
    handle = load_model(path, registry=build_registry(plugins=False))
    assert handle.name == "mobilenet_v3_small" and handle.num_classes == 10
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(handle.module.eval()(x), model(x))
