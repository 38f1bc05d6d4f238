"""Open an ONNX file without trusting it.

The protobuf is parsed with ``load_external_data=False``; every external-data
reference is then checked here (relative, no ``..``, no symlink leaving the
model's folder, a regular file, offset and length inside it, length matching
the tensor) before a single byte of it is read. We read the data ourselves
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

__all__ = ["load_onnx_model", "check_external_data", "iter_tensors"]


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
    refs = check_external_data(model, file.parent)
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


def check_external_data(model: onnx.ModelProto, base_dir: Path) -> list[ExternalRef]:
    """Validate every external-data reference; raises :class:`UnsafeModelFileError` on the first bad one."""
    base = Path(os.path.realpath(base_dir))
    refs: list[ExternalRef] = []
    for tensor in iter_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        refs.append(_check_one(tensor, info, base))
    return refs


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
