"""Hand-built compressed models, one per encoding kind, shared by the .sqz codec tests.

The model is a tiny Conv2d + BatchNorm + Linear network described by the real
architecture description (a traced graph), so ``load_sqz`` rebuilds it the way
it rebuilds a user's model. Custom payloads belong to a small low-rank test
method registered in :data:`CODEC_REGISTRY`, a registry of its own that the
tests pass to the codec (the application's registry is left alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import CustomPayload, WeightEncoding
from squeezestudio.core.compression.method import ORDER_SHARE, CompressionMethod
from squeezestudio.core.compression.registry import MethodRegistry, build_registry
from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.model.handle import InputSpec, ModelHandle

TINY_INPUT = InputSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
CASES = ("dense32", "float16", "masked32", "codebook_shared", "codebook_channel",
         "affine_tensor", "affine_channel", "binary", "custom")


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 4), 1))


TINY_SPEC = describe_architecture(TinyNet())


@dataclass
class _LowRankConfig:
    rank: int = 2


class _TestLowRank(CompressionMethod):
    """The test "method" behind the ``custom`` case: weight = u @ v, reshaped."""

    name = "test_lowrank"
    label = "Test low rank"
    description = "Decodes the custom payloads of the codec tests."
    order = ORDER_SHARE
    config_class = _LowRankConfig

    def apply(self, state: Any, layer_configs: dict[str, Any], progress: Any = None, cancel: Any = None) -> None:
        raise AssertionError("the codec tests build their encodings by hand")

    def decode_custom(self, payload: CustomPayload, shape: tuple[int, ...]) -> np.ndarray:
        return lowrank_decode(payload, shape)


def codec_registry() -> MethodRegistry:
    """Built-in methods plus the test low-rank method (no plugins)."""
    registry = build_registry(plugins=False)
    registry.register(_TestLowRank)
    return registry


CODEC_REGISTRY = codec_registry()


def lowrank_decode(payload: CustomPayload, shape: tuple[int, ...]) -> np.ndarray:
    """The test "method": weight = u @ v, reshaped."""
    assert payload.method == "test_lowrank"
    return (payload.arrays["u"] @ payload.arrays["v"]).astype(np.float32).reshape(shape)


def _prune(w: np.ndarray, keep: float) -> np.ndarray:
    flat = np.abs(w.reshape(-1))
    return flat >= np.quantile(flat, 1.0 - keep)


def encode_weight(case: str, w: np.ndarray, entropy: bool) -> WeightEncoding:
    """One encoding of kind ``case`` approximating ``w`` (its decode becomes the weight)."""
    shape = tuple(w.shape)
    flat = w.reshape(-1).astype(np.float32)
    c = shape[0]
    if case == "dense32":
        return WeightEncoding(shape=shape, kind="float32", values=flat.copy(), entropy_coded=entropy)
    if case == "float16":
        return WeightEncoding(shape=shape, kind="float16", values=flat.astype(np.float16), bits=16)
    if case == "codebook_shared":  # uneven sparsity across channels, as magnitude pruning leaves it
        rows = np.linspace(0.1, 4.0, c).reshape((c,) + (1,) * (w.ndim - 1))
        mask = _prune(w * rows ** 2, 0.3)
    else:
        mask = _prune(w, 0.35)
    if case == "masked32":
        return WeightEncoding(shape=shape, kind="float32", mask=mask, values=flat[mask], entropy_coded=entropy)
    kept = flat[mask]
    channel = np.repeat(np.arange(c), flat.size // c)[mask]
    if case == "codebook_shared":
        cb = np.linspace(kept.min(), kept.max(), 16).astype(np.float32)
        sym = np.abs(kept[:, None] - cb[None, :]).argmin(1).astype(np.uint8)
        return WeightEncoding(shape=shape, kind="codebook", mask=mask, symbols=sym, bits=4,
                              codebook=cb, entropy_coded=entropy)
    if case == "codebook_channel":
        rows = w.reshape(c, -1)
        cb = np.stack([np.linspace(r.min(), r.max(), 8) for r in rows]).astype(np.float32)
        sym = np.abs(flat[:, None] - cb[np.repeat(np.arange(c), flat.size // c)]).argmin(1).astype(np.int64)
        return WeightEncoding(shape=shape, kind="codebook", symbols=sym, bits=3, codebook=cb,
                              entropy_coded=entropy)
    if case == "affine_tensor":
        scale = np.array([np.abs(kept).max() / 127], dtype=np.float32)
        zp = np.array([128], dtype=np.int32)
        sym = np.clip(np.round(kept / scale[0]) + 128, 0, 255).astype(np.uint8)
        return WeightEncoding(shape=shape, kind="affine", mask=mask, symbols=sym, bits=8, scale=scale,
                              zero_point=zp, entropy_coded=entropy)
    if case == "affine_channel":
        scale = (np.abs(w.reshape(c, -1)).max(1) / 7).astype(np.float32)
        zp = np.full(c, 8.0, dtype=np.float32)
        sym = np.clip(np.round(kept / scale[channel]) + 8, 0, 15).astype(np.uint16)
        return WeightEncoding(shape=shape, kind="affine", mask=mask, symbols=sym, bits=4, scale=scale,
                              zero_point=zp, entropy_coded=entropy)
    if case == "binary":
        alpha = np.abs(w.reshape(c, -1)).mean(1).astype(np.float32)
        cb = np.stack([-alpha, alpha], axis=1)
        sym = (flat >= 0).astype(np.uint8)
        return WeightEncoding(shape=shape, kind="codebook", symbols=sym, bits=1, codebook=cb,
                              entropy_coded=entropy)
    if case == "custom":
        rng = np.random.default_rng(c)
        u = rng.normal(size=(c, 2)).astype(np.float32)
        v = rng.normal(size=(2, flat.size // c)).astype(np.float32) * 0.1
        payload = CustomPayload(method="test_lowrank", arrays={"u": u, "v": v}, meta={"rank": 2})
        return WeightEncoding(shape=shape, kind="custom", custom=payload, mask=mask, entropy_coded=entropy)
    raise AssertionError(case)


def make_cm(case: str, entropy: bool = False) -> CompressedModel:
    """A TinyNet whose conv and fc weights are stored as ``case`` (BN statistics warmed up)."""
    torch.manual_seed(0)
    module = TinyNet()
    for layer in (module.conv, module.fc):  # bell-shaped, like trained weights
        nn.init.normal_(layer.weight, std=0.1)
    module.train()
    with torch.no_grad():
        module(torch.randn(32, 1, 8, 8))
    module.eval()
    encodings = {}
    for name in ("conv.weight", "fc.weight"):
        param = module.get_parameter(name)
        enc = encode_weight(case, param.detach().numpy(), entropy)
        decoded = enc.decode(lowrank_decode if enc.kind == "custom" else None)
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(decoded)))
        encodings[name] = enc
    handle = ModelHandle(module=module, name=f"tiny-{case}", input_spec=TINY_INPUT,
                         class_names=[f"digit {i}" for i in range(10)], source_format="zoo",
                         architecture=TINY_SPEC)
    return CompressedModel(handle=handle, encodings=encodings, recipe={"case": case, "entropy": entropy},
                           metrics={"top1": 0.5}, provenance={"source": "test"})


@pytest.mark.parametrize("case", CASES)
def test_case_weights_equal_their_encodings(case: str) -> None:
    """The builders keep the contract the codec relies on: weight == decode(encoding)."""
    cm = make_cm(case)
    for name, enc in cm.encodings.items():
        decoded = enc.decode(lowrank_decode if enc.kind == "custom" else None)
        assert torch.equal(torch.from_numpy(decoded), cm.handle.module.get_parameter(name).detach())
    assert cm.handle.module.bn.num_batches_tracked.item() == 1
