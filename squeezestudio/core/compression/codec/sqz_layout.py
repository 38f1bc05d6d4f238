"""Where every byte stream and raw tensor lies inside a .sqz file's two data tensors.

Why two tensors: a safetensors header spends about 80 bytes of JSON per
tensor, which on a small pruned model was a third of the file. So all of a
model's encoded streams are concatenated into one ``uint8`` tensor
(``streams``) and all unencoded tensors (biases, BatchNorm statistics) into
another (``raw``); the SqueezeStudio JSON says where each one lies:

- a layer's ``"streams": {part: [offset, length]}`` (byte ranges of ``streams``);
- a raw tensor's ``{"dtype", "shape", "offset"}`` (its length follows from
  dtype and shape; the offset is a multiple of the dtype's size, so the bytes
  are aligned in the file as a typed tensor would be).

Every range is checked before it is used: in bounds, no overlaps, the
streams tile their tensor exactly, and raw tensors leave only zero alignment
padding, so no byte of the file is undeclared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from squeezestudio.core.compression.codec.json_checks import as_dict, as_int, as_shape, as_str, field, numel
from squeezestudio.core.errors import CodecError

STREAMS = "streams"
RAW = "raw"
TENSORS = (RAW, STREAMS)
RAW_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
              torch.float64: "float64", torch.int64: "int64", torch.int32: "int32",
              torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}
_MAX_SIZE = 2 ** 62

Spans = dict[str, dict[str, tuple[int, int]]]


def _as_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


# ----------------------------------------------------------------------------- writing

def pack_streams(parts: dict[str, dict[str, bytes]]) -> tuple[bytes, dict[str, dict[str, list[int]]]]:
    """(concatenated bytes, {param: {part: [offset, length]}}), in the given order."""
    chunks: list[bytes] = []
    spans: dict[str, dict[str, list[int]]] = {}
    offset = 0
    for param, streams in parts.items():
        spans[param] = {}
        for part, data in streams.items():
            spans[param][part] = [offset, len(data)]
            chunks.append(data)
            offset += len(data)
    return b"".join(chunks), spans


def pack_raw(tensors: dict[str, torch.Tensor]) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """(concatenated bytes, {name: {"dtype", "shape", "offset"}}) with every tensor aligned to its dtype.

    Wider types go first, so the alignment never needs padding; the JSON keeps
    the given order.
    """
    for name, t in tensors.items():
        if t.dtype not in RAW_DTYPES:
            raise CodecError(f"{name} has type {t.dtype}, which a .sqz file cannot store")
    order = sorted(tensors, key=lambda n: -tensors[n].element_size())
    offsets: dict[str, int] = {}
    chunks: list[bytes] = []
    offset = 0
    for name in order:
        t = tensors[name]
        pad = -offset % t.element_size()
        chunks.append(b"\0" * pad)
        offset += pad
        offsets[name] = offset
        data = _as_bytes(t)
        chunks.append(data)
        offset += len(data)
    meta = {name: {"dtype": RAW_DTYPES[t.dtype], "shape": [int(s) for s in t.shape], "offset": offsets[name]}
            for name, t in tensors.items()}
    return b"".join(chunks), meta


# ----------------------------------------------------------------------------- reading

def stream_spans(layers_meta: dict[str, Any], size: int) -> Spans:
    """Every layer's validated stream ranges; together they must tile ``size`` bytes exactly."""
    spans: Spans = {}
    ranges: list[tuple[int, int, str]] = []
    for param, meta in layers_meta.items():
        where = f"layer {param} streams"
        table = as_dict(field(meta, STREAMS, f"layer {param}"), where)
        spans[param] = {}
        for part, span in table.items():
            if not isinstance(span, list) or len(span) != 2:
                raise CodecError(f"the .sqz header's {where} must give [offset, length] for {part!r}")
            offset = as_int(span[0], f"{where} offset of {part}", 0, size)
            length = as_int(span[1], f"{where} length of {part}", 0, size - offset)
            spans[param][part] = (offset, length)
            ranges.append((offset, offset + length, f"{param}:{part}"))
    end = 0
    for start, stop, label in sorted(ranges):
        if start != end:
            problem = "overlaps another" if start < end else "leaves undeclared bytes before it"
            raise CodecError(f"the .sqz file's stream {label} {problem}; the file is corrupt")
        end = stop
    if end != size:
        raise CodecError("the .sqz file's streams tensor has undeclared bytes at its end; the file is corrupt")
    return spans


def unpack_raw(raw_meta: dict[str, Any], blob: bytes, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The raw tensors, checked against the types and shapes the rebuilt model expects."""
    names = {v: k for k, v in RAW_DTYPES.items()}
    placed: list[tuple[int, int, int, str]] = []
    out: dict[str, torch.Tensor] = {}
    for name, meta in raw_meta.items():
        where = f"raw tensor {name}"
        target = expected[name]
        dtype = names.get(as_str(field(meta, "dtype", where), f"{where} dtype"))
        shape = as_shape(field(meta, "shape", where), f"{where} shape")
        if dtype != target.dtype or shape != tuple(target.shape):
            raise CodecError(f"the .sqz file's tensor {name} has the wrong type or shape for the model")
        itemsize = target.element_size()
        offset = as_int(field(meta, "offset", where), f"{where} offset", 0, _MAX_SIZE)
        nbytes = numel(shape) * itemsize
        if offset % itemsize or offset + nbytes > len(blob):
            raise CodecError(f"the .sqz file's tensor {name} lies outside its data or is misaligned")
        placed.append((offset, offset + nbytes, itemsize, name))
        data = bytearray(blob[offset:offset + nbytes])
        if dtype == torch.bool and data and int(np.frombuffer(data, dtype=np.uint8).max()) > 1:
            raise CodecError(f"the .sqz file's boolean tensor {name} holds a value other than 0 or 1")
        flat = torch.frombuffer(data, dtype=dtype) if data else torch.zeros(0, dtype=dtype)
        if flat.is_floating_point() and flat.numel() and not bool(torch.isfinite(flat).all()):
            raise CodecError(f"the .sqz file's tensor {name} holds NaN or infinite values; the file is damaged "
                             "or was not written by SqueezeStudio")
        out[name] = flat.reshape(shape)
    end = 0
    for start, stop, itemsize, name in sorted(placed):
        if not 0 <= start - end < itemsize or any(blob[end:start]):
            raise CodecError(f"the .sqz file's tensor {name} overlaps another or follows undeclared bytes")
        end = stop
    if end != len(blob):
        raise CodecError("the .sqz file's raw tensor data has undeclared bytes at its end; the file is corrupt")
    return out


def data_tensors(tensors: dict[str, torch.Tensor]) -> tuple[bytes, bytes]:
    """(streams bytes, raw bytes) of a loaded container that must hold exactly those two byte tensors."""
    for key in sorted(set(tensors) - set(TENSORS)):
        raise CodecError(f"the .sqz file holds an undeclared tensor {key}")
    for key in TENSORS:
        t = tensors.get(key)
        if t is None or t.dtype != torch.uint8 or t.dim() != 1:
            raise CodecError(f"the .sqz file lacks its {key} tensor of bytes (a flat uint8 tensor)")
    return tensors[STREAMS].numpy().tobytes(), tensors[RAW].numpy().tobytes()
