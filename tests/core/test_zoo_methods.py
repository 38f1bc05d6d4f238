"""The modern zoo through the compression methods: a representative recipe per family of methods.

The exhaustive architecture x method table (with ONNX exports) is
``scripts/zoo_method_matrix.py``; here two recipes cover every built-in
method and every plugin on the architectures where they are most likely to
break: layer substitutions inside DenseNet's concatenations, and structured
pruning followed by weight sharing on a MobileNetV3 with squeeze-excitation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.codec import load_sqz, save_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.plugin_folder import register_folder_plugins, repository_plugins_folder
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.model.zoo import zoo_handle


@pytest.fixture(scope="module")
def registry():
    """Built-ins plus the repository's plugins (compress and load_sqz both get it)."""
    reg = build_registry(plugins=False)
    register_folder_plugins(reg, repository_plugins_folder())
    return reg


def _same_after_reload(result, tmp_path: Path, registry) -> int:
    path = tmp_path / "model.sqz"
    size = save_sqz(result, path, registry=registry)
    x = result.handle.input_spec.example(2)
    a, b = result.handle.module.eval(), load_sqz(path, registry=registry).handle.module.eval()
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-6, rtol=0)
    return size


def test_substitutions_inside_densenet_then_pruning_and_quantization(registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    handle = zoo_handle("densenet121", num_classes=10, input_size=32)
    block = "features.denseblock1"
    recipe = recipe_from_dict({
        "architecture": [
            {"method": "fire", "layer": f"{block}.denselayer1.conv2", "init": "svd"},
            {"method": "depthwise", "layer": f"{block}.denselayer2.conv2", "reconstruct_steps": 0},
            {"method": "lowrank", "layer": f"{block}.denselayer3.conv2"},
            {"method": "shuffle", "layer": f"{block}.denselayer4.conv1", "groups": 2, "reconstruct_steps": 0},
        ],
        "layers": {f"{block}.*": {"prune": {"sparsity": 0.5}, "quantize": {"bits": 8}}},
    })
    result = compress(handle, recipe, registry=registry)
    module = result.handle.module
    for i in range(1, 5):
        layer = f"{block}.denselayer{i}.conv{1 if i == 4 else 2}"
        assert not isinstance(module.get_submodule(layer), nn.Conv2d) or \
            module.get_submodule(layer).groups > 1, layer
    modifications = [m["method"] for m in result.handle.architecture.modifications]
    assert modifications == ["fire", "depthwise", "lowrank", "shuffle"]
    layer = f"{block}.denselayer6.conv2"
    assert result.encodings[f"{layer}.weight"].mask is not None  # pruned, then 8-bit codes per channel
    weight = module.get_submodule(layer).weight.detach()
    assert float((weight == 0).float().mean()) >= 0.5
    assert all(len(torch.unique(row)) <= 256 for row in weight)  # 1,152 weights per filter, 8-bit levels
    _same_after_reload(result, tmp_path, registry)


def test_structured_then_weight_sharing_plugins_on_mobilenet_v3(registry, tmp_path: Path) -> None:
    torch.manual_seed(1)
    handle = zoo_handle("mobilenet_v3_small", num_classes=10, input_size=32)
    recipe = recipe_from_dict({
        "methods": {"structured": {"ratio": 0.5}, "cluster": {"bits": 4, "iterations": 20}},
        "layers": {"features.0.0": {"cluster": None, "freshnets": {"compression": 0.5}},
                   "classifier.0": {"cluster": None, "pow2": {"bits": 4}}},
    })
    result = compress(handle, recipe, registry=registry)
    module = result.handle.module
    assert module.features[4].block[2].fc2.out_channels == 48  # the SE gate shrank with its block
    kinds = {key: enc.kind for key, enc in result.encodings.items()}
    assert kinds["features.0.0.weight"] == "custom"  # FreshNets buckets
    assert len(set(module.classifier[0].weight.detach().abs().flatten().tolist())) <= 8  # 0 and 2^k levels
    assert len(torch.unique(module.features[12][0].weight.detach())) <= 16  # 4-bit clusters
    assert _same_after_reload(result, tmp_path, registry) < 0.1 * sum(p.numel() for p in handle.module.parameters()) * 4
