"""FreshNets: hashed weight sharing of convolution filters in the frequency domain.

Chen et al., "Compressing Convolutional Neural Networks in the Frequency
Domain" (KDD 2016; arXiv 2015). Each ``kh x kw`` filter is mapped to its 2-D
DCT coefficients (orthonormal DCT-II). Coefficient ``(o, c, u, v)`` belongs to
frequency band ``u + v``; a hash of its position and the seed picks one of
that band's buckets and a second hash a sign, and the coefficient *is*
``sign * bucket value``. Low frequencies carry most of a filter's energy, so
they get more buckets: band ``b`` gets a share proportional to its size times
``exp(-skew * b / (bands - 1))``.

Storage is the bucket values only: the hashes are recomputed from the seed
when decoding, which is the point of the method (no index arrays). The
encoding is ``WeightEncoding(kind="custom")`` with ``arrays={"buckets": float32}``
and the band sizes and seed in ``meta``; :meth:`FreshNetsMethod.decode_custom`
rebuilds the weight exactly (same float64 arithmetic, then float32).

Initial bucket values are the least-squares fit: the mean of the signed DCT
coefficients that hash to a bucket. Because the DCT is orthonormal, this is
also the least-squares fit in weight space. Fine-tuning trains the bucket
values as the paper does: ``before_step`` sums the gradients of each bucket's
coefficients (so an SGD step on the weight is a step on the buckets), and
``after_step`` projects the weight back onto the hashed space (DCT, signed mean
per bucket, inverse DCT), which keeps the compression exact with any optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from squeezestudio.plugin_api import (
    ORDER_SHARE,
    CancelToken,
    check,
    CodecError,
    CompressionMethod,
    CompressionState,
    CustomPayload,
    FinetuneHooks,
    param,
    ProgressCallback,
    report,
    WeightEncoding,
)

METHOD = "freshnets"
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class FreshNetsConfig:
    """Knobs of FreshNets."""

    compression: float = param(0.125, minimum=0.001, maximum=1.0,
                               help="stored bucket values per weight (0.125: 8x fewer numbers)")
    skew: float = param(2.0, minimum=0.0, maximum=20.0,
                        help="how strongly the bucket budget favours low frequencies (0: by band size only)")
    seed: int = param(0, minimum=0, maximum=2**31 - 1, help="seed of the bucket and sign hashes")


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``C`` (``C @ C.T == I``), float64."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * j + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def to_frequency(weight: np.ndarray) -> np.ndarray:
    """2-D DCT of every ``kh x kw`` filter slice (float64)."""
    ch, cw = dct_matrix(weight.shape[-2]), dct_matrix(weight.shape[-1])
    return np.einsum("ui,ocij,vj->ocuv", ch, weight.astype(np.float64), cw, optimize=True)


def from_frequency(coeffs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_frequency` (float64)."""
    ch, cw = dct_matrix(coeffs.shape[-2]), dct_matrix(coeffs.shape[-1])
    return np.einsum("ui,ocuv,vj->ocij", ch, coeffs, cw, optimize=True)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def band_of(shape: tuple[int, ...]) -> np.ndarray:
    """Frequency band ``u + v`` of every coefficient, flat in C order."""
    kh, kw = shape[-2], shape[-1]
    bands = np.add.outer(np.arange(kh), np.arange(kw))
    return np.broadcast_to(bands, shape).reshape(-1)


def band_budget(shape: tuple[int, ...], compression: float, skew: float) -> list[int]:
    """Buckets per band: about ``compression * numel`` in all, at least 1 and at most the band's size."""
    counts = np.bincount(band_of(shape)).astype(np.float64)
    n_bands = counts.size
    weights = counts * np.exp(-skew * np.arange(n_bands) / max(1, n_bands - 1))
    total = max(n_bands, int(round(compression * counts.sum())))
    raw = total * weights / weights.sum()
    return [int(min(c, max(1, math.floor(r + 0.5)))) for c, r in zip(counts, raw)]


