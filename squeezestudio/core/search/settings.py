"""What the search may give one layer: a pruning sparsity and a way to store the kept values.

A :class:`LayerSetting` is pruning (sparsity, possibly 0) combined with
either k-means clustering at ``cluster_bits``, uniform quantization at
``quant_bits`` or plain float32. It turns into a recipe override, so every
candidate is an ordinary recipe that :func:`measure_recipe` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
CLUSTER_BITS = (2, 3, 4, 5, 6)
QUANT_BITS = (6, 8)


@dataclass(frozen=True)
class LayerSetting:
    """Prune to ``sparsity``, then cluster to ``cluster_bits`` or quantize to ``quant_bits`` (at most one)."""

    sparsity: float = 0.0
    cluster_bits: Optional[int] = None
    quant_bits: Optional[int] = None

    @property
    def is_off(self) -> bool:
        return self.sparsity == 0 and self.cluster_bits is None and self.quant_bits is None

    def override(self) -> dict[str, Any]:
        """The recipe's per-layer override (methods not used here are switched off for the layer)."""
        out: dict[str, Any] = {"prune": {"sparsity": self.sparsity} if self.sparsity > 0 else None,
                               "cluster": {"bits": self.cluster_bits} if self.cluster_bits else None,
                               "quantize": {"bits": self.quant_bits} if self.quant_bits else None}
        return out

    def sort_key(self) -> tuple[float, int, int]:
        return (self.sparsity, self.cluster_bits or 0, self.quant_bits or 0)

    def label(self) -> str:
        parts = [f"prune {self.sparsity:g}"] if self.sparsity > 0 else []
        if self.cluster_bits:
            parts.append(f"cluster {self.cluster_bits}b")
        if self.quant_bits:
            parts.append(f"quant {self.quant_bits}b")
        return " + ".join(parts) or "float32"


def setting_grid(sparsities: Sequence[float] = SPARSITIES, cluster_bits: Sequence[int] = CLUSTER_BITS,
                 quant_bits: Sequence[int] = QUANT_BITS) -> list[LayerSetting]:
    """Every combination of a sparsity with float32, each cluster width and each quantization width."""
    values: list[tuple[Optional[int], Optional[int]]] = [(None, None)]
    values += [(b, None) for b in cluster_bits] + [(None, b) for b in quant_bits]
    return [LayerSetting(float(s), c, q) for s in sparsities for c, q in values]


def recipe_for(choice: dict[str, LayerSetting], finetune: Optional[dict[str, Any]] = None, *,
               compact: bool = False) -> Any:
    """A :class:`Recipe` giving each named layer its setting (layers left out stay as they are).

    ``compact`` (only when ``choice`` names every weighted layer of the model)
    writes the most common setting once as the global methods and only the
    other layers as overrides: the same compression, a shorter recipe in the
    file's header -- a uniform choice is then exactly the uniform recipe.
    """
    from squeezestudio.core.compression.recipe import Recipe

    common: Optional[LayerSetting] = None
    if compact and choice:
        counts: dict[LayerSetting, int] = {}
        for setting in choice.values():
            counts[setting] = counts.get(setting, 0) + 1
        common = max(counts, key=lambda st: (counts[st], -list(choice.values()).index(st)))
    methods = {m: o for m, o in (common.override() if common is not None else {}).items() if o is not None}
    layers = {}
    for layer, setting in choice.items():
        if setting == common:
            continue
        override = {m: o for m, o in setting.override().items() if o is not None or m in methods}
        if override:
            layers[layer] = override
    return Recipe(methods=methods, layers=layers, finetune=dict(finetune) if finetune else None)
