"""Typed reads from the untrusted JSON header of a .sqz file.

Every field is read through these helpers so a missing key, a wrong type or
an out-of-range number becomes a one-sentence :class:`CodecError` naming the
field, instead of a ``KeyError``/``TypeError`` deep inside the decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from squeezestudio.core.errors import CodecError

# Array element types a .sqz file may declare (little-endian on disk).
ARRAY_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                "uint8", "uint16", "uint32", "uint64", "bool")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def field(obj: Any, key: str, where: str) -> Any:
    """``obj[key]`` of a JSON object, or a CodecError naming what is missing."""
    if not isinstance(obj, dict):
        raise CodecError(f"the .sqz header's {where} is not a JSON object")
    if key not in obj:
        raise CodecError(f"the .sqz header's {where} has no '{key}' field")
    return obj[key]


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(f"the .sqz header's {where} is not a JSON object")
    return value


def as_int(value: Any, where: str, lo: int = 0, hi: int = 2 ** 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CodecError(f"the .sqz header's {where} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise CodecError(f"the .sqz header's {where} must be true or false, not {value!r}")
    return value


def as_str(value: Any, where: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or (choices is not None and value not in choices):
        allowed = f" (one of {', '.join(choices)})" if choices else ""
        raise CodecError(f"the .sqz header's {where} must be a string{allowed}, not {value!r}")
    return value


def as_shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise CodecError(f"the .sqz header's {where} must be a list of at most 8 sizes")
    return tuple(as_int(v, where, 0, 2 ** 40) for v in value)


def as_dtype(value: Any, where: str, allowed: tuple[str, ...] = ARRAY_DTYPES) -> np.dtype:
    return np.dtype(as_str(value, where, allowed))


def numel(shape: tuple[int, ...]) -> int:
    """Element count of a shape (Python ints, so no overflow)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n
