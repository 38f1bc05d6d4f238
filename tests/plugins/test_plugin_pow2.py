"""pow2: every kept weight is 0 or +-2^k within the window, pruning masks survive, .sqz round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from plugin_helpers import TinyCNN, assert_same_outputs, make_state, sqz_round_trip
from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio_pow2 import Pow2Config, nearest_symbols, pow2_codebook
from squeezestudio.core.compression.registry import default_registry


def test_weights_become_signed_powers_of_two(registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = make_state(TinyCNN())
    before = state.layer("conv2").weight.detach().clone()
    registry.get("pow2").apply(state, {"conv2": Pow2Config(bits=4), "fc1": {"bits": 3}})
    w = state.layer("conv2").weight.detach()
    nonzero = w[w != 0].abs()
    exps = torch.log2(nonzero)
    assert torch.equal(exps, exps.round())
    k_max = int(np.floor(np.log2(4 / 3 * float(before.abs().max()))))
    assert int(exps.max()) <= k_max and int(exps.min()) >= k_max - 6
    assert torch.equal(torch.sign(w[w != 0]), torch.sign(before[w != 0]))
    enc = state.encodings["conv2.weight"]
    assert enc.kind == "codebook" and enc.bits == 4 and len(enc.codebook) == 15
    assert len(np.unique(state.layer("fc1").weight.detach().numpy())) <= 7
    # rounding error is bounded by a third of the value (nearest power of two) inside the window
    inside = before.abs() >= 2.0 ** (k_max - 6)
    rel = ((w - before).abs() / before.abs())[inside]
    assert float(rel.max()) <= 1 / 3 + 1e-6
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, torch.randn(2, 3, 8, 8))


def test_nearest_symbols_picks_the_closest_entry() -> None:
    cb = pow2_codebook(np.array([1.0, -0.3], dtype=np.float32), 3)
    values = np.array([0.9, 0.6, -0.2, 0.01, -1.3, 0.374], dtype=np.float32)
    got = cb[nearest_symbols(values, cb)]
    brute = cb[np.abs(values[:, None] - cb[None, :]).argmin(1)]
    assert np.array_equal(got, brute)


def test_pruned_positions_stay_pruned_and_size_shrinks(registry) -> None:
    torch.manual_seed(1)
    state = make_state(TinyCNN())
    registry.get("prune").apply(state, {"fc1": registry.get("prune").config_class(sparsity=0.5)})
    dense = len(encode_sqz(CompressedModel(handle=state.handle, encodings=dict(state.encodings)), registry=default_registry()))
    mask = state.encodings["fc1.weight"].mask.copy()
    registry.get("pow2").apply(state, {"fc1": Pow2Config(bits=4)})
    enc: WeightEncoding = state.encodings["fc1.weight"]
    assert np.array_equal(enc.mask, mask)
    assert not state.layer("fc1").weight.detach().numpy().reshape(-1)[~mask].any()
    quantized = len(encode_sqz(CompressedModel(handle=state.handle, encodings=dict(state.encodings)), registry=default_registry()))
    assert quantized < dense


def test_finetune_hook_snaps_weights_back(registry) -> None:
    torch.manual_seed(2)
    state = make_state(TinyCNN())
    method = registry.get("pow2")
    method.apply(state, {"fc2": Pow2Config()})
    hooks = method.finetune_hooks(state, {"fc2": Pow2Config()})
    with torch.no_grad():
        state.layer("fc2").weight.add_(0.01 * torch.randn_like(state.layer("fc2").weight))
    hooks.after_step()
    enc = state.encodings["fc2.weight"]
    assert np.array_equal(enc.decode(), state.layer("fc2").weight.detach().numpy())
    assert set(np.unique(enc.decode())) <= set(enc.codebook.tolist())
