"""Quantization: values on the grid, binary/ternary tables, float16, masks, straight-through fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.quantization import QuantizeConfig, WeightQuantization, quantize_weight
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.handle import InputSpec, ModelHandle

LAYERS = ("features.0", "classifier.1")


def tiny_state() -> CompressionState:
    torch.manual_seed(0)
    module = nn.Sequential()
    module.add_module("features", nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    module.add_module("classifier", nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 10)))
    handle = ModelHandle(module=module, name="tiny", input_spec=InputSpec(3, 8, 8),
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    return CompressionState.from_handle(handle)


def q(**kw) -> QuantizeConfig:
    return make_config(QuantizeConfig, kw)


def weights(state: CompressionState, layer: str) -> np.ndarray:
    return state.layer(layer).weight.detach().numpy().copy()


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_uniform_values_lie_on_the_grid(bits: int, mode: str, granularity: str) -> None:
    state = tiny_state()
    orig = {n: weights(state, n) for n in LAYERS}
    WeightQuantization().apply(state, {n: q(bits=bits, mode=mode, granularity=granularity) for n in LAYERS})
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        wq = weights(state, name)
        assert enc.kind == "affine" and np.array_equal(enc.decode(), wq)
        assert enc.symbols.min() >= 0 and int(enc.symbols.max()) < 2 ** bits
        groups = 1 if granularity == "tensor" else wq.shape[0]
        assert enc.scale.shape == (groups,) and enc.zero_point.shape == (groups,)
        scale = np.broadcast_to(enc.scale.reshape(-1, *[1] * (wq.ndim - 1)), wq.shape)
        zp = np.broadcast_to(enc.zero_point.reshape(-1, *[1] * (wq.ndim - 1)), wq.shape)
        steps = wq / scale + zp
        assert np.allclose(steps, np.rint(steps), atol=1e-3)  # on the integer grid
        assert np.abs(wq - orig[name]).max() <= scale.max() * 0.5 + 1e-6  # rounding error only
        if mode == "asymmetric":
            assert np.all(enc.decode()[orig[name] == 0] == 0)


def test_symmetric_one_bit_is_rejected_with_advice() -> None:
    with pytest.raises(RecipeError, match="binary"):
        q(bits=1)
    with pytest.raises(RecipeError, match="maximum"):
        q(bits=17)
    assert q(bits=1, mode="asymmetric").bits == 1


def test_binary_is_sign_times_mean_magnitude_per_channel() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    enc = quantize_weight(x, None, q(scheme="binary"))
    assert enc.kind == "codebook" and enc.codebook.shape == (4, 2) and enc.bits == 1
    alpha = np.abs(x).reshape(4, -1).mean(axis=1)
    expected = np.sign(x) * alpha[:, None, None, None]
    assert np.allclose(enc.decode(), expected, rtol=1e-6)
    tensor = quantize_weight(x, None, q(scheme="binary", granularity="tensor"))
    assert tensor.codebook.shape == (2,) and len(np.unique(np.abs(tensor.decode()))) == 1


def test_ternary_follows_twn() -> None:
    x = np.random.default_rng(1).normal(size=(3, 40)).astype(np.float32)
    enc = quantize_weight(x, None, q(scheme="ternary"))
    assert enc.codebook.shape == (3, 3) and enc.bits == 2
    out = enc.decode()
    for c in range(3):
        delta = 0.7 * np.abs(x[c]).mean()
        large = np.abs(x[c]) > delta
        alpha = np.abs(x[c][large]).mean()
        assert np.all(out[c][~large] == 0)
        assert np.allclose(out[c][large], np.sign(x[c][large]) * alpha, rtol=1e-6)


def test_float16_is_exact_half_precision() -> None:
    x = np.random.default_rng(2).normal(size=(5, 7)).astype(np.float32)
    enc = quantize_weight(x, None, q(scheme="float16"))
    assert enc.kind == "float16" and enc.values.dtype == np.float16
    assert np.array_equal(enc.decode(), x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("scheme", ["uniform", "binary", "ternary", "float16"])
def test_pruned_weights_stay_zero_after_quantization(scheme: str) -> None:
    state = tiny_state()
    MagnitudePruning().apply(state, {n: make_config(PruneConfig, {"sparsity": 0.6}) for n in LAYERS})
    masks = {n: state.mask(n).copy() for n in LAYERS}
    WeightQuantization().apply(state, {n: q(scheme=scheme, bits=4) for n in LAYERS})
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        assert np.array_equal(enc.mask, masks[name])
        flat = weights(state, name).reshape(-1)
        assert np.all(flat[~masks[name]] == 0)
        assert np.array_equal(enc.decode().reshape(-1), flat)


@pytest.mark.parametrize("scheme", ["uniform", "ternary"])
def test_straight_through_keeps_weights_on_the_grid(scheme: str) -> None:
    state = tiny_state()
    MagnitudePruning().apply(state, {n: make_config(PruneConfig, {"sparsity": 0.5}) for n in LAYERS})
    configs = {n: q(scheme=scheme, bits=3) for n in LAYERS}
    method = WeightQuantization()
    method.apply(state, configs)
    hooks = method.finetune_hooks(state, configs)
    model = state.module
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(6, 3, 8, 8), torch.arange(6)
    start = weights(state, "classifier.1")
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        hooks.before_step()
        opt.step()
        hooks.after_step()
    shadow = hooks.before_step.__self__.shadows["classifier.1"].numpy()
    assert not np.array_equal(shadow, start)  # the float shadow learned
    for name in LAYERS:  # between steps the torch grid equals numpy's quantization of the shadow
        ste = hooks.before_step.__self__
        expected = quantize_weight(ste.shadows[name].numpy(), state.mask(name), configs[name]).decode()
        assert np.allclose(weights(state, name), expected, rtol=1e-6, atol=1e-7)
        if scheme == "uniform":
            assert np.array_equal(weights(state, name), expected)
    hooks.finish()
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        flat = weights(state, name).reshape(-1)
        assert np.array_equal(enc.decode().reshape(-1), flat)
        assert np.all(flat[~enc.mask] == 0)
        again = quantize_weight(weights(state, name), enc.mask, configs[name])
        assert np.array_equal(again.decode(), weights(state, name))  # a fixed point: on the grid
