"""The Deep Compression stage table: what each stage of compression saves, in bytes.

Stages per weight tensor, as in Han et al.'s tables:

- ``dense``: every weight as float32;
- ``pruned``: kept weights as float32 plus their positions as fixed-width gaps
  (the narrowest-total gap width);
- ``quantized``: kept weights as ``bits``-bit symbols (or float16/float32
  values) plus positions plus the codebook / scales;
- ``coded``: the bytes actually written for the tensor (Huffman-coded streams
  where the encoding asks for entropy coding; otherwise equal to
  ``quantized``).

Tensors without an encoding (biases, BatchNorm statistics) and the file's
header count the same in every stage. The totals' last column is the length
of the bytes :func:`encode_sqz` produces, measured, not estimated.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from squeezestudio.core.compression.codec.bitpack import packed_size
from squeezestudio.core.compression.codec.layer_codec import LayerStreams
from squeezestudio.core.compression.codec.sparse_index import best_fixed_width
from squeezestudio.core.compression.codec.sqz_format import encode_container
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.progress import CancelToken, ProgressCallback

STAGES = ("dense", "pruned", "quantized", "coded")


@dataclass
class LayerSize:
    """One weight tensor's size at each stage, plus what the final file spends per weight."""

    name: str
    shape: tuple[int, ...]
    kind: str
    numel: int
    kept: int
    bits: int
    entropy_coded: bool
    dense: int
    pruned: int
    quantized: int
    coded: int
    value_bytes: int  # values/symbols plus codebook or scales, as written
    index_bytes: int  # positions, as written

    @property
    def nonzero_pct(self) -> float:
        return 100.0 * self.kept / self.numel if self.numel else 0.0

    def bits_per_weight(self, stage: str = "coded") -> float:
        """Stage bytes * 8 per original weight (32 for dense)."""
        return 8.0 * getattr(self, stage) / self.numel if self.numel else 0.0

    def ratio(self, stage: str = "coded") -> float:
        """Dense bytes over this stage's bytes."""
        size = getattr(self, stage)
        return self.dense / size if size else float("inf")

    @property
    def value_bits(self) -> float:
        """Bits per kept weight for its value (Deep Compression's "weight bits")."""
        return 8.0 * self.value_bytes / self.kept if self.kept else 0.0

    @property
    def index_bits(self) -> float:
        """Bits per kept weight for its position (Deep Compression's "index bits")."""
        return 8.0 * self.index_bytes / self.kept if self.kept else 0.0


