"""Constants at import: ONNX element types, Constant nodes, and folding under a budget.

Exporters leave arithmetic on constants in the graph (transposed weights,
shape computations ending in ``ConstantOfShape``); :func:`fold_node`
computes such a node once, with onnx's reference evaluator, so the
converted model holds the result as a constant. Two rules keep a small
hostile file from doing harm here: a folded tensor may not exceed
:data:`MAX_FOLDED_ELEMENTS` (checked *before* evaluating the ops that
create large tensors from small inputs, and after every other op), and
control flow (``Loop``/``Scan``/``If``, any node carrying a subgraph) and
random ops are never evaluated.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import onnx
import torch
from onnx import TensorProto

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node

MAX_FOLDED_ELEMENTS = 2**26  # one folded tensor (256 MiB of float32)
MAX_TOTAL_FOLDED_ELEMENTS = 2**28  # all folded tensors of one graph together

# ONNX element types a converted model computes with, and their torch dtypes.
TORCH_DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64, TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16, TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
    TensorProto.INT16: torch.int16, TensorProto.INT8: torch.int8, TensorProto.UINT8: torch.uint8,
    TensorProto.BOOL: torch.bool,
}
# Unsigned inputs are computed with as the next signed type that holds them; outputs declared
# unsigned are cast back.
WIDENED_INPUTS: dict[int, torch.dtype] = {TensorProto.UINT16: torch.int32, TensorProto.UINT32: torch.int64,
                                          TensorProto.UINT64: torch.int64}
UNSIGNED_OUTPUTS: dict[int, torch.dtype] = {TensorProto.UINT16: torch.uint16, TensorProto.UINT32: torch.uint32,
                                            TensorProto.UINT64: torch.uint64}
# Unsigned constants torch cannot compute with are widened to the next signed type that holds them.
_WIDENED = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64, np.dtype(np.uint64): np.int64}
_NUMPY_OK = {np.dtype(t) for t in (np.float32, np.float64, np.float16, np.int64, np.int32, np.int16,
                                   np.int8, np.uint8, np.bool_)}
_NEVER_EVALUATED = {"Loop", "Scan", "If", "SequenceMap", "RandomNormal", "RandomNormalLike", "RandomUniform",
                    "RandomUniformLike", "Bernoulli", "Multinomial"}


def element_type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type).lower() if elem_type in TensorProto.DataType.values() else str(elem_type)


def supported_array(value: np.ndarray, what: str) -> np.ndarray:
    """``value`` in a dtype torch computes with: unsigned 16/32/64-bit widened, others refused."""
    value = np.asarray(value)
    if value.dtype in _NUMPY_OK:
        return value
    if value.dtype in _WIDENED:
        if value.dtype == np.uint64 and value.size and int(value.max()) > np.iinfo(np.int64).max:
            raise UnsupportedOperatorError(f"{what} holds uint64 values above the int64 range, "
                                           "which are not supported")
        return value.astype(_WIDENED[value.dtype])
    raise UnsupportedOperatorError(f"{what} is of type {value.dtype}, which is not supported")


def constant_value(node: onnx.NodeProto) -> np.ndarray:
    """The tensor a ``Constant`` node holds (every attribute form except strings and sparse)."""
    a = attributes(node)
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            value = np.asarray(a[key]) if dtype is None else np.asarray(a[key], dtype=dtype)
            return supported_array(value, describe_node(node))
    kinds = ", ".join(sorted(a)) or "nothing"
    raise UnsupportedOperatorError(f"{describe_node(node)} holds {kinds}; only numeric tensor constants "
                                   "are supported")


def _broadcast_elements(*shapes: tuple[int, ...]) -> int:
    try:
        return math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        return 0


def _ints_of(value: Optional[np.ndarray]) -> Optional[list[int]]:
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _estimated_elements(node: onnx.NodeProto, values: list[Optional[np.ndarray]]) -> Optional[int]:
    """The output size of the ops that can make a big tensor from small inputs, computed from
    the inputs before evaluating (None: the op's output is no larger than its inputs)."""
    op, a = node.op_type, attributes(node)
    first = values[0] if values else None
    second = _ints_of(values[1]) if len(values) > 1 else None
    if op == "ConstantOfShape" and first is not None:
        return math.prod(max(v, 0) for v in _ints_of(first) or [])
    if op == "Expand" and first is not None and second is not None:
        return _broadcast_elements(first.shape, tuple(max(v, 0) for v in second))
    if op == "Tile" and first is not None and second is not None:
        return first.size * math.prod(max(v, 0) for v in second)
    if op == "Range" and len(values) == 3 and all(v is not None for v in values):
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values)
        return max(int(math.ceil((limit - start) / delta)), 0) if delta else 0
    if op == "Pad" and first is not None:
        pads = [int(v) for v in a["pads"]] if "pads" in a else second
        n = len(pads or []) // 2
        return None if n != first.ndim else math.prod(max(d + pads[i] + pads[i + n], 0)
                                                      for i, d in enumerate(first.shape))
    if op == "OneHot" and first is not None and second is not None:
        return first.size * max(second[0], 0)
    if op in ("Resize", "Upsample") and first is not None:
        sizes, scales = _ints_of(values[3]) if len(values) > 3 else None, values[-1] if len(values) > 1 else None
        if sizes:
            return math.prod(sizes)
        factors = a.get("scales") if scales is None else np.asarray(scales).reshape(-1)
        return None if factors is None else int(math.prod(d * float(f) for d, f in zip(first.shape, factors)))
    if op in ("MatMul", "Gemm") and len(values) > 1 and first is not None and values[1] is not None:
        rows, cols = first.shape[-2] if first.ndim > 1 else 1, values[1].shape[-1] if values[1].ndim > 1 else 1
        return _broadcast_elements(first.shape[:-2], values[1].shape[:-2]) * rows * cols
    if op == "Gather" and first is not None and len(values) > 1 and values[1] is not None:
        return first.size // max(first.shape[int(a.get("axis", 0))], 1) * values[1].size if first.ndim else 0
    if op in ("Einsum", "GatherND"):  # bounded by the product of the inputs
        return math.prod(v.size for v in values if v is not None)
    present = [v.shape for v in values if v is not None]
    return _broadcast_elements(*present) if len(present) > 1 else None


