"""Per layer and per setting: the measured damage and the exact bytes it costs in the .sqz file.

Each (layer, setting) is applied to that layer alone, with every other layer
exact. Its *byte cost* is the change in length of the real ``.sqz`` encoding
(``len(encode_sqz(...))`` with the setting minus without it) -- the codec's
own bytes, entropy coding and index coding included, never a formula. Its
*damage* is the rise of the mean cross-entropy on the selection data (a
held-out part of the TRAINING data, never the data results are reported on);
loss is used rather than top-1 because it registers the small harm of every
layer, which top-1 on a few hundred images rounds to zero.

The cells' byte costs add up to a whole choice's length but for two parts
of the file's header that are written once per file, not once per layer:
the recipe (each cell's file names its one layer in an override; a choice
written as a compact recipe names its common setting once) and the
compression log (one summary line per method). :meth:`LayerTable.predicted_bytes`
swaps the cells' recipe text for the choice's own (counted: it is plain
JSON) and their log lines for the longest one cell wrote (each cell's log
length is measured with it). Without that, a uniform setting on 20 layers
was predicted 2-4% larger than its file and left out of the candidates.

Single-method settings (prune only, cluster only, quantize only) are what
:func:`~squeezestudio.core.measure.sensitivity.layer_sensitivity` measures:
a :class:`SensitivityResult` measured on the same selection data is reused
for their damage instead of being measured again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.evaluation import evaluate, reference_predictions
from squeezestudio.core.measure.sensitivity import SensitivityResult
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report
from squeezestudio.core.search.settings import LayerSetting, recipe_for


@dataclass(frozen=True)
class TableEntry:
    """One setting of one layer: exact byte change of the file, loss and top-1 on the selection data."""

    bytes_delta: int
    loss: float
    top1: Optional[float]
    log_bytes: int = 0
    """Length of the compression log in the cell's file header (per file, not per layer; 0: not measured)."""


@dataclass
class LayerTable:
    """The measured table the allocation works on, plus the original's file length and loss."""

    base_bytes: int
    base_loss: float
    base_top1: Optional[float]
    entries: dict[str, dict[LayerSetting, TableEntry]] = field(default_factory=dict)
    compact: bool = False
    """Whether choices are written as compact recipes (see :func:`recipe_for`): decides their recipe text."""
    _single_text: dict[tuple[str, LayerSetting], int] = field(default_factory=dict, repr=False, compare=False)

    def damage(self, layer: str, setting: LayerSetting) -> float:
        return 0.0 if setting.is_off else self.entries[layer][setting].loss - self.base_loss

    def cost(self, layer: str, setting: LayerSetting) -> int:
        return 0 if setting.is_off else self.entries[layer][setting].bytes_delta

    def settings(self, layer: str) -> list[LayerSetting]:
        """The layer's measured settings, with "off" (float32, unpruned) first."""
        return [LayerSetting()] + sorted(self.entries[layer], key=LayerSetting.sort_key)

    def predicted_bytes(self, choice: dict[str, LayerSetting]) -> int:
        """Original length + each cell's byte change, with the cells' recipe text replaced by the choice's."""
        empty = recipe_text_bytes(recipe_for({}))
        cells, log = 0, 0
        for layer, s in choice.items():
            if s.is_off:
                continue
            key = (layer, s)
            if key not in self._single_text:
                self._single_text[key] = recipe_text_bytes(recipe_for({layer: s})) - empty
            entry = self.entries[layer][s]
            cells += entry.bytes_delta - self._single_text[key] - entry.log_bytes
            log = max(log, entry.log_bytes)
        return self.base_bytes + cells + log + recipe_text_bytes(recipe_for(choice, compact=self.compact)) - empty


def header_text_bytes(value: Any) -> int:
    """Bytes ``value`` takes in a .sqz header: compact JSON, escaped once more inside the container's metadata."""
    return len(json.dumps(json.dumps(value, separators=(",", ":")))) - 2


def recipe_text_bytes(recipe: Any) -> int:
    """Bytes the recipe takes in a .sqz header."""
    from squeezestudio.core.compression.recipe import recipe_to_dict

    return header_text_bytes(recipe_to_dict(recipe))


def reused_entry(sensitivity: Optional[SensitivityResult], layer: str,
                 setting: LayerSetting) -> Optional[tuple[float, Optional[float]]]:
    """(loss, top-1) of a single-method setting from a sensitivity scan that measured its loss, else None."""
    if sensitivity is None:
        return None
    if setting.sparsity > 0 and setting.cluster_bits is None and setting.quant_bits is None:
        method, level = "prune", setting.sparsity
    elif setting.sparsity == 0 and setting.cluster_bits is not None:
        method, level = "cluster", float(setting.cluster_bits)
    elif setting.sparsity == 0 and setting.quant_bits is not None:
        method, level = "quantize", float(setting.quant_bits)
    else:
        return None
    for p in sensitivity.points:
        if p.layer == layer and p.method == method and p.level == level and p.loss is not None:
            return p.loss, p.top1
    return None


