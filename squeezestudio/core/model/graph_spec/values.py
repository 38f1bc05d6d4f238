"""Encode node arguments as JSON and decode them back, without ``eval``.

A graph node's arguments mix references to earlier values with literals
(ints, tuples, slices, dtypes). JSON has no tuples, slices or dtypes, so
they are tagged dicts; a reference is ``{"ref": name}``. Anything else is
refused, which is what keeps a description free of arbitrary objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    "uint16": torch.uint16, "uint32": torch.uint32, "uint64": torch.uint64,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


class ValueEncodingError(ValueError):
    """A value cannot be written to (or read from) a graph description."""


@dataclass(frozen=True)
class Ref:
    """A reference to the output of an earlier node, resolved at run time."""

    name: str


def encode_value(value: Any, ref_name: Callable[[Any], str | None] = lambda v: None) -> Any:
    """JSON form of ``value``; ``ref_name`` maps graph values (e.g. fx nodes) to their names."""
    name = ref_name(value)
    if name is not None:
        return {"ref": name}
    if isinstance(value, Ref):
        return {"ref": value.name}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, tuple):  # torch.Size is a tuple too
        return {"tuple": [encode_value(v, ref_name) for v in value]}
    if isinstance(value, list):
        return [encode_value(v, ref_name) for v in value]
    if isinstance(value, slice):
        return {"slice": [encode_value(v, ref_name) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.dtype) and value in DTYPE_NAMES:
        return {"dtype": DTYPE_NAMES[value]}
    raise ValueEncodingError(f"cannot describe a value of type {type(value).__name__}")


def decode_value(data: Any) -> Any:
    """Inverse of :func:`encode_value`; references become :class:`Ref` objects."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode_value(v) for v in data]
    if isinstance(data, dict) and len(data) == 1:
        (tag, inner), = data.items()
        if tag == "ref" and isinstance(inner, str):
            return Ref(inner)
        if tag == "tuple" and isinstance(inner, list):
            return tuple(decode_value(v) for v in inner)
        if tag == "slice" and isinstance(inner, list) and len(inner) == 3:
            return slice(*(decode_value(v) for v in inner))
        if tag == "ellipsis":
            return Ellipsis
        if tag == "dtype" and inner in DTYPES:
            return DTYPES[inner]
        if tag == "float" and inner in ("inf", "-inf", "nan"):
            return float(inner)
    raise ValueEncodingError(f"unreadable value in graph description: {str(data)[:80]}")


def refs_in(value: Any) -> list[str]:
    """Names of all references inside a decoded value (to check the graph is well formed)."""
    if isinstance(value, Ref):
        return [value.name]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in refs_in(v)]
    if isinstance(value, slice):
        return refs_in([value.start, value.stop, value.step])
    return []


def resolve(value: Any, env: dict[str, Any]) -> Any:
    """Replace every :class:`Ref` in a decoded value by its computed tensor."""
    if isinstance(value, Ref):
        return env[value.name]
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve(v, env) for v in value)
    if isinstance(value, slice):
        return slice(resolve(value.start, env), resolve(value.stop, env), resolve(value.step, env))
    return value
