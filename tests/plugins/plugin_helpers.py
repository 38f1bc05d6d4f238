"""Tiny models and helpers shared by the plugin tests (imported by name: tests have no packages)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.plugin_folder import repository_plugins_folder
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.model.handle import InputSpec, ModelHandle, default_class_names
from squeezestudio.core.compression.registry import default_registry

PLUGINS = repository_plugins_folder()


class TinyFire(nn.Module):
    """SqueezeNet's Fire: squeeze 1x1, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, cin: int, s: int, e: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s, 1)
        self.expand1x1 = nn.Conv2d(s, e, 1)
        self.expand3x3 = nn.Conv2d(s, e, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


class TinySqueezeNet(nn.Module):
    """A SqueezeNet in miniature: stem conv, two Fires, a 1x1 conv classifier."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      TinyFire(16, 8, 16), TinyFire(32, 8, 16))
        self.classifier = nn.Sequential(nn.Conv2d(32, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


class TinyBlock(nn.Module):
    """A ResNet basic block with an identity shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    """Stem conv + BN, one residual block, global pooling and a Linear classifier."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.block = TinyBlock(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(self.block(x)), 1))


class TinyCNN(nn.Module):
    """Two 3x3 convs and a two-layer MLP head (Linear layers for the Linear methods)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(x), 1))))


def randomize_bn(module: nn.Module) -> None:
    """Give BatchNorm layers non-trivial statistics so tests notice a wrong channel."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def make_handle(module: nn.Module, size: int = 8) -> ModelHandle:
    """A handle whose architecture is a traced graph, so a .sqz can rebuild it."""
    module.eval()
    return ModelHandle(module=module, name=type(module).__name__,
                       input_spec=InputSpec(channels=3, height=size, width=size, mean=(0.0,) * 3,
                                            std=(1.0,) * 3),
                       class_names=default_class_names(4), source_format="python",
                       architecture=describe_architecture(module))


def make_state(module: nn.Module, size: int = 8) -> CompressionState:
    return CompressionState.from_handle(make_handle(module, size))


def sqz_round_trip(state: CompressionState, tmp_path: Path) -> nn.Module:
    """Save the state as .sqz, load it back, and return the loaded module (eval mode)."""
    from squeezestudio.core.compression.codec import load_sqz, save_sqz

    cm = CompressedModel(handle=state.handle, encodings=dict(state.encodings))
    path = tmp_path / "model.sqz"
    written = save_sqz(cm, path, registry=default_registry())
    assert written == path.stat().st_size
    loaded = load_sqz(path, registry=default_registry()).handle.module
    loaded.eval()
    return loaded


def assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor, atol: float = 0.0) -> None:
    a.eval()
    b.eval()
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == yb.shape
    assert torch.allclose(ya, yb, atol=atol, rtol=0), float((ya - yb).abs().max())
