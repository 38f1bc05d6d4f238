"""Old torchvision DenseNet checkpoints (``denselayer1.norm.1.weight``) load into the zoo's DenseNet (issue 9).

torchvision before 0.3 named a dense layer's parts ``norm.1``, ``relu.1``,
``conv.1``, ``norm.2``, ``conv.2`` and saved no BatchNorm counters; the
published ImageNet DenseNet weights of that era still carry those keys. The
old keys are written here from the zoo's own model by an independent rule
(current name -> dotted name), so the test does not reuse the code it checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.errors import ArchitectureMismatchError
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.model.zoo import build_model
from squeezestudio.core.model.zoo.densenet import DenseNet, current_key_names

_PART = re.compile(r"\.(norm|relu|conv)([12])\.")


def _old_torchvision_keys(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict as torchvision < 0.3 saved it: dotted dense-layer names, no ``num_batches_tracked``."""
    out = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        out[_PART.sub(r".\1.\2.", key) if ".denselayer" in key else key] = value
    return out


def _with_running_stats(module: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so a tensor loaded into the wrong place shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module.eval()


def test_old_keys_of_a_tiny_densenet_are_renamed_and_give_identical_outputs() -> None:
    torch.manual_seed(0)
    source = _with_running_stats(DenseNet(blocks=(2, 2), growth=4, init_features=8, bn_size=2,
                                          num_classes=3, in_channels=1))
    old = _old_torchvision_keys(source)
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    assert "features.denseblock2.denselayer2.conv.2.weight" in old
    assert "features.transition1.norm.weight" in old  # transitions never had dotted names
    renamed = current_key_names(old)
    expected = {k for k in source.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(renamed) == expected
    target = DenseNet(blocks=(2, 2), growth=4, init_features=8, bn_size=2, num_classes=3, in_channels=1).eval()
    target.load_state_dict(renamed, strict=False)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(target(x), source(x))


def test_a_state_with_both_spellings_of_a_key_is_left_for_the_key_check() -> None:
    state = {"features.denseblock1.denselayer1.norm.1.weight": torch.ones(2),
             "features.denseblock1.denselayer1.norm1.weight": torch.zeros(2)}
    assert current_key_names(state) == state


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    source = _with_running_stats(build_model("densenet121", num_classes=10, in_channels=1))
    path = tmp_path_factory.mktemp("densenet") / "densenet121_old_torchvision.pth"
    torch.save(_old_torchvision_keys(source), path)
    return path, source


@pytest.mark.parametrize("arch", ["densenet121", None])
def test_old_torchvision_densenet121_checkpoint_loads_with_identical_outputs(old_checkpoint, arch) -> None:
    path, source = old_checkpoint
    handle = load_model(path, arch=arch, registry=default_registry())
    assert handle.architecture.name == "densenet121"
    assert handle.architecture.kwargs["num_classes"] == 10 and handle.architecture.kwargs["in_channels"] == 1
    assert any("older DenseNet-121 release" in w and "tensors were renamed" in w for w in handle.warnings)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(handle.module(x), source(x))


def test_dotted_names_elsewhere_still_fail_the_key_check(tmp_path: Path) -> None:
    """Only dense-layer parts are renamed: a checkpoint for another architecture is not rewritten."""
    source = build_model("densenet121", num_classes=10, in_channels=1)
    state = _old_torchvision_keys(source)
    state["features.norm.5.weight"] = state.pop("features.norm5.weight")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ArchitectureMismatchError, match=r"features\.norm\.5\.weight"):
        load_model(tmp_path / "broken.pth", arch="densenet121", registry=default_registry())
