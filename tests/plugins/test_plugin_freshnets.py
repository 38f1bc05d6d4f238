"""freshnets: exact decoding, least-squares fit, budget by band, honest size, .sqz round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plugin_helpers import TinyCNN, assert_same_outputs, make_state, sqz_round_trip
from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.errors import CodecError
from squeezestudio_freshnets import (FreshNetsConfig, band_budget, dct_matrix, fit_buckets, from_frequency,
                                     hash_positions, to_frequency)
from squeezestudio.core.compression.registry import default_registry


def test_dct_is_orthonormal_and_invertible() -> None:
    c = dct_matrix(5)
    assert np.allclose(c @ c.T, np.eye(5))
    w = np.random.default_rng(0).normal(size=(2, 3, 3, 5))
    assert np.allclose(from_frequency(to_frequency(w)), w)


def test_budget_favours_low_frequencies_and_respects_the_total() -> None:
    shape = (32, 16, 3, 3)
    sizes = band_budget(shape, 0.1, 2.0)
    assert len(sizes) == 5 and min(sizes) >= 1
    per_coefficient = np.array(sizes) / np.bincount(np.add.outer(np.arange(3), np.arange(3)).ravel()) / 512
    assert all(a > b for a, b in zip(per_coefficient, per_coefficient[1:]))
    assert abs(sum(sizes) - 0.1 * np.prod(shape)) <= len(sizes)
    flat = band_budget(shape, 0.1, 0.0)
    assert np.allclose(np.array(flat) / np.array([1, 2, 3, 2, 1]), flat[0], rtol=0.02)


def test_hashes_depend_only_on_the_seed() -> None:
    a = hash_positions((4, 4, 3, 3), [5, 5, 5, 5, 5], 7)
    b = hash_positions((4, 4, 3, 3), [5, 5, 5, 5, 5], 7)
    c = hash_positions((4, 4, 3, 3), [5, 5, 5, 5, 5], 8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) == {-1.0, 1.0}


def test_fit_is_the_signed_mean_per_bucket() -> None:
    w = np.random.default_rng(1).normal(size=(3, 2, 3, 3))
    sizes = [1, 2, 2, 2, 1]
    buckets = fit_buckets(w, sizes, 3)
    bucket, sign = hash_positions(w.shape, sizes, 3)
    signed = to_frequency(w).reshape(-1) * sign
    for k in range(sum(sizes)):
        members = signed[bucket == k]
        assert buckets[k] == pytest.approx(members.mean() if members.size else 0.0, abs=1e-6)


def test_method_decodes_bitwise_shrinks_the_file_and_round_trips(registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = make_state(TinyCNN())
    dense = len(encode_sqz(CompressedModel(handle=state.handle), registry=default_registry()))
    method = registry.get("freshnets")
    method.apply(state, {"conv2": FreshNetsConfig(compression=0.1, seed=5)})
    enc = state.encodings["conv2.weight"]
    assert enc.kind == "custom" and enc.custom.arrays["buckets"].size == pytest.approx(115, abs=5)
    weight = state.layer("conv2").weight.detach().numpy()
    assert np.array_equal(enc.decode(method.decode_custom), weight)
    compressed = len(encode_sqz(CompressedModel(handle=state.handle, encodings=dict(state.encodings)), registry=default_registry()))
    saved = 1152 * 4 - enc.custom.arrays["buckets"].nbytes
    assert dense - compressed >= saved - 400  # the JSON header grows a little (band sizes, seed)
    loaded = sqz_round_trip(state, tmp_path)
    assert np.array_equal(loaded.conv2.weight.detach().numpy(), weight)
    assert_same_outputs(state.module, loaded, torch.randn(2, 3, 8, 8))


def test_more_buckets_give_less_error(registry) -> None:
    """Error comes from buckets shared by several coefficients: a larger budget gives less of it."""
    torch.manual_seed(1)
    errors = []
    for compression in (0.05, 0.3, 1.0):
        state = make_state(TinyCNN())
        original = state.layer("conv2").weight.detach().clone()
        registry.get("freshnets").apply(state, {"conv2": {"compression": compression, "skew": 0.0}})
        errors.append(float(((state.layer("conv2").weight.detach() - original) ** 2).sum() / (original ** 2).sum()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5


def test_finetune_projection_keeps_the_weight_in_the_hashed_space(registry) -> None:
    torch.manual_seed(2)
    state = make_state(TinyCNN())
    method = registry.get("freshnets")
    method.apply(state, {"conv1": {}})
    before = state.encodings["conv1.weight"].custom.arrays["buckets"].copy()
    hooks = method.finetune_hooks(state, {"conv1": {}})
    with torch.no_grad():
        state.layer("conv1").weight.add_(0.05)
    hooks.after_step()
    enc = state.encodings["conv1.weight"]
    assert not np.array_equal(enc.custom.arrays["buckets"], before)
    assert np.array_equal(enc.decode(method.decode_custom), state.layer("conv1").weight.detach().numpy())
    # projecting twice changes nothing (it is a projection)
    again = enc.custom.arrays["buckets"].copy()
    hooks.after_step()
    assert np.allclose(state.encodings["conv1.weight"].custom.arrays["buckets"], again, atol=1e-6)


def test_before_step_turns_the_weight_gradient_into_the_bucket_gradient(registry) -> None:
    """After the hook, the gradient lies in the hashed space and its buckets hold S^T DCT(dL/dw)."""
    torch.manual_seed(3)
    state = make_state(TinyCNN())
    method = registry.get("freshnets")
    method.apply(state, {"conv1": {"compression": 0.3}})
    meta = state.encodings["conv1.weight"].custom.meta
    weight = state.layer("conv1").weight
    weight.grad = torch.randn_like(weight)
    raw = weight.grad.detach().numpy().astype(np.float64)
    bucket, sign = hash_positions(tuple(weight.shape), meta["band_sizes"], meta["seed"])
    expected = np.bincount(bucket, weights=to_frequency(raw).reshape(-1) * sign, minlength=sum(meta["band_sizes"]))
    method.finetune_hooks(state, {"conv1": {}}).before_step()
    shared = weight.grad.detach().numpy()
    assert np.allclose(fit_buckets(shared, meta["band_sizes"], meta["seed"]), expected, atol=1e-5)
    coeffs = to_frequency(shared.astype(np.float64)).reshape(-1) * sign
    assert np.allclose(coeffs, expected[bucket], atol=1e-5)  # every coefficient is its bucket's value


def test_malformed_payload_is_a_codec_error(registry) -> None:
    from squeezestudio.core.compression.encoding import CustomPayload

    method = registry.get("freshnets")
    bad = CustomPayload(method="freshnets", arrays={"buckets": np.zeros(3, np.float32)},
                        meta={"seed": 0, "band_sizes": [1, 1, 1, 1, 1]})
    with pytest.raises(CodecError):
        method.decode_custom(bad, (2, 2, 3, 3))
