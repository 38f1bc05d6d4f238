"""Magnitude pruning: set the smallest weights to zero and remember where.

Han et al., "Learning both Weights and Connections for Efficient Neural
Networks" (NeurIPS 2015) and "Deep Compression" (ICLR 2016): small weights
matter least, so dropping them (then fine-tuning with the mask held) keeps
accuracy at high sparsity. Two ways to choose what goes:

- ``mode="sparsity"``: drop exactly ``round(sparsity * n)`` weights, either per
  layer (``scope="layer"``) or with one magnitude threshold across all
  selected layers (``scope="global"``), which lets big, redundant layers lose
  more than small, sensitive ones. Layers whose config differs (a per-layer
  override in the recipe) form their own group, so an override on one layer
  prunes that layer on its own while the rest still share one threshold.
- ``mode="threshold"``: drop every weight with ``|w| < threshold``; a
  threshold that would drop every weight of a layer is refused, as
  ``sparsity=1`` is.

The result is a float32 encoding of the kept values plus the mask; the mask
stays in the encoding so later methods (clustering, quantization) and
fine-tuning keep pruned weights at zero. Thresholds come from
:mod:`.magnitude`, which selects without sorting the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.encoding import WeightEncoding, kept_positions
from squeezestudio.core.compression.magnitude import smallest_k_masks, threshold_masks
from squeezestudio.core.compression.method import ORDER_PRUNE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report


@dataclass(frozen=True)
class PruneConfig:
    """Options of magnitude pruning."""

    mode: str = param("sparsity", choices=("sparsity", "threshold"),
                      help="Prune a fraction of the weights (sparsity) or every weight below a magnitude (threshold).")
    sparsity: float = param(0.5, minimum=0.0, maximum=1.0,
                            help="Fraction of weights set to zero, from 0 up to (not including) 1.")
    threshold: float = param(0.0, minimum=0.0,
                             help="In threshold mode, weights with |w| below this value are pruned.")
    scope: str = param("layer", choices=("layer", "global"),
                       help="Choose the weights to prune per layer, or with one threshold across all layers.")

    def validate(self, where: str) -> None:
        """Reject a sparsity of 1 (it would delete the layer)."""
        if self.sparsity >= 1.0:
            raise RecipeError(f"{where}: sparsity={self.sparsity} must be below 1 (pruning every weight "
                              "would remove the layer)")


def masked_encoding(weight: np.ndarray, mask: np.ndarray) -> WeightEncoding:
    """A float32 encoding keeping ``weight`` where ``mask`` is True (dense if all kept).

    The encoding takes ``mask`` itself (no copy: masks are large); pass a copy
    if the caller keeps changing it.
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    positions = kept_positions(mask)
    if positions.size == mask.size:
        return WeightEncoding.dense(weight)
    return WeightEncoding(shape=tuple(weight.shape), kind="float32", mask=mask,
                          values=flat.take(positions), bits=32)


def _weight_of(state: CompressionState, layer: str) -> np.ndarray:
    return state.layer(layer).weight.detach().cpu().numpy()


def _refuse_empty_layer(layer: str, weight: np.ndarray, mask: np.ndarray, threshold: float) -> None:
    """Refuse a threshold that would prune every weight of ``layer``.

    ``sparsity=1`` is refused by :meth:`PruneConfig.validate` because it
    deletes the layer; a threshold at or above the layer's largest magnitude
    does the same thing, but only the weights can tell, so it is checked
    here, before any layer is changed.
    """
    if weight.size and not mask.any():
        largest = float(np.abs(weight).max())
        raise RecipeError(f"layer {layer}: threshold={threshold:g} would prune every weight, since the "
                          f"largest weight magnitude is {largest:.6g}; choose a threshold below {largest:.6g}")


class MagnitudePruning(CompressionMethod):
    """Built-in method ``prune``."""

    name = "prune"
    label = "Magnitude pruning"
    description = "Sets the smallest-magnitude weights to zero and stores only the rest plus their positions."
    order = ORDER_PRUNE
    config_class = PruneConfig
    paper = "Han et al., Learning both Weights and Connections for Efficient Neural Networks, NeurIPS 2015"

    def compute_masks(self, state: CompressionState,
                      layer_configs: dict[str, PruneConfig]) -> dict[str, np.ndarray]:
        """Flat keep-masks for every layer, without changing the state."""
        masks: dict[str, np.ndarray] = {}
        groups: dict[PruneConfig, list[str]] = {}
        for layer, cfg in layer_configs.items():
            if cfg.mode == "sparsity" and cfg.scope == "global":
                groups.setdefault(cfg, []).append(layer)
            else:
                weight = _weight_of(state, layer)
                masks[layer] = self._single(weight, cfg)
                if cfg.mode == "threshold":
                    _refuse_empty_layer(layer, weight, masks[layer], cfg.threshold)
        for cfg, layers in groups.items():
            weights = [_weight_of(state, name) for name in layers]
            total = sum(w.size for w in weights)
            k = int(round(cfg.sparsity * total))
            for name, mask in zip(layers, smallest_k_masks(weights, k)):
                masks[name] = mask
        return {layer: masks[layer] for layer in layer_configs}

    @staticmethod
    def _single(weight: np.ndarray, cfg: PruneConfig) -> np.ndarray:
        if cfg.mode == "threshold":
            return threshold_masks([weight], cfg.threshold)[0]
        return smallest_k_masks([weight], int(round(cfg.sparsity * weight.size)))[0]

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        """Prune the named layers in place (mask + float32 kept values)."""
        check(cancel)
        report(progress, 0.0, "choosing weights to prune")
        masks = self.compute_masks(state, layer_configs)
        for i, (layer, mask) in enumerate(masks.items()):
            check(cancel)
            state.set_encoding(layer, masked_encoding(_weight_of(state, layer), mask))
            report(progress, (i + 1) / len(masks), f"pruned {layer}")
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.size for m in masks.values())
        if total:
            state.log.append(f"prune: kept {kept} of {total} weights ({kept / total:.1%}) in {len(masks)} layers")

    def finetune_hooks(self, state: CompressionState,
                       layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Hold pruned weights at zero while fine-tuning.

        ``before_step`` zeroes their gradients (so momentum never builds up
        there), ``after_step`` multiplies the weights by the mask (weight decay
        or Adam could still move them), ``finish`` re-encodes the kept values of
        layers that are still plain float32 (a later method such as clustering
        owns the encoding of the layers it touched).
        """
        masks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> (weight, keep-mask)
        for layer in layer_configs:
            mask = state.mask(layer)
            if mask is not None:
                weight = state.layer(layer).weight
                keep = torch.from_numpy(mask.reshape(weight.shape)).to(device=weight.device, dtype=weight.dtype)
                masks[layer] = (weight, keep)  # 0/1 in the weight's dtype: a plain multiply, no casts
        if not masks:
            return None

        def before_step() -> None:
            for weight, mask in masks.values():
                if weight.grad is not None:
                    weight.grad.mul_(mask)

        def after_step() -> None:
            with torch.no_grad():
                for weight, mask in masks.values():
                    weight.mul_(mask)

        def finish() -> None:
            for layer, (_, mask) in masks.items():
                enc = state.encoding(layer)
                if enc.kind == "float32":
                    flat = enc.mask if enc.mask is not None else mask.reshape(-1).cpu().numpy() != 0
                    state.set_encoding(layer, masked_encoding(_weight_of(state, layer), flat))

        return FinetuneHooks(before_step=before_step, after_step=after_step, finish=finish)
