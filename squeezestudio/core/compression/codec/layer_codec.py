"""One weight tensor's :class:`WeightEncoding` <-> byte streams plus a JSON description.

A layer becomes a handful of named byte streams ("parts"):

- ``positions``: the kept positions as bounded-width gaps (see
  :mod:`.sparse_index`), fixed width or Huffman coded; only for masked tensors;
- ``values``: raw little-endian float32/float16 kept values (float kinds);
- ``symbols``: codebook/affine indices at ``bits`` bits, or Huffman coded;

When an encoding asks for entropy coding, each of its streams is Huffman
coded unless the fixed-width form is smaller (tiny tensors, where the code
table costs more than it saves); the JSON says which was used per stream, so
entropy coding never makes a file larger.
- ``codebook`` / ``scale`` / ``zero_point`` / ``custom.<key>``: small arrays,
  raw little-endian with dtype and shape in the JSON.

Decoding checks every declared number against the stream it describes and
against the shape the rebuilt model expects, so lying headers fail with a
:class:`CodecError` before any large allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from squeezestudio.core.compression.codec import entropy
from squeezestudio.core.compression.codec.bitpack import pack_bits, packed_size, unpack_bits
from squeezestudio.core.compression.codec.json_checks import (
    ARRAY_DTYPES,
    INT_DTYPES,
    as_bool,
    as_dict,
    as_dtype,
    as_int,
    as_shape,
    as_str,
    field as get_field,
    numel,
)
from squeezestudio.core.compression.codec.sparse_index import (
    MAX_GAP_WIDTH,
    best_coded_width_of_gaps,
    best_fixed_width_of_gaps,
    mask_from_gaps,
    mask_gaps,
    symbols_from_gaps,
)
from squeezestudio.core.compression.encoding import CustomPayload, WeightEncoding
from squeezestudio.core.errors import CodecError

KINDS = ("float32", "float16", "codebook", "affine", "custom")
CODINGS = ("fixed", "huffman")
_FLOAT_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}


@dataclass
class LayerStreams:
    """A layer as stored: its JSON description and its byte streams by part name."""

    meta: dict[str, Any]
    streams: dict[str, bytes] = field(default_factory=dict)

    def nbytes(self, *parts: str) -> int:
        """Stored bytes of the given parts (all parts when none are named)."""
        names = parts or tuple(self.streams)
        return sum(len(self.streams[p]) for p in names if p in self.streams)


# ----------------------------------------------------------------------------- encoding

def encode_layer(name: str, enc: WeightEncoding) -> LayerStreams:
    """Turn one encoding into streams, choosing the smallest gap width for its mask."""
    check_encoding(name, enc)
    out = LayerStreams(meta={"kind": enc.kind, "shape": [int(s) for s in enc.shape],
                             "bits": int(enc.bits), "entropy_coded": bool(enc.entropy_coded),
                             "kept": int(enc.kept), "positions": None})
    if enc.mask is not None:
        # Only the stream that is kept gets built: the fixed-width size is known in advance.
        distances = mask_gaps(enc.mask)
        width, fixed_size = best_fixed_width_of_gaps(distances)
        coding, data, gaps = "fixed", None, None
        if enc.entropy_coded:
            coded_width = best_coded_width_of_gaps(distances)
            coded_gaps = symbols_from_gaps(distances, coded_width)
            coded = entropy.encode(coded_gaps)
            if len(coded) < fixed_size:
                coding, data, width, gaps = "huffman", coded, coded_width, coded_gaps
        if data is None:
            gaps = symbols_from_gaps(distances, width)
            data = pack_bits(gaps, width)
        assert gaps is not None
        out.streams["positions"] = data
        out.meta["positions"] = {"width": width, "count": int(gaps.size), "coding": coding}
    if enc.kind in _FLOAT_DTYPES:
        assert enc.values is not None
        out.streams["values"] = np.asarray(enc.values).reshape(-1).astype(_FLOAT_DTYPES[enc.kind]).tobytes()
    elif enc.kind in ("codebook", "affine"):
        assert enc.symbols is not None
        symbols = np.asarray(enc.symbols).reshape(-1)
        coding, data = "fixed", None
        if enc.entropy_coded:
            coded = entropy.encode(symbols)
            if len(coded) < packed_size(symbols.size, enc.bits):
                coding, data = "huffman", coded
        if data is None:
            data = pack_bits(symbols, enc.bits)
        out.streams["symbols"] = data
        out.meta["symbols"] = {"dtype": symbols.dtype.name, "coding": coding}
        tables = ("codebook",) if enc.kind == "codebook" else ("scale", "zero_point")
        for part in tables:
            out.meta[part] = _put_array(out, part, getattr(enc, part), name)
    else:
        assert enc.custom is not None
        arrays = {key: _put_array(out, f"custom.{key}", arr, name) for key, arr in enc.custom.arrays.items()}
        out.meta["custom"] = {"method": enc.custom.method, "meta": enc.custom.meta, "arrays": arrays}
    return out


def _put_array(out: LayerStreams, part: str, arr: Any, name: str) -> dict[str, Any]:
    a = np.asarray(arr)
    if a.dtype.name not in ARRAY_DTYPES:
        raise CodecError(f"{name}: the {part} array has type {a.dtype}, which a .sqz file cannot store")
    out.streams[part] = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    return {"dtype": a.dtype.name, "shape": [int(s) for s in a.shape]}


def check_encoding(name: str, enc: WeightEncoding) -> None:
    """Refuse an inconsistent encoding before writing anything (it would not round-trip)."""
    if enc.kind not in KINDS:
        raise CodecError(f"{name}: unknown encoding kind {enc.kind!r}")
    n = numel(tuple(enc.shape))
    if enc.mask is not None and np.asarray(enc.mask).size != n:
        raise CodecError(f"{name}: the mask has {np.asarray(enc.mask).size} entries for {n} weights")
    kept = enc.kept
    if enc.kind in _FLOAT_DTYPES:
        if enc.values is None or np.asarray(enc.values).size != kept:
            raise CodecError(f"{name}: a {enc.kind} encoding needs one value per kept weight ({kept})")
        return
    if enc.kind == "custom":
        if enc.custom is None:
            raise CodecError(f"{name}: a custom encoding has no payload")
        return
    if not 1 <= int(enc.bits) <= 32:
        raise CodecError(f"{name}: {enc.bits} bits per symbol is not supported; use 1 to 32")
    symbols = None if enc.symbols is None else np.asarray(enc.symbols)
    if symbols is None or symbols.size != kept or (symbols.size and symbols.dtype.kind not in "ui"):
        raise CodecError(f"{name}: a {enc.kind} encoding needs one integer symbol per kept weight ({kept})")
    if symbols.dtype.name not in INT_DTYPES:
        raise CodecError(f"{name}: symbols of type {symbols.dtype} cannot be stored")
    if symbols.size and (int(symbols.min()) < 0 or int(symbols.max()) >= (1 << int(enc.bits))):
        raise CodecError(f"{name}: a symbol does not fit in {enc.bits} bits")
    channels = int(enc.shape[0]) if enc.shape else 1
    if enc.kind == "codebook":
        cb = None if enc.codebook is None else np.asarray(enc.codebook)
        if cb is None or cb.ndim not in (1, 2) or cb.shape[-1] == 0 or (cb.ndim == 2 and cb.shape[0] != channels):
            raise CodecError(f"{name}: the codebook must have shape (K,) or ({channels}, K)")
        if symbols.size and int(symbols.max()) >= cb.shape[-1]:
            raise CodecError(f"{name}: a symbol indexes past the codebook's {cb.shape[-1]} entries")
    else:
        for part in ("scale", "zero_point"):
            arr = getattr(enc, part)
            if arr is None or np.asarray(arr).shape not in ((1,), (channels,)):
                raise CodecError(f"{name}: the affine {part} must have shape (1,) or ({channels},)")


# ----------------------------------------------------------------------------- decoding

def decode_layer(name: str, meta: Any, take: Callable[[str], bytes],
                 expected_shape: tuple[int, ...]) -> WeightEncoding:
    """Rebuild a layer's encoding from its JSON and streams (``take(part) -> bytes``)."""
    where = f"layer {name}"
    kind = as_str(get_field(meta, "kind", where), f"{where} kind", KINDS)
    shape = as_shape(get_field(meta, "shape", where), f"{where} shape")
    if shape != tuple(expected_shape):
        raise CodecError(f"{where} has shape {list(shape)} but the model expects {list(expected_shape)}")
    n = numel(shape)
    bits = as_int(get_field(meta, "bits", where), f"{where} bits", 1, 32)
    coded = as_bool(get_field(meta, "entropy_coded", where), f"{where} entropy_coded")
    kept = as_int(get_field(meta, "kept", where), f"{where} kept", 0, n)
    mask = _decode_positions(where, get_field(meta, "positions", where), take, n, kept)
    if mask is None and kept != n:
        raise CodecError(f"{where} keeps {kept} of {n} weights but stores no positions")
    enc = WeightEncoding(shape=shape, kind=kind, mask=mask, bits=bits, entropy_coded=coded)  # type: ignore[arg-type]
    if kind in _FLOAT_DTYPES:
        dtype = _FLOAT_DTYPES[kind]
        data = take("values")
        if len(data) != kept * dtype.itemsize:
            raise CodecError(f"{where} stores {len(data)} value bytes for {kept} {kind} values")
        enc.values = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
        _require_finite(where, "values", enc.values)
        return enc
    if kind == "custom":
        enc.custom = _decode_custom(where, get_field(meta, "custom", where), take)
        return enc
    enc.symbols = _decode_symbols(where, get_field(meta, "symbols", where), take, kept, bits)
    channels = int(shape[0]) if shape else 1
    if kind == "codebook":
        cb = _take_array(where, "codebook", get_field(meta, "codebook", where), take)
        if cb.ndim not in (1, 2) or cb.shape[-1] == 0 or (cb.ndim == 2 and cb.shape[0] != channels):
            raise CodecError(f"{where} has a codebook of shape {list(cb.shape)}; expected (K,) or ({channels}, K)")
        if cb.dtype.kind != "f":
            raise CodecError(f"{where} has a codebook of type {cb.dtype}; a float type is needed")
        if enc.symbols.size and int(enc.symbols.max()) >= cb.shape[-1]:
            raise CodecError(f"{where} has a symbol past the end of its {cb.shape[-1]}-entry codebook")
        _require_finite(where, "codebook", cb)
        enc.codebook = cb
        return enc
    enc.scale = _take_array(where, "scale", get_field(meta, "scale", where), take)
    enc.zero_point = _take_array(where, "zero_point", get_field(meta, "zero_point", where), take)
    for part, arr in (("scale", enc.scale), ("zero_point", enc.zero_point)):
        if arr.shape not in ((1,), (channels,)) or arr.dtype == np.bool_:
            raise CodecError(f"{where} has an affine {part} of shape {list(arr.shape)}; expected (1,) or ({channels},)")
        _require_finite(where, part, arr)
    return enc