def hash_positions(shape: tuple[int, ...], band_sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(global bucket index, sign +-1) of every coefficient, from the seed alone."""
    bands = band_of(shape)
    sizes = np.asarray(band_sizes, dtype=np.uint64)
    offsets = np.concatenate([[0], np.cumsum(band_sizes)[:-1]]).astype(np.int64)
    key = _mix(np.arange(bands.size, dtype=np.uint64) ^ _mix(np.array([seed], dtype=np.uint64)))
    bucket = (key % sizes[bands]).astype(np.int64) + offsets[bands]
    sign = 1.0 - 2.0 * ((_mix(key) >> np.uint64(63)).astype(np.float64))
    return bucket, sign


def fit_buckets(weight: np.ndarray, band_sizes: list[int], seed: int) -> np.ndarray:
    """Least-squares bucket values: the mean of the signed coefficients of each bucket (float32)."""
    bucket, sign = hash_positions(weight.shape, band_sizes, seed)
    signed = to_frequency(weight).reshape(-1) * sign
    total = int(sum(band_sizes))
    sums = np.bincount(bucket, weights=signed, minlength=total)
    counts = np.bincount(bucket, minlength=total)
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def decode_buckets(buckets: np.ndarray, shape: tuple[int, ...], band_sizes: list[int], seed: int) -> np.ndarray:
    """The dense float32 weight that the buckets stand for."""
    bucket, sign = hash_positions(shape, band_sizes, seed)
    coeffs = (buckets.astype(np.float64)[bucket] * sign).reshape(shape)
    return from_frequency(coeffs).astype(np.float32)


def encode(weight: np.ndarray, config: FreshNetsConfig, mask: Optional[np.ndarray] = None) -> WeightEncoding:
    """The FreshNets encoding of a 4-D convolution weight (an earlier pruning mask is kept)."""
    sizes = band_budget(weight.shape, config.compression, config.skew)
    payload = CustomPayload(method=METHOD, arrays={"buckets": fit_buckets(weight, sizes, config.seed)},
                            meta={"seed": int(config.seed), "band_sizes": sizes})
    return WeightEncoding(shape=tuple(weight.shape), kind="custom", mask=mask, custom=payload, bits=32)


class FreshNetsMethod(CompressionMethod):
    """Plugin method ``freshnets``."""

    name = METHOD
    label = "FreshNets (frequency hashing)"
    description = ("Shares each filter's DCT coefficients through seeded hash buckets, fewer for high "
                   "frequencies, and stores only the bucket values.")
    order = ORDER_SHARE
    config_class = FreshNetsConfig
    layer_types = (nn.Conv2d,)
    exclusive_with = ("cluster", "quantize", "pow2")
    paper = "Chen et al., Compressing Convolutional Neural Networks in the Frequency Domain, KDD 2016"

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> None:
        for i, (layer, cfg) in enumerate(layer_configs.items()):
            check(cancel)
            cfg = self.config_for(layer, cfg)
            weight = state.layer(layer).weight.detach().cpu().numpy()
            enc = encode(weight, cfg, state.encoding(layer).mask)
            state.set_encoding(layer, enc, custom_decoder=self.decode_custom)
            stored = int(enc.custom.arrays["buckets"].size)
            state.log.append(f"freshnets: {layer}: {weight.size} weights -> {stored} bucket values")
            report(progress, (i + 1) / max(1, len(layer_configs)), f"freshnets: {layer}")

    def decode_custom(self, payload: CustomPayload, shape: tuple[int, ...]) -> np.ndarray:
        try:
            sizes = [int(s) for s in payload.meta["band_sizes"]]
            seed = int(payload.meta["seed"])
            buckets = np.asarray(payload.arrays["buckets"], dtype=np.float32).reshape(-1)
        except (KeyError, TypeError, ValueError):
            raise CodecError("a FreshNets encoding lacks its bucket values, band sizes or seed") from None
        if len(shape) != 4 or sum(sizes) != buckets.size or len(sizes) != shape[-2] + shape[-1] - 1 \
                or min(sizes, default=0) < 1:
            raise CodecError(f"a FreshNets encoding does not fit a weight of shape {tuple(shape)}")
        return decode_buckets(buckets, tuple(shape), sizes, seed)

    def finetune_hooks(self, state: CompressionState, layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Train the bucket values: gradients summed per bucket, then the weight re-projected.

        With ``w = IDCT(S b)`` (S: the signed hash of coefficients to buckets)
        the gradient of the bucket values is ``S^T DCT(dL/dw)``; ``before_step``
        replaces the weight's gradient by ``IDCT(S S^T DCT(dL/dw))``, so a
        plain SGD step on the weight is exactly a step on the buckets (the
        paper's training). ``after_step`` projects the result back onto the
        hashed space, which keeps it exact with adaptive optimizers too.
        """
        hashes: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

        def ours(layer: str) -> Optional[WeightEncoding]:
            enc = state.encodings.get(f"{layer}.weight")
            if enc is None or enc.kind != "custom" or enc.custom is None or enc.custom.method != METHOD:
                return None
            return enc

        def share_gradients() -> None:
            for layer in layer_configs:
                enc = ours(layer)
                weight = state.layer(layer).weight
                if enc is None or weight.grad is None:
                    continue
                meta = enc.custom.meta
                if layer not in hashes:
                    bucket, sign = hash_positions(tuple(weight.shape), meta["band_sizes"], meta["seed"])
                    hashes[layer] = (bucket, sign, int(sum(meta["band_sizes"])))
                bucket, sign, total = hashes[layer]
                grad = weight.grad.detach().cpu().numpy().astype(np.float64)
                per_bucket = np.bincount(bucket, weights=to_frequency(grad).reshape(-1) * sign, minlength=total)
                shared = from_frequency((per_bucket[bucket] * sign).reshape(grad.shape))
                weight.grad.copy_(torch.from_numpy(shared.astype(np.float32)))

        def project() -> None:
            for layer in layer_configs:
                enc = ours(layer)
                if enc is None:
                    continue
                weight = state.layer(layer).weight.detach().cpu().numpy()
                meta = enc.custom.meta
                enc.custom.arrays["buckets"] = fit_buckets(weight, meta["band_sizes"], meta["seed"])
                state.set_encoding(layer, enc, custom_decoder=self.decode_custom)

        return FinetuneHooks(before_step=share_gradients, after_step=project, finish=project)