def table_jobs(layers: Sequence[str], settings: Sequence[LayerSetting]) -> list[tuple[str, LayerSetting]]:
    """Every ``(layer, setting)`` a table measures, in its order ("off" needs no measuring)."""
    return [(layer, s) for layer in layers for s in settings if not s.is_off]


def measure_table_base(handle: ModelHandle, selection: ImageDataset, *, registry: MethodRegistry,
                       batch_size: Optional[int] = None,
                       cancel: Optional[CancelToken] = None) -> tuple[LayerTable, torch.Tensor]:
    """An empty table holding the original's file length and loss, and its predictions (the reference)."""
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress
    from squeezestudio.core.compression.recipe import Recipe

    original = compress(handle, Recipe(), registry=registry, cancel=cancel)
    base_bytes = len(encode_sqz(original, registry=registry))
    reference = reference_predictions(handle.module, selection, batch_size=batch_size, cancel=cancel)
    base = evaluate(handle.module, selection, batch_size=batch_size, cancel=cancel)
    return LayerTable(base_bytes=base_bytes, base_loss=float(base.loss or 0.0), base_top1=base.top1), reference


def measure_table_entry(handle: ModelHandle, selection: ImageDataset, layer: str, setting: LayerSetting, *,
                        base_bytes: int, reference: torch.Tensor, registry: MethodRegistry,
                        reused: Optional[tuple[float, Optional[float]]] = None, batch_size: Optional[int] = None,
                        cancel: Optional[CancelToken] = None) -> TableEntry:
    """One cell of the table: ``setting`` on ``layer`` alone; ``reused`` (loss, top-1) skips the evaluation.

    A plain function of its arguments: a local table and a Ray worker measure a cell through it.
    """
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress

    cm = compress(handle, recipe_for({layer: setting}), registry=registry, cancel=cancel)
    cost = len(encode_sqz(cm, registry=registry)) - base_bytes
    log_bytes = header_text_bytes(cm.provenance.get("log", [])) - header_text_bytes([])
    if reused is None:
        with torch.inference_mode():
            r = evaluate(cm.handle.module, selection, batch_size=batch_size, reference=reference,
                         topk=(1,), cancel=cancel)
        reused = (float(r.loss or 0.0), r.top1)
    return TableEntry(cost, reused[0], reused[1], log_bytes)


def measure_layer_table(handle: ModelHandle, selection: ImageDataset, layers: Sequence[str],
                        settings: Sequence[LayerSetting], *, registry: MethodRegistry,
                        sensitivity: Optional[SensitivityResult] = None,
                        batch_size: Optional[int] = None, progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None) -> LayerTable:
    """Measure every (layer, setting) on ``selection`` (see the module docstring)."""
    report(progress, 0.0, "measuring the original model")
    table, reference = measure_table_base(handle, selection, registry=registry, batch_size=batch_size, cancel=cancel)
    jobs = table_jobs(layers, settings)
    for i, (layer, setting) in enumerate(jobs):
        check(cancel)
        report(progress, i / max(1, len(jobs)), f"{layer}: {setting.label()}")
        table.entries.setdefault(layer, {})[setting] = measure_table_entry(
            handle, selection, layer, setting, base_bytes=table.base_bytes, reference=reference, registry=registry,
            reused=reused_entry(sensitivity, layer, setting), batch_size=batch_size, cancel=cancel)
    report(progress, 1.0, "layer table measured")
    return table


def table_to_dict(table: LayerTable) -> dict[str, Any]:
    """Plain data (JSON) for a table, so a later search on the same model and split reuses it."""
    return {"base_bytes": table.base_bytes, "base_loss": table.base_loss, "base_top1": table.base_top1,
            "entries": {layer: [{"sparsity": s.sparsity, "cluster_bits": s.cluster_bits, "quant_bits": s.quant_bits,
                                 "bytes_delta": e.bytes_delta, "loss": e.loss, "top1": e.top1,
                                 "log_bytes": e.log_bytes}
                                for s, e in entries.items()] for layer, entries in table.entries.items()}}


def table_from_dict(data: Any) -> LayerTable:
    """Inverse of :func:`table_to_dict`; a malformed table is a :class:`DataError`."""
    try:
        table = LayerTable(base_bytes=int(data["base_bytes"]), base_loss=float(data["base_loss"]),
                           base_top1=None if data.get("base_top1") is None else float(data["base_top1"]))
        for layer, rows in dict(data["entries"]).items():
            table.entries[str(layer)] = {
                LayerSetting(float(r["sparsity"]), r.get("cluster_bits"), r.get("quant_bits")):
                    TableEntry(int(r["bytes_delta"]), float(r["loss"]), None if r.get("top1") is None else float(r["top1"]),
                               int(r.get("log_bytes", 0)))
                for r in rows}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"the saved layer table cannot be read ({type(exc).__name__}: {exc}); delete it to measure again") from None
    return table
