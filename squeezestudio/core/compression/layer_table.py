"""The layer table: inspection numbers merged with how each layer is stored and what it costs.

One row per inspected layer (of the model shown: the compressed one when
there is one, since substitutions change the layers), with its encoding's
bits per weight (:attr:`WeightEncoding.stored_bits`) and its bytes in the
file (:meth:`SizeReport.bytes_per_layer`). The GUI's layer view and bar chart
draw these rows; nothing here guesses at report layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:  # annotations only: the window imports this before torch is loaded
    from squeezestudio.core.compression.codec.size_report import SizeReport
    from squeezestudio.core.compression.encoding import WeightEncoding
    from squeezestudio.core.model.inspection import ModelReport

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


def layer_table(report: "ModelReport", encodings: Optional[Mapping[str, "WeightEncoding"]] = None,
                sizes: Optional["SizeReport"] = None) -> list[LayerRow]:
    """One row per inspected layer; sizes and shares only where they are known.

    With ``sizes`` a layer's share is of the file's total bytes; without, the
    compressed-bytes column is empty and the share is of the dense float32
    size, so the chart still tells where the bytes are.
    """
    encodings = encodings or {}
    stored = sizes.bytes_per_layer() if sizes is not None else {}
    total = sizes.total_bytes if sizes is not None else 0
    dense_total = sum(int(layer.dense_bytes) for layer in report.layers) or 1
    rows = []
    for layer in report.layers:
        encoding = encodings.get(f"{layer.name}.weight")
        pruned = 0 if encoding is None else int(encoding.numel - encoding.kept)
        shape = "" if layer.weight_shape is None else "×".join(str(d) for d in layer.weight_shape)
        nbytes = stored.get(layer.name)
        share = nbytes / total if nbytes is not None and total else int(layer.dense_bytes) / dense_total
        bits = None if layer.weight_shape is None else float(32 if encoding is None else encoding.stored_bits)
        rows.append(LayerRow(name=layer.name, type=layer.type, shape=shape, params=int(layer.params),
                             nonzeros=int(layer.nonzeros), macs=layer.macs, bits=bits,
                             compressed_bytes=nbytes, share=share, pruned=pruned))
    return rows
