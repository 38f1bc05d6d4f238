"""The shared pieces every method leans on: config resolution and substitution bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.clustering import ClusterConfig, KMeansClustering
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.zoo import zoo_handle


def test_config_for_accepts_objects_and_mappings_and_rejects_the_rest():
    method = KMeansClustering()
    config = ClusterConfig(bits=3)
    assert method.config_for("fc1", config) is config
    assert method.config_for("fc1", {"bits": 4}).bits == 4
    assert method.config_for("fc1", None) == ClusterConfig()
    with pytest.raises(RecipeError, match="cluster on fc1"):
        method.config_for("fc1", {"bits": 99})
    with pytest.raises(RecipeError, match="mapping"):
        method.config_for("fc1", 5)


def test_record_substitution_drops_stale_encodings_and_keeps_the_original_for_fitting():
    state = CompressionState.from_handle(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28))
    state.encodings["conv2.weight"] = WeightEncoding.dense(state.layer("conv2").weight.detach().numpy())
    original = state.original_module()
    state.module.conv2 = nn.Conv2d(6, 16, 5)  # a substitute for conv2
    state.record_substitution("conv2", {"method": "test", "layer": "conv2"})
    assert "conv2.weight" not in state.encodings
    assert state.architecture.modifications[-1] == {"method": "test", "layer": "conv2"}
    assert state.original_module() is original  # only the substituted layer changed
    with torch.no_grad():
        state.module.fc1.weight.mul_(2)
    assert state.original_module() is not original  # anything else changing makes it stale
