"""Scalar quantization of weights: uniform (affine), binary, ternary and float16.

- ``uniform``: b-bit integers with a float32 scale (and zero point) per tensor
  or per output channel, stored as ``kind="affine"`` and decoded exactly as
  :meth:`WeightEncoding.kept_values` does: ``(symbol - zero_point) * scale``
  in float32. Symmetric mode centres the grid on zero (zero point
  ``2**(b-1)``); asymmetric mode fits [min, max] (always including 0, so a
  zero weight stays exactly zero).
- ``binary``: sign times a per-channel scale equal to the mean |w|
  (Rastegari et al., XNOR-Net, ECCV 2016): a (C, 2) codebook ``[-a, a]``.
- ``ternary``: Li and Liu, Ternary Weight Networks (2016): weights within
  ``0.7 * mean|w|`` become 0, the others ``+-a`` with ``a`` the mean |w| of the
  large ones; a (C, 3) codebook ``[-a, 0, a]``.
- ``float16``: half precision (``kind="float16"``).

Only kept weights are quantized: a pruning mask survives unchanged. Fine-tuning
uses a straight-through estimator (see :class:`StraightThrough`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.encoding import WeightEncoding, kept_positions
from squeezestudio.core.compression.method import ORDER_SHARE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

SCHEMES = ("uniform", "binary", "ternary", "float16")
TWN_FACTOR = 0.7


@dataclass(frozen=True)
class QuantizeConfig:
    """Options of weight quantization."""

    scheme: str = param("uniform", choices=SCHEMES,
                        help="Uniform b-bit integers, binary (sign x scale), ternary (-a, 0, +a) or float16.")
    bits: int = param(8, minimum=1, maximum=16, help="Bits per weight for the uniform scheme.")
    mode: str = param("symmetric", choices=("symmetric", "asymmetric"),
                      help="Symmetric grid around zero, or asymmetric grid fitted to [min, max].")
    granularity: str = param("channel", choices=("tensor", "channel"),
                             help="One scale per tensor or one per output channel.")
    entropy_coded: bool = param(True, help="Entropy-code the integer symbols in the saved file.")

    def validate(self, where: str) -> None:
        """A symmetric grid needs at least 2 bits (1 bit leaves only zero)."""
        if self.scheme == "uniform" and self.mode == "symmetric" and self.bits < 2:
            raise RecipeError(f"{where}: symmetric quantization needs bits >= 2; use mode=asymmetric "
                              "or scheme=binary for 1 bit")


def _channels(shape: tuple[int, ...], mask: Optional[np.ndarray], per_channel: bool) -> tuple[int, np.ndarray]:
    """Number of scale groups and the group of every kept weight."""
    numel = int(np.prod(shape)) if shape else 1
    if not per_channel or not shape:
        n = numel if mask is None else int(np.count_nonzero(mask))
        return 1, np.zeros(n, dtype=np.int64)
    c = shape[0]
    if mask is None:
        return c, np.repeat(np.arange(c, dtype=np.int64), numel // c)
    return c, kept_positions(mask) // max(numel // c, 1)


def _group_mean(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    sums = np.bincount(groups, weights=values.astype(np.float64), minlength=count)
    n = np.bincount(groups, minlength=count)
    return np.where(n > 0, sums / np.maximum(n, 1), 0.0)


def _uniform(kept: np.ndarray, groups: np.ndarray, count: int, cfg: QuantizeConfig
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symbols, scale and zero point of a uniform grid, all computed in float32."""
    hi = np.zeros(count, dtype=np.float32)
    lo = np.zeros(count, dtype=np.float32)
    if kept.size:
        np.maximum.at(hi, groups, kept)
        np.minimum.at(lo, groups, kept)
    if cfg.mode == "symmetric":
        qmax = 2 ** (cfg.bits - 1) - 1
        scale = (np.maximum(hi, -lo) / np.float32(qmax)).astype(np.float32)
        scale[scale == 0] = 1.0
        zero = np.full(count, 2 ** (cfg.bits - 1), dtype=np.int32)
        q = np.clip(np.rint(kept / scale[groups]), -qmax, qmax) + zero[groups]
    else:
        levels = 2 ** cfg.bits - 1
        scale = ((hi - lo) / np.float32(levels)).astype(np.float32)
        scale[scale == 0] = 1.0
        zero = np.clip(np.rint(-lo / scale), 0, levels).astype(np.int32)
        q = np.clip(np.rint(kept / scale[groups]) + zero[groups], 0, levels)
    dtype = np.uint8 if cfg.bits <= 8 else np.uint16
    return q.astype(dtype), scale, zero