def _require_finite(where: str, part: str, arr: np.ndarray) -> None:
    """A .sqz file is refused when its stored numbers hold NaN or Inf (a checkpoint only gets a warning)."""
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise CodecError(f"{where} has {bad} NaN or infinite value(s) in its {part}; the file is damaged "
                         "or was not written by SqueezeStudio")


def _decode_positions(where: str, spec: Any, take: Callable[[str], bytes],
                      n: int, kept: int) -> np.ndarray | None:
    if spec is None:
        return None
    width = as_int(get_field(spec, "width", f"{where} positions"), f"{where} gap width", 1, MAX_GAP_WIDTH)
    count = as_int(get_field(spec, "count", f"{where} positions"), f"{where} position count", 0, n)
    coding = as_str(get_field(spec, "coding", f"{where} positions"), f"{where} position coding", CODINGS)
    data = take("positions")
    gaps = entropy.decode(data, count) if coding == "huffman" else unpack_bits(data, width, count)
    return mask_from_gaps(gaps, width, n, kept)


def _decode_symbols(where: str, spec: Any, take: Callable[[str], bytes], kept: int, bits: int) -> np.ndarray:
    dtype = as_dtype(get_field(spec, "dtype", f"{where} symbols"), f"{where} symbol type", INT_DTYPES)
    coding = as_str(get_field(spec, "coding", f"{where} symbols"), f"{where} symbol coding", CODINGS)
    data = take("symbols")
    symbols = entropy.decode(data, kept) if coding == "huffman" else unpack_bits(data, bits, kept)
    if symbols.size:
        top = int(symbols.max())
        if top >= (1 << bits) or top > int(np.iinfo(dtype).max):
            raise CodecError(f"{where} has a symbol ({top}) wider than its {bits} bits or its type {dtype}")
    return symbols.astype(dtype)


def _decode_custom(where: str, spec: Any, take: Callable[[str], bytes]) -> CustomPayload:
    method = as_str(get_field(spec, "method", f"{where} custom"), f"{where} custom method")
    meta = as_dict(get_field(spec, "meta", f"{where} custom"), f"{where} custom meta")
    specs = as_dict(get_field(spec, "arrays", f"{where} custom"), f"{where} custom arrays")
    arrays = {key: _take_array(where, f"custom.{key}", s, take) for key, s in specs.items()}
    return CustomPayload(method=method, arrays=arrays, meta=meta)


def _take_array(where: str, part: str, spec: Any, take: Callable[[str], bytes]) -> np.ndarray:
    dtype = as_dtype(get_field(spec, "dtype", f"{where} {part}"), f"{where} {part} type")
    shape = as_shape(get_field(spec, "shape", f"{where} {part}"), f"{where} {part} shape")
    data = take(part)
    if len(data) != numel(shape) * dtype.itemsize:
        raise CodecError(f"{where} stores {len(data)} bytes for its {part} of shape {list(shape)} ({dtype})")
    if dtype == np.bool_:
        return (np.frombuffer(data, dtype=np.uint8) != 0).reshape(shape)
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
