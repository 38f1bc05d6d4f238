"""Formats that run code (pickled modules, TorchScript, model.py:factory) need trust=True."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from squeezestudio.core.errors import ArchitectureMismatchError, ModelLoadError, UntrustedCodeError
from squeezestudio.core.io.loading import load_model, save_safetensors
from squeezestudio.core.io.loading import checkpoint as checkpoint_module
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.replay import build_module


class UntraceableMLP(nn.Module):
    """A user model torch.fx cannot trace (its forward branches on the data)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y if float(y.detach().sum()) >= 0 else -y


class TinyMLP(nn.Module):
    """A user-defined model (not from the zoo) on 8x8 grayscale input."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


MODEL_PY = '''
import pathlib
import torch
from torch import nn

pathlib.Path(__file__).with_name("imported.flag").touch()  # proves when this file runs


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 12 * 12, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def build(num_classes=5):
    return Net(num_classes)


def not_a_model():
    return 42
'''


@pytest.fixture
def model_py(tmp_path: Path) -> Path:
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(MODEL_PY))
    return path


def test_pickled_module_needs_trust(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = UntraceableMLP()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(UntrustedCodeError, match="pass --trust if you trust its author") as info:
        load_model(tmp_path / "whole.pt", registry=default_registry())
    assert "UntraceableMLP" in str(info.value)
    handle = load_model(tmp_path / "whole.pt", trust=True, registry=default_registry())
    assert handle.source_format == "pickle" and handle.trusted_code
    assert handle.class_names == ["class 0", "class 1", "class 2"]
    spec = handle.input_spec
    assert (spec.channels, spec.height, spec.width) == (1, 8, 8)  # guessed from Linear(64, ...)
    assert any("does not record its input shape" in w for w in handle.warnings)
    assert handle.architecture is None and any("could not be recorded" in w for w in handle.warnings)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(handle.module(x), model(x))


def test_pickled_zoo_module_keeps_its_zoo_architecture(tmp_path: Path) -> None:
    source = zoo_handle("squeezenet1_1", num_classes=6, in_channels=1, input_size=32)
    torch.save(source.module, tmp_path / "sq.pt")
    handle = load_model(tmp_path / "sq.pt", trust=True,
                        input_spec=InputSpec(1, 32, 32, (0.5,), (0.5,)), registry=default_registry())
    assert handle.architecture == ArchitectureSpec(kind="zoo", name="squeezenet1_1",
                                                   kwargs={"num_classes": 6, "in_channels": 1,
                                                           "input_size": 224})
    assert handle.num_classes == 6 and handle.input_spec.height == 32
    assert not any("input shape" in w for w in handle.warnings)


def test_a_traceable_user_module_is_recorded_as_a_graph_that_rebuilds_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyMLP().eval()
    torch.save(model, tmp_path / "whole.pt")
    handle = load_model(tmp_path / "whole.pt", trust=True, registry=default_registry())
    assert handle.architecture is not None and handle.architecture.kind == "graph"
    rebuilt = build_module(handle.architecture, registry=default_registry())
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x), model(x))
    assert not any("could not be recorded" in w for w in handle.warnings)


def test_torchscript_needs_trust_and_is_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = TinyMLP().eval()
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))

    def refuse(path):
        raise AssertionError("a TorchScript archive must not reach the unpickler")

    monkeypatch.setattr(checkpoint_module, "safe_torch_load", refuse)
    with pytest.raises(UntrustedCodeError, match="TorchScript.*--trust"):
        load_model(tmp_path / "scripted.pt", registry=default_registry())
    handle = load_model(tmp_path / "scripted.pt", trust=True, registry=default_registry())
    assert handle.source_format == "torchscript" and handle.trusted_code
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(handle.module(x), model(x))
    assert handle.num_classes == 3


def test_python_factory_runs_only_with_trust(model_py: Path) -> None:
    flag = model_py.with_name("imported.flag")
    with pytest.raises(UntrustedCodeError, match="Python code.*--trust"):
        load_model(f"{model_py}:build", registry=default_registry())
    assert not flag.exists()
    handle = load_model(f"{model_py}:build", trust=True, arch_kwargs={"num_classes": 4},
                        input_spec=InputSpec(1, 12, 12, (0.5,), (0.5,)), registry=default_registry())
    assert flag.exists()
    assert handle.source_format == "python" and handle.trusted_code and handle.num_classes == 4


def test_python_factory_with_weights(model_py: Path, tmp_path: Path) -> None:
    first = load_model(f"{model_py}:build", trust=True, registry=default_registry())
    assert first.input_spec.height == 12  # guessed by trying inputs until one runs
    torch.nn.init.constant_(first.module.fc.bias, 0.25)
    save_safetensors(first, tmp_path / "trained.safetensors")
    again = load_model(f"{model_py}:build", trust=True, weights=tmp_path / "trained.safetensors", registry=default_registry())
    assert torch.equal(again.module.fc.bias, torch.full((5,), 0.25))
    assert again.name == "trained"
    # The same, with the weights as the path and the factory as the architecture.
    swapped = load_model(tmp_path / "trained.safetensors", arch=f"{model_py}:build", trust=True, registry=default_registry())
    assert torch.equal(swapped.module.fc.bias, again.module.fc.bias)
    with pytest.raises(ArchitectureMismatchError, match=r"fc.weight: expected \(3, 576\)"):
        load_model(f"{model_py}:build", trust=True, arch_kwargs={"num_classes": 3},
                   weights=tmp_path / "trained.safetensors", registry=default_registry())


@pytest.mark.parametrize("target, message", [
    ("build_it", "has no function called build_it"),
    ("not_a_model", "returned a int, not a torch.nn.Module"),
])
def test_bad_factories(model_py: Path, target: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(f"{model_py}:{target}", trust=True, registry=default_registry())


def test_python_file_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('needs timm')\n")
    with pytest.raises(ModelLoadError, match="running broken.py failed.*needs timm"):
        load_model(f"{tmp_path / 'broken.py'}:build", trust=True, registry=default_registry())
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(f"{tmp_path / 'absent.py'}:build", trust=True, registry=default_registry())


def test_checkpoint_with_numpy_values_needs_trust(tmp_path: Path) -> None:
    import numpy as np

    source = zoo_handle("lenet300_100", num_classes=3, input_size=8)
    torch.save({"state_dict": source.module.state_dict(), "best_acc": np.float64(0.9)},
               tmp_path / "ckpt.pth")
    with pytest.raises(UntrustedCodeError, match="numpy"):
        load_model(tmp_path / "ckpt.pth", registry=default_registry())
    handle = load_model(tmp_path / "ckpt.pth", trust=True, registry=default_registry())
    assert handle.source_format == "state_dict" and handle.trusted_code
    assert handle.architecture.name == "lenet300_100"
