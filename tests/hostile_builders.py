"""Small hostile and broken model files, built the way an attacker would write them.

Shared by the core tests, the CLI tests and the fuzz target. Every builder
writes a file of a few kilobytes at most: the danger is in what the file
*describes* (10^10 elements, 2^60 nodes, 100,000 levels), never in its size.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.io.loading import save_safetensors, save_state_dict
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

DEEP = 100_000


def mlp_handle():
    """LeNet-300-100: a 28x28 MLP (it refuses any other input size)."""
    return zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=28)


def small_handle():
    return zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28)


# ----------------------------------------------------------------------------- safetensors / .sqz containers

def safetensors_bytes(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def split_safetensors(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + size]), blob[8 + size:]


def sqz_bytes() -> bytes:
    """A valid, small .sqz file (LeNet-5 pruned to half)."""
    cm = compress(small_handle(), Recipe(methods={"prune": {"sparsity": 0.5}}), registry=default_registry())
    return encode_sqz(cm)


def edit_sqz_header(blob: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The .sqz file with its SqueezeStudio JSON changed by ``edit`` (data and checksum unchanged)."""
    container, data = split_safetensors(blob)
    meta = json.loads(container["__metadata__"]["squeezestudio"])
    edit(meta)
    container["__metadata__"]["squeezestudio"] = json.dumps(meta)
    return safetensors_bytes(container, data)


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


# ----------------------------------------------------------------------------- torch files by hand

def torch_zip(path: Path, pickle_bytes: bytes, storages: dict[str, bytes] | None = None) -> Path:
    """A torch zip checkpoint holding exactly ``pickle_bytes`` as its data.pkl."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def hash_bomb_pickle(levels: int = 60) -> bytes:
    """``{t: 1}`` where ``t = (t', t')`` nested ``levels`` deep (memo-shared halves: 2^levels nodes to hash)."""
    ops = bytearray(b"\x80\x02}q\x00)q\x01")  # PROTO 2, EMPTY_DICT, BINPUT 0, EMPTY_TUPLE, BINPUT 1
    for i in range(levels):
        ops += b"h" + bytes([1 + i]) + b"h" + bytes([1 + i]) + b"\x86" + b"q" + bytes([2 + i])
    ops += b"K\x01s."  # BININT1 1, SETITEM, STOP
    return bytes(ops)


def nested_list_name_pickle(levels: int = 40) -> bytes:
    """Checkpoint metadata whose model name is lists nested ``levels`` deep with shared halves."""
    ops = bytearray(b"\x80\x02}q\x00")
    key = b"squeezestudio"
    ops += b"X" + struct.pack("<I", len(key)) + key
    ops += b"}q\x01"  # the metadata dict
    ops += b"X" + struct.pack("<I", 4) + b"name"
    ops += b"]q\x02"  # innermost list
    for i in range(levels):
        ops += b"(h" + bytes([2 + i]) + b"h" + bytes([2 + i]) + b"lq" + bytes([3 + i])  # MARK GET GET LIST PUT
    ops += b"s"  # metadata["name"] = nested
    ops += b"s."  # top["squeezestudio"] = metadata
    return bytes(ops)


def stride0_checkpoint(path: Path, elements: int = 10 ** 10) -> Path:
    """A state_dict whose one tensor is a stride-0 view of a single float (4 bytes on disk)."""
    torch.save({"fc.weight": torch.zeros(1).expand(elements)}, path)
    return path


def overlapping_checkpoint(path: Path) -> Path:
    """A state_dict whose tensor rows overlap in storage (a 2000x1000 view over 2,999 floats)."""
    base = torch.arange(2999, dtype=torch.float32)
    torch.save({"w": base.as_strided((2000, 1000), (1, 1))}, path)
    return path


def checkpoint_with_metadata(path: Path, handle, edit: Callable[[dict[str, Any]], None],
                             weights: bool = True) -> Path:
    """Our own checkpoint format with its metadata changed by ``edit`` (and the weights dropped if asked)."""
    save_state_dict(handle, path)
    payload = torch.load(path, weights_only=True)
    edit(payload["squeezestudio"])
    if not weights:
        payload["state_dict"] = {"unused": torch.zeros(1)}
    torch.save(payload, path)
    return path


def typed_checkpoint(path: Path, dtype: torch.dtype) -> Path:
    """LeNet-300-100's weights stored with ``dtype`` (int8, int64, bool, complex64, float8...)."""
    handle = mlp_handle()
    state = {k: v.to(dtype) for k, v in handle.module.state_dict().items()}
    torch.save({"state_dict": state, "squeezestudio": _metadata(handle)}, path)
    return path


def _metadata(handle) -> dict[str, Any]:
    from squeezestudio.core.io.loading.metadata import metadata_from_handle

    return metadata_from_handle(handle)


def safetensors_with_metadata(path: Path, handle, meta_text: str) -> Path:
    save_safetensors(handle, path)
    container, data = split_safetensors(path.read_bytes())
    container["__metadata__"]["squeezestudio"] = meta_text
    path.write_bytes(safetensors_bytes(container, data))
    return path


# ----------------------------------------------------------------------------- ONNX

def onnx_mlp(path: Path, *, input_shape=(1, 1, 2, 2), weight: Any = None, extra_nodes=(), extra_inits=()) -> Path:
    """A one-layer ONNX classifier (Flatten -> Gemm) with optional hostile parts."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = weight if weight is not None else numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
         *extra_nodes],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=[w, *extra_inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def onnx_short_raw_data(path: Path) -> Path:
    from onnx import TensorProto

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4], raw_data=b"\0" * 20)
    return onnx_mlp(path, weight=w)


def onnx_huge_dims(path: Path) -> Path:
    from onnx import TensorProto

    return onnx_mlp(path, weight=TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2 ** 40, 2 ** 40]))


def onnx_external_self(path: Path) -> Path:
    from onnx import TensorProto

    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", path.name), ("offset", "0"), ("length", "48")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    onnx_mlp(path, weight=w)
    if path.stat().st_size < 48:  # make the file long enough that only the self-reference is wrong
        path.write_bytes(path.read_bytes() + b"\0" * 48)
    return path


def onnx_loop(path: Path, trips: int = 10 ** 12) -> Path:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 3])])
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "cond")]
    loop = helper.make_node("Loop", ["trips", "cond", "y"], ["z"], body=body)
    return onnx_mlp(path, extra_nodes=[loop], extra_inits=inits)


# ----------------------------------------------------------------------------- data files

def png_strip(path: Path, width: int = 89_000_000, height: int = 1) -> Path:
    """A grayscale PNG of ``width`` x ``height`` black pixels, compressed in pieces (a ~90 KB file)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(1)
    row = b"\0" + bytes(min(width, 1 << 20))
    body = []
    for _ in range(height):
        body.append(packer.compress(b"\0"))
        left = width
        while left > 0:
            n = min(left, 1 << 20)
            body.append(packer.compress(row[1:1 + n]))
            left -= n
    body.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(body))
                     + chunk(b"IEND", b""))
    return path


def small_png(path: Path, size: int = 8) -> Path:
    from PIL import Image

    Image.new("L", (size, size), 128).save(path)
    return path
