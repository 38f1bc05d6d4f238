"""compress(): order, composition, untouched original, progress/cancel, architecture changes, .sqz round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.codec import decode_sqz, encode_sqz
from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.method import ORDER_ARCHITECTURE, CompressionMethod
from squeezestudio.core.compression.pipeline import apply_recipe_to_state, collect_finetune_hooks, compress
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")


def lenet():
    torch.manual_seed(0)
    return zoo_handle("lenet5")


def dense(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_prune_then_cluster_composes_and_keeps_the_original() -> None:
    handle = lenet()
    original = dense(handle.module)
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.8, "scope": "global"}, "cluster": {"bits": 4}},
                               "layers": {"fc3": {"prune": None}}})
    cm = compress(handle, recipe, registry=default_registry())
    assert all(torch.equal(v, handle.module.state_dict()[k]) for k, v in original.items())
    assert cm.handle.module is not handle.module
    state = cm.handle.module.state_dict()
    for layer in LAYERS:
        enc = cm.encodings[f"{layer}.weight"]
        w = state[f"{layer}.weight"].numpy()
        assert enc.kind == "codebook" and enc.codebook.size <= 16
        assert np.array_equal(enc.decode(), w)
        assert torch.equal(state[f"{layer}.bias"], original[f"{layer}.bias"])  # biases stay exact
        assert (enc.mask is None) == (layer == "fc3")
    pruned = sum(int((~cm.encodings[f"{n}.weight"].mask).sum()) for n in LAYERS[:-1])
    total = sum(original[f"{n}.weight"].numel() for n in LAYERS[:-1])
    assert pruned == round(0.8 * total)
    assert cm.recipe["methods"]["cluster"] == {"bits": 4}
    assert cm.provenance["source"] == "lenet5" and "squeezestudio_version" in cm.provenance


def test_prune_then_quantize_round_trips_through_sqz_bit_for_bit() -> None:
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.5}, "quantize": {"bits": 6}},
                               "layers": {"fc1": {"quantize": {"scheme": "ternary"}}}})
    cm = compress(lenet(), recipe, registry=default_registry())
    assert cm.encodings["fc2.weight"].kind == "affine" and cm.encodings["fc1.weight"].kind == "codebook"
    back = decode_sqz(encode_sqz(cm, registry=default_registry()), registry=default_registry())
    ours, theirs = cm.handle.module.state_dict(), back.handle.module.state_dict()
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key


def test_conflicts_and_bad_values_fail_before_any_work() -> None:
    handle = lenet()
    calls: list[float] = []
    with pytest.raises(RecipeError, match="cannot both apply"):
        compress(handle, recipe_from_dict({"methods": {"cluster": {}, "quantize": {}}}),
                 progress=lambda f, m="": calls.append(f), registry=default_registry())
    assert calls == []
    with pytest.raises(RecipeError, match="unknown layer 'fc9'"):
        compress(handle, recipe_from_dict({"layers": {"fc9": {"prune": {}}}}), registry=default_registry())


def test_progress_reaches_one_and_cancel_stops() -> None:
    seen: list[float] = []
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.5}, "cluster": {"bits": 2}}})
    compress(lenet(), recipe, progress=lambda f, m="": seen.append(f), registry=default_registry())
    assert seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    assert max(seen[:len(seen) // 2]) < 1.0
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        compress(lenet(), recipe, cancel=token, registry=default_registry())


def test_finetune_hooks_from_applied_steps_keep_masks_and_sharing() -> None:
    state = CompressionState.from_handle(lenet())
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.7}, "cluster": {"bits": 3}}})
    hooks = collect_finetune_hooks(state, apply_recipe_to_state(state, recipe, registry=default_registry()))
    assert len(hooks) == 2
    model = state.module
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for h in hooks:
            h.before_step()
        opt.step()
        for h in hooks:
            h.after_step()
    for h in hooks:
        if h.finish is not None:
            h.finish()
    for layer in LAYERS:
        enc = state.encodings[f"{layer}.weight"]
        w = state.layer(layer).weight.detach().numpy()
        assert enc.kind == "codebook" and np.array_equal(enc.decode(), w)
        assert np.all(w.reshape(-1)[~enc.mask] == 0) and len(np.unique(w)) <= 9


@dataclass(frozen=True)
class _SplitConfig:
    rank: int = param(2, minimum=1, help="Inner width.")


class _SplitLinear(CompressionMethod):
    """A stand-in architecture method: replaces a Linear by two smaller ones."""

    name = "split"
    label = "Split"
    description = "Low-rank split of a Linear layer."
    order = ORDER_ARCHITECTURE
    config_class = _SplitConfig
    layer_types = (nn.Linear,)

    def apply(self, state: Any, layer_configs: dict, progress=None, cancel=None) -> None:
        for name, cfg in layer_configs.items():
            old = state.layer(name)
            parent_name, _, child = name.rpartition(".")
            parent = state.module.get_submodule(parent_name) if parent_name else state.module
            setattr(parent, child, nn.Sequential(nn.Linear(old.in_features, cfg.rank),
                                                 nn.Linear(cfg.rank, old.out_features)))
            state.encodings.pop(f"{name}.weight", None)


def test_methods_after_an_architecture_change_see_the_new_layers() -> None:
    registry = build_registry(plugins=False)
    registry.register(_SplitLinear)
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.5}},
                               "layers": {"fc1": {"prune": {"sparsity": 0.25}}},
                               "architecture": [{"method": "split", "layer": "fc2", "rank": 3}]})
    cm = compress(lenet(), recipe, registry=registry)
    assert {"fc2.0.weight", "fc2.1.weight"} <= set(cm.encodings) and "fc2.weight" not in cm.encodings
    assert cm.handle.module.fc2[0].out_features == 3
    assert int((~cm.encodings["fc1.weight"].mask).sum()) == round(0.25 * cm.encodings["fc1.weight"].numel)
    with pytest.raises(RecipeError, match="does not apply"):
        compress(lenet(), recipe_from_dict({"architecture": [{"method": "split", "layer": "conv1"}]}),
                 registry=registry)