def quantize_weight(weight: np.ndarray, mask: Optional[np.ndarray], cfg: QuantizeConfig) -> WeightEncoding:
    """Quantize the kept values of one weight tensor (the mask is kept as it is)."""
    shape = tuple(weight.shape)
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    kept = flat if mask is None else flat.take(kept_positions(mask))
    keep_mask = mask  # shared: masks are never edited in place once built
    if cfg.scheme == "float16":
        return WeightEncoding(shape=shape, kind="float16", mask=keep_mask,
                              values=kept.astype(np.float16), bits=16)
    count, groups = _channels(shape, mask, cfg.granularity == "channel")
    if cfg.scheme == "uniform":
        symbols, scale, zero = _uniform(kept, groups, count, cfg)
        return WeightEncoding(shape=shape, kind="affine", mask=keep_mask, symbols=symbols, bits=cfg.bits,
                              scale=scale, zero_point=zero, entropy_coded=cfg.entropy_coded)
    magnitude = np.abs(kept)
    if cfg.scheme == "binary":
        alpha = _group_mean(magnitude, groups, count).astype(np.float32)
        symbols = (kept >= 0).astype(np.uint8)
        codebook = np.stack([-alpha, alpha], axis=1)
        bits = 1
    else:  # ternary
        delta = TWN_FACTOR * _group_mean(magnitude, groups, count)
        large = magnitude > delta[groups]
        alpha = _group_mean(np.where(large, magnitude, 0.0), groups, count)
        n_large = np.bincount(groups[large], minlength=count)
        n_all = np.bincount(groups, minlength=count)
        alpha = np.where(n_large > 0, alpha * n_all / np.maximum(n_large, 1), 0.0).astype(np.float32)
        symbols = np.where(large, np.where(kept > 0, 2, 0), 1).astype(np.uint8)
        codebook = np.stack([-alpha, np.zeros_like(alpha), alpha], axis=1)
        bits = 2
    if cfg.granularity == "tensor":
        codebook = codebook[0]
    return WeightEncoding(shape=shape, kind="codebook", mask=keep_mask, symbols=symbols, bits=bits,
                          codebook=codebook.astype(np.float32), entropy_coded=cfg.entropy_coded)


