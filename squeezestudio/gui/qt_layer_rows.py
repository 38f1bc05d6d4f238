"""Rows of the layer view: inspection numbers merged with how each layer is stored.

Plain Python (no Qt) so it is easy to test: :func:`layer_rows` takes the
inspection report of the model shown (the compressed one when there is one,
since Fire substitution changes the layers), the weight encodings and, when
available, the size report's per-layer bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

COLUMNS = ("name", "type", "shape", "params", "nonzeros", "macs", "bits", "compressed_bytes", "share")
HEADERS = ("Layer", "Type", "Weight shape", "Params", "Non-zeros", "MACs", "Bits/weight",
           "Compressed bytes", "Share of size")


@dataclass
class LayerRow:
    """One layer as the table and the bar chart show it."""

    name: str
    type: str
    shape: str
    params: int
    nonzeros: int
    macs: Optional[int]
    bits: Optional[float]
    compressed_bytes: Optional[int]
    share: Optional[float]
    pruned: int = 0

    @property
    def kept(self) -> int:
        return self.params - self.pruned

    def value(self, column: str) -> Any:
        return getattr(self, column)


def encoding_bits(encoding: Any) -> float:
    """Bits stored per kept weight before entropy coding (32 for dense float32)."""
    kind = getattr(encoding, "kind", "float32")
    if kind == "float32":
        return 32.0
    if kind == "float16":
        return 16.0
    return float(getattr(encoding, "bits", 32))


def per_layer_bytes(size_report: Any) -> dict[str, int]:
    """Final stored bytes per layer from a SizeReport, keyed by layer name.

    Accepts the report's ``to_dict()`` layout or objects in ``.layers``; keys
    may be parameter names (``features.0.weight``), folded onto their layer.
    """
    if size_report is None:
        return {}
    rows: Any = getattr(size_report, "layers", None)
    if rows is None and hasattr(size_report, "to_dict"):
        rows = size_report.to_dict().get("layers")
    if isinstance(rows, dict):
        rows = [dict(v, name=k) if isinstance(v, dict) else {"name": k, "bytes": v} for k, v in rows.items()]
    out: dict[str, int] = {}
    for row in rows or []:
        d = row if isinstance(row, dict) else getattr(row, "__dict__", {})
        name = str(d.get("name", d.get("param", "")))
        value = next((d[k] for k in ("coded", "final_bytes", "stored_bytes", "bytes")
                      if d.get(k) is not None), None)
        if not name or value is None:
            continue
        layer = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
        out[layer] = out.get(layer, 0) + int(value)
    return out


def layer_rows(report: Any, encodings: Optional[dict[str, Any]] = None, size_report: Any = None,
               total_bytes: Optional[int] = None) -> list[LayerRow]:
    """One row per inspected layer; sizes and shares only where they are known.

    Without a size report the compressed-bytes column is empty and the share
    is of the dense float32 size, so the chart still tells where the bytes are.
    """
    encodings = encodings or {}
    stored = per_layer_bytes(size_report)
    dense_total = sum(int(layer.dense_bytes) for layer in report.layers) or 1
    rows = []
    for layer in report.layers:
        encoding = encodings.get(f"{layer.name}.weight")
        pruned = 0 if encoding is None else int(encoding.numel - encoding.kept)
        shape = "" if layer.weight_shape is None else "×".join(str(d) for d in layer.weight_shape)
        nbytes = stored.get(layer.name)
        if nbytes is not None and total_bytes:
            share = nbytes / total_bytes
        else:
            share = int(layer.dense_bytes) / dense_total
        rows.append(LayerRow(name=layer.name, type=layer.type, shape=shape, params=int(layer.params),
                             nonzeros=int(layer.nonzeros), macs=layer.macs,
                             bits=None if layer.weight_shape is None else
                             (32.0 if encoding is None else encoding_bits(encoding)),
                             compressed_bytes=nbytes, share=share, pruned=pruned))
    return rows