def fold_node(ctx: ConversionContext, node: onnx.NodeProto) -> bool:
    """Compute a node whose inputs are all constants; False if it has run-time inputs."""
    names = [n for n in node.input if n]
    if not names or any(n not in ctx.consts for n in names):
        return False
    if node.op_type in _NEVER_EVALUATED or any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                               for attr in node.attribute):
        raise UnsupportedOperatorError(f"{describe_node(node)} is control flow or random; the converter never "
                                       "runs subgraph bodies or random ops at import, so it is not supported")
    values = [ctx.consts.get(n) if n else None for n in node.input]
    estimate = _estimated_elements(node, values)
    if estimate is not None and estimate > MAX_FOLDED_ELEMENTS:
        raise _too_big(node, estimate)
    from onnx.reference import ReferenceEvaluator  # lazy: only graphs with constant subexpressions need it

    try:
        evaluator = ReferenceEvaluator(node, opsets={"": ctx.opset})
        results = evaluator.run(None, {n: ctx.consts[n] for n in names})
    except Exception:  # the reference evaluator cannot compute it: convert the node as an op instead
        return False
    for name, value in zip(node.output, results):
        if not name:
            continue
        array = np.asarray(value)
        if array.size > MAX_FOLDED_ELEMENTS:
            raise _too_big(node, array.size)
        ctx.folded_elements += array.size
        if ctx.folded_elements > MAX_TOTAL_FOLDED_ELEMENTS:
            raise UnsupportedOperatorError(f"folding the graph's constants reaches {describe_node(node)} with "
                                           f"over {MAX_TOTAL_FOLDED_ELEMENTS:,} elements in all; the file is "
                                           "not a model SqueezeStudio can import")
        ctx.consts[name] = supported_array(array, describe_node(node))
    return True


def _too_big(node: onnx.NodeProto, elements: int) -> UnsupportedOperatorError:
    return UnsupportedOperatorError(f"{describe_node(node)} would make a constant of {elements:,} elements "
                                    f"(more than {MAX_FOLDED_ELEMENTS:,}) at import; such a file is refused")