class WeightQuantization(CompressionMethod):
    """Built-in method ``quantize``."""

    name = "quantize"
    label = "Quantization"
    description = "Stores each weight as a few-bit integer with a scale, as binary/ternary values, or as float16."
    order = ORDER_SHARE
    config_class = QuantizeConfig
    exclusive_with = ("cluster",)
    paper = "Jacob et al., Quantization and Training of Neural Networks for Integer-Arithmetic-Only Inference, CVPR 2018"

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        """Quantize every named layer, keeping any pruning mask."""
        for i, (layer, cfg) in enumerate(layer_configs.items()):
            check(cancel)
            weight = state.layer(layer).weight.detach().cpu().numpy()
            state.set_encoding(layer, quantize_weight(weight, state.mask(layer), cfg))
            report(progress, (i + 1) / max(1, len(layer_configs)), f"quantized {layer}")
        state.log.append(f"quantize: {len(layer_configs)} layers")

    def finetune_hooks(self, state: CompressionState,
                       layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Straight-through fine-tuning (see :class:`StraightThrough`)."""
        if not layer_configs:
            return None
        ste = StraightThrough(state, dict(layer_configs))
        return FinetuneHooks(before_step=ste.before_step, after_step=ste.after_step, finish=ste.finish)


class StraightThrough:
    """Straight-through estimator: gradients of the quantized weights train float shadows.

    The forward and backward passes see the quantized weights (the module's
    weights). ``before_step`` (after ``backward``) swaps each layer's float
    shadow into the parameter, keeping the gradient, so the optimizer updates
    the shadow. ``after_step`` saves the updated shadow, zeroes its pruned
    positions and writes its quantization back into the weight, all in torch
    (:func:`quantize_dense`, the same grid as :func:`quantize_weight`).
    ``finish`` stores the final encoding once through ``set_encoding``: the
    quantization of the last shadow when the weights are still its grid
    values, else (the training loop restored an earlier epoch) of the weights
    themselves. The shadows start from the quantized weights (the float
    originals are gone by then).
    """

    def __init__(self, state: CompressionState, layer_configs: dict[str, QuantizeConfig]) -> None:
        self.state = state
        self.configs = layer_configs
        self.shadows = {layer: state.layer(layer).weight.detach().clone() for layer in layer_configs}
        self._weights = {layer: state.layer(layer).weight for layer in layer_configs}
        self._masks: dict[str, Optional[torch.Tensor]] = {}
        for layer, weight in self._weights.items():
            mask = state.mask(layer)
            self._masks[layer] = None if mask is None else \
                torch.from_numpy(np.asarray(mask, dtype=bool).reshape(tuple(weight.shape))).to(weight.device)

    def before_step(self) -> None:
        with torch.no_grad():
            for layer, shadow in self.shadows.items():
                self._weights[layer].copy_(shadow)

    def after_step(self) -> None:
        with torch.no_grad():
            for layer, cfg in self.configs.items():
                weight, shadow, mask = self._weights[layer], self.shadows[layer], self._masks[layer]
                shadow.copy_(weight)
                if mask is not None:
                    shadow.mul_(mask)
                weight.copy_(quantize_dense(shadow, mask, cfg))

    def finish(self) -> None:
        for layer, cfg in self.configs.items():
            weight, shadow, mask = self._weights[layer], self.shadows[layer], self._masks[layer]
            with torch.no_grad():
                source = shadow if torch.equal(weight, quantize_dense(shadow, mask, cfg)) else weight
            enc = quantize_weight(source.detach().cpu().numpy(), self.state.mask(layer), cfg)
            self.state.set_encoding(layer, enc)


def _per_group(x: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """``x`` as rows of scale groups: (C, rest) per output channel, (1, all) per tensor."""
    return x.reshape(x.shape[0], -1) if per_channel and x.dim() > 0 else x.reshape(1, -1)


def quantize_dense(weight: torch.Tensor, mask: Optional[torch.Tensor], cfg: QuantizeConfig) -> torch.Tensor:
    """The dense weight :func:`quantize_weight` would decode to, computed in torch for training steps.

    ``weight`` must already be zero at pruned positions (``mask`` False).
    Uniform and float16 grids follow :func:`quantize_weight` operation by
    operation in float32; binary and ternary scales are means computed in
    float64, so they can differ from numpy's in the last bit (``finish``
    stores the numpy encoding, which is what the file holds).
    """
    if cfg.scheme == "float16":
        return weight.half().float()
    per_channel = cfg.granularity == "channel"
    x = _per_group(weight.float(), per_channel)
    keep = None if mask is None else _per_group(mask, per_channel)
    if cfg.scheme == "uniform":
        hi = x.amax(dim=1, keepdim=True).clamp_min(0.0)  # pruned zeros never widen a grid that holds 0
        lo = x.amin(dim=1, keepdim=True).clamp_max(0.0)
        if cfg.mode == "symmetric":
            qmax = float(2 ** (cfg.bits - 1) - 1)
            scale = torch.maximum(hi, -lo) / qmax
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            q = torch.clamp(torch.round(x / scale), -qmax, qmax)
        else:
            levels = float(2 ** cfg.bits - 1)
            scale = (hi - lo) / levels
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            zero = torch.clamp(torch.round(-lo / scale), 0.0, levels)
            q = torch.clamp(torch.round(x / scale) + zero, 0.0, levels) - zero
        out = q * scale
    else:
        magnitude = x.abs().double()
        n_all = x.new_full((x.shape[0], 1), float(x.shape[1]), dtype=torch.float64) if keep is None \
            else keep.sum(dim=1, keepdim=True).double()
        mean = magnitude.sum(dim=1, keepdim=True) / n_all.clamp_min(1.0)
        if cfg.scheme == "binary":
            alpha = mean.float()
            out = torch.where(x >= 0, alpha, -alpha)
        else:  # ternary
            large = magnitude > TWN_FACTOR * mean
            if keep is not None:
                large &= keep
            n_large = large.sum(dim=1, keepdim=True).double()
            alpha = torch.where(n_large > 0, (magnitude * large).sum(dim=1, keepdim=True)
                                / n_large.clamp_min(1.0), torch.zeros_like(n_large)).float()
            out = torch.where(large, torch.where(x > 0, alpha, -alpha), torch.zeros_like(x))
    if keep is not None:
        out = torch.where(keep, out, torch.zeros_like(out))
    return out.reshape(weight.shape).to(weight.dtype)
