"""Open an ONNX file without trusting it.

The protobuf is parsed with ``load_external_data=False``; every external-data
reference is then checked here (relative, no ``..``, no symlink leaving the
model's folder, not the model file itself, a regular file, offset and length
inside it, length matching the tensor) before a single byte of it is read.
Then, still before decoding anything, every tensor's dims are checked against
the data it stores and the element budget, declared inputs against the
one-image input limit, and constant Loop trip counts against their limit. We read the data ourselves
instead of calling onnx's loader, whose own path checks have been bypassed
more than once (CVE-2024-27318, CVE-2026-27489).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator, Optional

import numpy as np
import onnx
from onnx import TensorProto

from squeezestudio.core.errors import ModelLoadError, UnsafeModelFileError
from squeezestudio.core.limits import check_count, check_elements, current_limits, element_budget
from squeezestudio.core.printable import printable

__all__ = ["load_onnx_model", "check_external_data", "iter_tensors", "check_tensor_sizes",
           "check_declared_inputs", "check_loops"]


@dataclass(frozen=True)
class ExternalRef:
    """A validated external-data reference of one tensor."""

    tensor: TensorProto
    path: Path
    offset: int
    length: int


def load_onnx_model(path: "str | os.PathLike[str]") -> onnx.ModelProto:
    """Parse an ONNX file and attach its (checked) external data."""
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"{file} does not exist or is not a file")
    if file.stat().st_size == 0:
        raise ModelLoadError(f"{file.name} is empty (0 bytes); it is not an ONNX model")
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # DecodeError, RuntimeError, ValueError... all mean "not a readable ONNX file"
        raise ModelLoadError(f"{file.name} is not a readable ONNX model (truncated or another format)") from exc
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelLoadError(f"{file.name} does not contain an ONNX graph; it may be another kind of file")
    refs = check_external_data(model, file.parent, model_file=file)
    check_tensor_sizes(model, file.name, file.stat().st_size + sum(ref.length for ref in refs))
    check_declared_inputs(model, file.name)
    check_loops(model, file.name)
    for ref in refs:
        _read_into(ref)
    return model


def iter_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor in the model: initializers and constants, in subgraphs too."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def check_external_data(model: onnx.ModelProto, base_dir: Path,
                        model_file: Optional[Path] = None) -> list[ExternalRef]:
    """Validate every external-data reference; raises :class:`UnsafeModelFileError` on the first bad one.

    ``model_file``: the ONNX file itself, which no tensor may name as its data
    (it would read the protobuf's own bytes as weights).
    """
    base = Path(os.path.realpath(base_dir))
    itself = Path(os.path.realpath(model_file)) if model_file is not None else None
    refs: list[ExternalRef] = []
    for tensor in iter_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        ref = _check_one(tensor, info, base)
        if itself is not None and ref.path == itself:
            raise UnsafeModelFileError(f"tensor {printable(tensor.name or '(unnamed)')} names the model file "
                                       f"itself as its external data; refusing to read it")
        refs.append(ref)
    return refs


_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data", "string_data")


def _elements(dims: Iterator[int] | list[int]) -> int:
    count = 1
    for d in dims:
        count *= int(d)
    return count


def check_tensor_sizes(model: onnx.ModelProto, source: str, file_bytes: int) -> None:
    """Every tensor's dims against its stored data, and all elements against the budget, before decoding.

    numpy would end a lying initializer (raw data shorter than its dims, or
    dims of 2^40 x 2^40 and no data) in a ValueError traceback, or try to
    allocate it.
    """
    limits = current_limits()
    budget = element_budget(file_bytes, limits.elements_per_byte, limits)
    total = 0
    known_types = set(TensorProto.DataType.values())
    for tensor in iter_tensors(model):
        name = printable(tensor.name or "(unnamed)")
        if tensor.data_type not in known_types or tensor.data_type == TensorProto.UNDEFINED:
            raise ModelLoadError(f"tensor {name} of {source} has an unknown element type ({tensor.data_type}); "
                                 "the file is damaged")
        if any(int(d) < 0 for d in tensor.dims):
            raise ModelLoadError(f"tensor {name} of {source} has a negative dimension {list(tensor.dims)}")
        count = _elements(tensor.dims)
        total += count
        check_elements(total, budget, f"the tensors of {source}", "elements_per_byte", error=ModelLoadError)
        if tensor.data_location == TensorProto.EXTERNAL:
            continue  # checked against its external length already
        expected = _expected_bytes(tensor)
        if tensor.HasField("raw_data") or tensor.raw_data:
            if expected is not None and len(tensor.raw_data) != expected:
                raise ModelLoadError(f"tensor {name} of {source} declares dims {list(tensor.dims)} ({expected:,d} "
                                     f"bytes) but stores {len(tensor.raw_data):,d} bytes; the file is damaged")
            continue
        stored = max(len(getattr(tensor, f)) for f in _TYPED_FIELDS)
        per_element = _VALUES_PER_ELEMENT.get(tensor.data_type)
        if (count and not stored) or (per_element is not None and stored != count * per_element):
            raise ModelLoadError(f"tensor {name} of {source} declares dims {list(tensor.dims)} ({count:,d} "
                                 f"values) but stores {stored:,d}; the file is damaged")


_VALUES_PER_ELEMENT = {TensorProto.FLOAT: 1, TensorProto.DOUBLE: 1, TensorProto.INT32: 1, TensorProto.INT64: 1,
                       TensorProto.UINT64: 1, TensorProto.UINT32: 1, TensorProto.COMPLEX64: 2,
                       TensorProto.COMPLEX128: 2}
"""Values stored per element in the typed field (other types pack several per value, or are strings)."""


def check_declared_inputs(model: onnx.ModelProto, source: str) -> None:
    """A graph input's fixed dims (symbolic ones counted as 1) must fit the one-image input limit."""
    initializers = {t.name for t in model.graph.initializer}
    limit = current_limits().input_elements
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                for d in value.type.tensor_type.shape.dim]
        shape = "x".join(str(d) for d in dims)
        check_elements(_elements(dims), limit, f"the declared input {printable(value.name)} ({shape}) of {source}",
                       "input_elements", error=ModelLoadError)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _constant_scalars(graph: onnx.GraphProto) -> dict[str, int]:
    """Integer scalars known without running anything: initializers and Constant nodes."""
    found: dict[str, int] = {}
    tensors = [(t.name, t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    tensors.append((node.output[0], attr.t))
                elif attr.name in ("value_int", "value_ints"):
                    ints = [attr.i] if attr.name == "value_int" else list(attr.ints)
                    if len(ints) == 1:
                        found[node.output[0]] = int(ints[0])
    for name, tensor in tensors:
        if _elements(tensor.dims) == 1 and tensor.data_type in (TensorProto.INT64, TensorProto.INT32):
            data = tensor.raw_data
            if data and len(data) in (4, 8):
                found[name] = int.from_bytes(data, "little", signed=True)
            elif tensor.int64_data or tensor.int32_data:
                found[name] = int((list(tensor.int64_data) or list(tensor.int32_data))[0])
    return found


def check_loops(model: onnx.ModelProto, source: str) -> None:
    """Refuse a Loop whose constant trip count is over the ``loop_iterations`` limit, before anything runs."""
    limit = current_limits().loop_iterations
    for graph in _graphs(model.graph):
        constants = _constant_scalars(graph)
        for node in graph.node:
            if node.op_type == "Loop" and node.input and node.input[0] in constants:
                check_count(constants[node.input[0]], limit,
                            f"the trip count of the Loop {printable(node.name or node.output[0] if node.output else '')}"
                            f" in {source}", "loop_iterations", ModelLoadError)


def _check_one(tensor: TensorProto, info: dict[str, str], base: Path) -> ExternalRef:
    name = tensor.name or "(unnamed)"
    location = info.get("location", "")
    unsafe = (f"tensor {name} points at external data {location!r} outside the model's folder; "
              "refusing to read it")
    if not location or "\x00" in location:
        raise UnsafeModelFileError(f"tensor {name} has an invalid external-data location")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("\\", "/", "~")):
        raise UnsafeModelFileError(unsafe)
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeModelFileError(unsafe)
    candidate = base / location
    resolved = Path(os.path.realpath(candidate))
    if resolved != base and base not in resolved.parents:
        raise UnsafeModelFileError(unsafe)  # a symlink leading out of the folder
    if not resolved.is_file():
        raise ModelLoadError(f"the external data file {location!r} of tensor {name} is missing")
    try:
        offset = int(info.get("offset", "0") or 0)
        size = resolved.stat().st_size
        length = int(info["length"]) if info.get("length") else size - offset
    except ValueError as exc:
        raise UnsafeModelFileError(f"tensor {name} has a malformed external-data offset or length") from exc
    if offset < 0 or length < 0 or offset + length > size:
        raise UnsafeModelFileError(f"tensor {name} reads bytes {offset}..{offset + length} of {location!r}, "
                                   f"which has only {size} bytes")
    expected = _expected_bytes(tensor)
    if expected is not None and expected != length:
        raise ModelLoadError(f"tensor {name} needs {expected} bytes of external data but {length} are given")
    return ExternalRef(tensor=tensor, path=resolved, offset=offset, length=length)


def _expected_bytes(tensor: TensorProto) -> Optional[int]:
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:
        return None
    if dtype == np.dtype(object) or tensor.data_type in (TensorProto.STRING,):
        return None
    count = 1
    for d in tensor.dims:
        count *= int(d)
    bits = {TensorProto.INT4: 4, TensorProto.UINT4: 4}.get(tensor.data_type)
    return (count * bits + 7) // 8 if bits else count * dtype.itemsize


def _read_into(ref: ExternalRef) -> None:
    with open(ref.path, "rb") as fh:
        fh.seek(ref.offset)
        data = fh.read(ref.length)
    if len(data) != ref.length:
        raise ModelLoadError(f"the external data file of tensor {ref.tensor.name} is truncated")
    ref.tensor.raw_data = data
    del ref.tensor.external_data[:]
    ref.tensor.data_location = TensorProto.DEFAULT