@dataclass
class SizeReport:
    """Per-layer stage sizes and totals; ``total_bytes == len(encode_sqz(cm))``."""

    layers: list[LayerSize] = field(default_factory=list)
    raw_tensors: int = 0
    raw_bytes: int = 0
    container_bytes: int = 0
    total_bytes: int = 0
    file_bytes: bytes = field(default=b"", repr=False, compare=False)  # the encoded file itself

    def bytes_per_layer(self) -> dict[str, int]:
        """Bytes each layer's stored weights take in the file, keyed by layer (module) name."""
        out: dict[str, int] = {}
        for row in self.layers:
            layer = row.name.rsplit(".", 1)[0] if "." in row.name else row.name
            out[layer] = out.get(layer, 0) + int(row.coded)
        return out

    def stage_bytes(self, stage: str) -> int:
        """Total bytes at ``stage``: layers + unencoded tensors + the file header."""
        return sum(getattr(row, stage) for row in self.layers) + self.raw_bytes + self.container_bytes

    @property
    def dense_bytes(self) -> int:
        return self.stage_bytes("dense")

    @property
    def compression_ratio(self) -> float:
        return self.dense_bytes / self.total_bytes if self.total_bytes else float("inf")

    def to_dict(self) -> dict[str, Any]:
        layers = []
        for row in self.layers:
            d = asdict(row)
            d["shape"] = list(row.shape)
            d.update(nonzero_pct=row.nonzero_pct, bits_per_weight=row.bits_per_weight(), ratio=row.ratio(),
                     value_bits=row.value_bits, index_bits=row.index_bits)
            layers.append(d)
        return {"layers": layers, "raw_tensors": self.raw_tensors, "raw_bytes": self.raw_bytes,
                "container_bytes": self.container_bytes, "total_bytes": self.total_bytes,
                "stages": {s: self.stage_bytes(s) for s in STAGES},
                "compression_ratio": self.compression_ratio}

    def _rows(self) -> list[list[Any]]:
        rows = []
        for row in self.layers:
            rows.append([row.name, "x".join(map(str, row.shape)), row.kind, f"{row.nonzero_pct:.1f}",
                         row.dense, row.pruned, row.quantized, row.coded, f"{row.bits_per_weight():.2f}",
                         f"{row.value_bits:.2f}", f"{row.index_bits:.2f}", f"{row.ratio():.1f}"])
        for label, size in ((f"other tensors ({self.raw_tensors})", self.raw_bytes),
                            ("file header", self.container_bytes)):
            rows.append([label, "", "raw", "", size, size, size, size, "", "", "", "1.0"])
        total_w = sum(row.numel for row in self.layers)
        kept = sum(row.kept for row in self.layers)
        rows.append(["TOTAL", "", "", f"{100.0 * kept / total_w:.1f}" if total_w else "",
                     *[self.stage_bytes(s) for s in STAGES],
                     f"{8.0 * self.total_bytes / total_w:.2f}" if total_w else "", "", "",
                     f"{self.compression_ratio:.1f}"])
        return rows

    _HEADER = ["layer", "shape", "kind", "nonzero%", "dense B", "pruned B", "quantized B", "coded B",
               "bits/w", "value bits", "index bits", "ratio"]

    def to_table(self, original_bytes: Optional[int] = None) -> str:
        """A fixed-width text table, one row per layer, like Deep Compression's.

        ``original_bytes`` (the original model's dense .sqz size) is what the
        last line's "x smaller" is measured against; without it, this model's own
        dense size (which after a Fire substitution is already smaller than the original's).
        """
        rows = [self._HEADER] + [[str(c) for c in r] for r in self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
        lines = []
        for k, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if k == 0 or k == len(rows) - 2:
                lines.append("-" * len(lines[-1]))
        if original_bytes:
            lines.append(f"file size {self.total_bytes} bytes = {original_bytes / self.total_bytes:.1f}x smaller "
                         f"than the original model's {original_bytes} dense bytes")
        else:
            lines.append(f"file size {self.total_bytes} bytes = {self.compression_ratio:.1f}x smaller than "
                         f"{self.dense_bytes} dense bytes")
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self._HEADER)
        writer.writerows(self._rows())
        return buf.getvalue()


def _table_bytes(enc: WeightEncoding) -> int:
    if enc.kind == "codebook":
        return int(np.asarray(enc.codebook).nbytes)
    if enc.kind == "affine":
        return int(np.asarray(enc.scale).nbytes + np.asarray(enc.zero_point).nbytes)
    return 0


def layer_size(name: str, enc: WeightEncoding, streams: LayerStreams) -> LayerSize:
    """Stage sizes of one tensor, given what the codec actually wrote for it."""
    numel, kept = enc.numel, enc.kept
    dense = 4 * numel
    positions = 0 if enc.mask is None else best_fixed_width(np.asarray(enc.mask).reshape(-1))[1]
    pruned = dense if enc.mask is None else 4 * kept + positions
    if enc.kind == "float32":
        values = 4 * kept
    elif enc.kind == "float16":
        values = 2 * kept
    elif enc.kind == "custom":
        values = streams.nbytes() - streams.nbytes("positions")
    else:
        values = packed_size(kept, enc.bits) + _table_bytes(enc)
    return LayerSize(name=name, shape=tuple(int(s) for s in enc.shape), kind=enc.kind, numel=numel, kept=kept,
                     bits=int(enc.bits), entropy_coded=bool(enc.entropy_coded), dense=dense, pruned=pruned,
                     quantized=values + positions, coded=streams.nbytes(),
                     value_bytes=streams.nbytes() - streams.nbytes("positions"),
                     index_bytes=streams.nbytes("positions"))


def size_report(cm: CompressedModel, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None, *, registry: Optional[MethodRegistry] = None) -> SizeReport:
    """Encode ``cm`` and account for every byte of the result, stage by stage.

    ``registry`` is needed when ``cm`` holds custom (plugin) encodings.
    """
    data, layers, raw_bytes = encode_container(cm, progress, cancel, registry=registry)
    rows = [layer_size(name, cm.encodings[name], streams) for name, streams in layers.items()]
    raw_count = len(cm.handle.module.state_dict()) - len(layers)
    container = len(data) - sum(r.coded for r in rows) - raw_bytes
    return SizeReport(layers=rows, raw_tensors=raw_count, raw_bytes=raw_bytes,
                      container_bytes=container, total_bytes=len(data), file_bytes=data)
