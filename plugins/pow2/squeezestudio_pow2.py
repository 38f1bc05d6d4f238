"""Powers-of-two quantization: every weight becomes 0 or +-2^k with k in a window.

Zhou et al., "Incremental Network Quantization" (ICLR 2017) and Miyashita et
al., "Convolutional Neural Networks using Logarithmic Data Representation"
(2016): powers of two turn multiplications into shifts and, with ``bits``
bits per weight, keep the range of a layer better than a uniform grid. The
largest exponent follows INQ, ``floor(log2(4/3 * max|w|))``; the codebook is
``{0, +-2^k_max, ..., +-2^(k_max - n + 1)}`` with ``n = (2^bits - 1) // 2``,
stored as an ordinary codebook encoding so the .sqz codec counts it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from squeezestudio.plugin_api import (
    ORDER_SHARE,
    CancelToken,
    check,
    CompressionMethod,
    CompressionState,
    FinetuneHooks,
    param,
    ProgressCallback,
    report,
    WeightEncoding,
)


@dataclass(frozen=True)
class Pow2Config:
    """Knobs of powers-of-two quantization."""

    bits: int = param(4, minimum=2, maximum=8, help="bits per weight: 2^bits - 1 levels (0 and +-2^k)")


def pow2_codebook(weight: np.ndarray, bits: int) -> np.ndarray:
    """``[0, +2^k_max .. +2^k_min, -2^k_max .. -2^k_min]`` for this weight (float32)."""
    top = float(np.abs(weight).max()) if weight.size else 0.0
    k_max = int(np.floor(np.log2(4.0 * top / 3.0))) if top > 0 else 0
    powers = 2.0 ** np.arange(k_max, k_max - (2 ** bits - 1) // 2, -1, dtype=np.float64)
    return np.concatenate([[0.0], powers, -powers]).astype(np.float32)


def nearest_symbols(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest codebook entry for each value (a value halfway between two goes to the lower one)."""
    order = np.argsort(codebook, kind="stable")
    sorted_cb = codebook[order].astype(np.float64)
    mid = (sorted_cb[1:] + sorted_cb[:-1]) / 2
    pos = np.searchsorted(mid, values.astype(np.float64), side="left")
    return order[pos].astype(np.uint8)


def quantize(enc: WeightEncoding, bits: int) -> WeightEncoding:
    """``enc`` (possibly pruned) with its kept values rounded to powers of two."""
    kept = enc.kept_values()
    codebook = pow2_codebook(kept, bits)
    return WeightEncoding(shape=enc.shape, kind="codebook", mask=enc.mask, bits=bits,
                          symbols=nearest_symbols(kept, codebook), codebook=codebook)


class PowerOfTwoQuantization(CompressionMethod):
    """Plugin method ``pow2``."""

    name = "pow2"
    label = "Powers-of-two quantization"
    description = "Rounds each weight to zero or a signed power of two, so multiplications become shifts."
    order = ORDER_SHARE
    config_class = Pow2Config
    exclusive_with = ("cluster", "quantize")
    paper = "Zhou et al., Incremental Network Quantization: Towards Lossless CNNs with Low-Precision Weights, ICLR 2017"

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> None:
        for i, (layer, cfg) in enumerate(layer_configs.items()):
            check(cancel)
            cfg = self.config_for(layer, cfg)
            state.set_encoding(layer, quantize(state.encoding(layer), cfg.bits))
            report(progress, (i + 1) / max(1, len(layer_configs)), f"pow2: {layer}")

    def finetune_hooks(self, state: CompressionState, layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """After each step, snap the weights back onto their (fixed) power-of-two codebooks."""
        def after_step() -> None:
            for layer in layer_configs:
                enc = state.encoding(layer)
                flat = state.layer(layer).weight.detach().cpu().numpy().reshape(-1)
                kept = flat if enc.mask is None else flat[enc.mask]
                assert enc.codebook is not None
                enc.symbols = nearest_symbols(kept, enc.codebook)
                state.set_encoding(layer, enc)

        return FinetuneHooks(after_step=after_step, finish=after_step)
