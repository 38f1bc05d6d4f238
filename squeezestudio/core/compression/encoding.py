"""How one compressed weight tensor is represented, independent of the file format.

Methods (pruning, clustering, quantization, plugins) produce a
:class:`WeightEncoding` per weight tensor; the .sqz codec stores exactly that,
and the size accounting measures it. The model's weight is always set to
``encoding.decode()``, so decoding a .sqz file reproduces the compressed
model's weights bit for bit.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

EncodingKind = Literal["float32", "float16", "codebook", "affine", "custom"]

# Flat kept positions of recently used masks, by mask identity. One mask object
# is decoded several times on the way to a file (pruning, clustering, the
# codec's consistency check, the sparse-index coder), and finding its True
# positions costs more than the scatter itself. Entries die with their mask.
_POSITIONS: dict[int, tuple["weakref.ref[np.ndarray]", np.ndarray]] = {}
_POSITIONS_LOCK = threading.Lock()


def kept_positions(mask: np.ndarray) -> np.ndarray:
    """Flat indices (``intp``, ascending) of the True entries of a boolean mask, cached per mask.

    Masks are treated as immutable once built (every method makes a new one).
    As a cheap guard against an in-place edit, a cached entry is used only
    while the mask still has that many True entries.
    """
    m = np.asarray(mask)
    if m is not mask or m.dtype != np.bool_:
        return np.flatnonzero(m)
    key = id(mask)
    with _POSITIONS_LOCK:
        entry = _POSITIONS.get(key)
    if entry is not None and entry[0]() is mask and entry[1].size == np.count_nonzero(mask):
        return entry[1]
    positions = np.flatnonzero(mask)
    positions.flags.writeable = False

    def forget(_ref: object, key: int = key) -> None:
        with _POSITIONS_LOCK:
            if _POSITIONS.get(key, (None,))[0] is _ref:
                del _POSITIONS[key]

    try:
        ref = weakref.ref(mask, forget)
    except TypeError:  # an array type without weak references: no caching
        return positions
    with _POSITIONS_LOCK:
        _POSITIONS[key] = (ref, positions)
    return positions


@dataclass
class CustomPayload:
    """Storage for a plugin method whose parameters are not one value per weight.

    ``method`` names the registered method whose ``decode_custom`` rebuilds the
    dense weight; ``arrays`` are stored raw, ``meta`` as JSON.
    """

    method: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class WeightEncoding:
    """One weight tensor as stored.

    - ``mask``: flat boolean array (C-order, ``prod(shape)`` long) of kept
      positions, or ``None`` for dense storage.
    - ``kind == "float32" | "float16"``: ``values`` holds the kept values in
      flat order, in that dtype.
    - ``kind == "codebook"``: ``symbols`` (unsigned ints < 2**bits) index
      ``codebook``, shape ``(K,)`` shared by the tensor or ``(C, K)`` with one
      row per output channel (axis 0).
    - ``kind == "affine"``: value = ``(symbol - zero_point[c]) * scale[c]``
      computed in float32, with ``scale``/``zero_point`` of shape ``(1,)``
      (per tensor) or ``(C,)`` (per output channel, axis 0).
    - ``kind == "custom"``: ``custom`` holds a plugin's payload.
    - ``entropy_coded``: symbols and sparse positions are Huffman/rANS coded
      in the file rather than stored at fixed width.
    """

    shape: tuple[int, ...]
    kind: EncodingKind = "float32"
    mask: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None
    symbols: Optional[np.ndarray] = None
    bits: int = 32
    codebook: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    zero_point: Optional[np.ndarray] = None
    entropy_coded: bool = False
    custom: Optional[CustomPayload] = None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def stored_bits(self) -> int:
        """Bits stored per kept weight before entropy coding: 32 dense, 16 half, else ``bits``."""
        return {"float32": 32, "float16": 16}.get(self.kind, int(self.bits))

    @property
    def kept(self) -> int:
        """Number of stored (non-pruned) positions."""
        return self.numel if self.mask is None else int(np.count_nonzero(self.mask))

    @classmethod
    def dense(cls, weight: np.ndarray) -> "WeightEncoding":
        """An uncompressed float32 tensor."""
        w = np.ascontiguousarray(weight, dtype=np.float32)
        return cls(shape=tuple(w.shape), kind="float32", values=w.reshape(-1).copy(), bits=32)

    def channel_of_kept(self) -> np.ndarray:
        """Output-channel index (axis 0) of every kept position, for per-channel tables."""
        c = self.shape[0] if self.shape else 1
        per = max(self.numel // max(c, 1), 1)
        if self.mask is None:
            return np.repeat(np.arange(c, dtype=np.int64), per)
        return kept_positions(self.mask) // per

    def kept_values(self) -> np.ndarray:
        """The float32 value at every kept position, in flat order."""
        if self.kind in ("float32", "float16"):
            assert self.values is not None
            return self.values.astype(np.float32)
        if self.kind == "codebook":
            assert self.symbols is not None and self.codebook is not None
            cb = np.asarray(self.codebook, dtype=np.float32)
            sym = np.asarray(self.symbols)
            if cb.ndim == 1:
                return cb.take(sym.astype(np.intp, copy=False))
            return cb.reshape(-1).take(self.channel_of_kept() * cb.shape[1] + sym)
        if self.kind == "affine":
            assert self.symbols is not None and self.scale is not None and self.zero_point is not None
            scale = self.scale.astype(np.float32)
            zp = self.zero_point.astype(np.float32)
            if scale.shape[0] == 1:
                return (self.symbols.astype(np.float32) - zp[0]) * scale[0]
            ch = self.channel_of_kept()
            return (self.symbols.astype(np.float32) - zp[ch]) * scale[ch]
        raise ValueError(f"kept_values is not defined for kind {self.kind!r}")

    def decode(self, custom_decoder: Any = None) -> np.ndarray:
        """The dense float32 weight this encoding stands for.

        ``custom_decoder(payload, shape) -> np.ndarray`` is needed only for
        ``kind == "custom"`` (the method registry supplies it).
        """
        if self.kind == "custom":
            if custom_decoder is None or self.custom is None:
                raise ValueError("a custom encoding needs its method's decoder")
            dense = np.asarray(custom_decoder(self.custom, self.shape), dtype=np.float32)
            if self.mask is not None:
                dense = dense.reshape(-1) * self.mask
            return dense.reshape(self.shape)
        kept = self.kept_values()
        if self.mask is None:
            return kept.reshape(self.shape)
        out = np.zeros(self.numel, dtype=np.float32)
        out[kept_positions(self.mask)] = kept
        return out.reshape(self.shape)
