"""Hypothesis strategies that build hostile .sqz, safetensors, state_dict and ONNX files.

Each strategy draws a file as bytes (with the name suffix it should carry):
valid files of a tiny model with lying shapes, huge or negative sizes, odd
dtypes, stride-0 and overlapping views, deep or shared nesting, non-finite
numbers, flipped and truncated bytes. :class:`FuzzWorker` opens them in a
separate long-lived process under a memory limit and a clock.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from hypothesis import strategies as st

WORKER = Path(__file__).with_name("fuzz_worker.py")
REPO = Path(__file__).resolve().parents[1]

HUGE_INTS = st.sampled_from([0, -1, -5, 1, 2, 3, 7, 2 ** 31, 2 ** 32 + 1, 10 ** 7, 10 ** 10, 2 ** 40, 2 ** 63 - 1,
                             2 ** 64, 10 ** 12])
NASTY_TEXT = st.text(alphabet=st.sampled_from(list("ab.0_/\\:\x00\x1b\n\u202e²é \x07")), max_size=12)


def json_values(max_depth: int = 3) -> st.SearchStrategy[Any]:
    """Any JSON value, including NaN/Inf (Python writes them) and deep nesting."""
    scalars = st.one_of(st.none(), st.booleans(), HUGE_INTS, st.integers(-3, 40),
                        st.floats(allow_nan=True, allow_infinity=True), NASTY_TEXT)
    deep = st.integers(50, 3000).map(lambda d: json.loads("[" * d + "]" * d) if d < 900 else "[" * d)
    return st.one_of(scalars, deep, st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(NASTY_TEXT, inner, max_size=3)), max_leaves=8))


# ----------------------------------------------------------------------------- the tiny model

def tiny_handle():
    import torch
    from torch import nn

    from squeezestudio.core.model.architecture_spec import describe_architecture
    from squeezestudio.core.model.handle import InputSpec, ModelHandle

    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    return ModelHandle(module=module, name="tiny", input_spec=InputSpec(1, 2, 2, (0.0,), (1.0,)),
                       class_names=["a", "b", "c"], source_format="state_dict",
                       architecture=describe_architecture(module))


@lru_cache(maxsize=None)
def base_files() -> dict[str, bytes]:
    """Valid files of the tiny model in every format (built once per process)."""
    import tempfile

    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress
    from squeezestudio.core.compression.recipe import Recipe
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.export_onnx import export_onnx
    from squeezestudio.core.io.loading import save_safetensors, save_state_dict

    handle = tiny_handle()
    cm = compress(handle, Recipe(methods={"cluster": {"bits": 2}}), registry=default_registry())
    out = {"sqz": bytes(encode_sqz(cm))}
    with tempfile.TemporaryDirectory() as folder:
        for fmt, save in (("pt", save_state_dict), ("safetensors", save_safetensors)):
            path = Path(folder) / f"m.{fmt}"
            save(handle, path)
            out[fmt] = path.read_bytes()
        path = Path(folder) / "m.onnx"
        export_onnx(handle, path)
        out["onnx"] = path.read_bytes()
    return out


# ----------------------------------------------------------------------------- generic mutations

def _split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + size]), blob[8 + size:]


def _join(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):
            found += _paths(v, prefix + (i,))
    return found


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


@st.composite
def json_edit(draw, document: Any) -> Any:
    """``document`` with one to three values (anywhere) replaced by hostile JSON."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        document = _replace(document, path, draw(json_values()))
    return document


@st.composite
def byte_edit(draw, blob: bytes) -> bytes:
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif data:
            data[at:at + draw(st.integers(1, 64))] = bytes(min(64, len(data) - at))
    return bytes(data)


# ----------------------------------------------------------------------------- .sqz

def _sqz_checksum(blob: bytes) -> Optional[int]:
    try:
        container, data = _split(blob)
        crc = 0
        for name in sorted(k for k in container if k != "__metadata__"):
            start, stop = container[name]["data_offsets"]
            crc = zlib.crc32(name.encode(), crc)
            crc = zlib.crc32(data[start:stop], crc)
        return crc
    except Exception:  # noqa: BLE001 - a container we broke ourselves
        return None


@st.composite
def sqz_files(draw) -> tuple[str, bytes]:
    blob = base_files()["sqz"]
    container, data = _split(blob)
    header = json.loads(container["__metadata__"]["squeezestudio"])
    mode = draw(st.sampled_from(["header", "header", "data", "bytes"]))
    if mode == "header":
        header = draw(json_edit(header))
        container["__metadata__"]["squeezestudio"] = json.dumps(header)
        return ".sqz", _join(container, data)
    if mode == "data":  # change stored numbers, then recompute the CRC as an attacker would
        mutated = draw(byte_edit(data))[:len(data)].ljust(len(data), b"\0")
        if draw(st.booleans()):
            at = draw(st.integers(0, max(len(data) - 4, 0)))
            nonfinite = draw(st.sampled_from([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\x00\x00\x80\xff"]))
            mutated = mutated[:at] + nonfinite + mutated[at + 4:]
        candidate = _join(container, mutated)
        crc = _sqz_checksum(candidate)
        if crc is not None:
            header["checksum"] = crc
            container["__metadata__"]["squeezestudio"] = json.dumps(header)
        return ".sqz", _join(container, mutated)
    return ".sqz", draw(byte_edit(blob))


# ----------------------------------------------------------------------------- safetensors

DTYPES = ["F32", "F16", "BF16", "F64", "I8", "I64", "BOOL", "U8", "C64", "F8_E4M3", "XX"]


@st.composite
def safetensors_files(draw) -> tuple[str, bytes]:
    blob = base_files()["safetensors"]
    container, data = _split(blob)
    mode = draw(st.sampled_from(["table", "metadata", "bytes"]))
    if mode == "table":
        for name in [k for k in container if k != "__metadata__"]:
            entry = container[name]
            if draw(st.booleans()):
                entry["dtype"] = draw(st.sampled_from(DTYPES))
            if draw(st.booleans()):
                entry["shape"] = draw(st.lists(HUGE_INTS, max_size=4))
            if draw(st.booleans()):
                entry["data_offsets"] = draw(st.lists(HUGE_INTS, min_size=2, max_size=2))
        if draw(st.booleans()):
            container[draw(NASTY_TEXT)] = draw(json_values())
        return ".safetensors", _join(container, data)
    if mode == "metadata":
        meta = json.loads(container["__metadata__"]["squeezestudio"])
        container["__metadata__"]["squeezestudio"] = json.dumps(draw(json_edit(meta)))
        return ".safetensors", _join(container, data)
    return ".safetensors", draw(byte_edit(blob))


# ----------------------------------------------------------------------------- torch state_dicts

TORCH_DTYPES = ["float32", "float16", "bfloat16", "float64", "int8", "int64", "bool", "complex64",
                "float8_e4m3fn", "uint8"]


@st.composite
def _tensor(draw, shape: tuple[int, ...]):
    import torch

    dtype = getattr(torch, draw(st.sampled_from(TORCH_DTYPES)))
    view = draw(st.sampled_from(["plain", "plain", "expand", "strided", "nonfinite"]))
    if view == "expand":
        sizes = draw(st.lists(st.sampled_from([1, 3, 1000, 10 ** 6, 10 ** 10]), min_size=1, max_size=3))
        while math.prod(sizes) >= 2 ** 62:  # torch cannot even describe a view that large (numel overflows int64)
            sizes.pop()
        return torch.zeros(1, dtype=torch.float32).to(dtype).expand(*sizes)
    if math.prod(shape) > 10 ** 6:  # a shape taken over from a huge expanded view: the generator must not allocate it
        shape = (2,)
    base = torch.randn(max(math.prod(shape), 1)).to(dtype)
    if view == "strided":
        size = draw(st.lists(st.integers(1, 3000), min_size=1, max_size=3))
        stride = draw(st.lists(st.integers(0, 3), min_size=len(size), max_size=len(size)))
        span = 1 + sum((s - 1) * t for s, t in zip(size, stride))
        if span <= base.numel():
            return base.as_strided(size, stride)
    if view == "nonfinite" and base.is_floating_point():
        base = base.clone()
        base[0] = float(draw(st.sampled_from(["nan", "inf", "-inf"])))
    return base.reshape(shape) if base.numel() == math.prod(shape) else base


@st.composite
def state_dict_files(draw) -> tuple[str, bytes]:
    import torch

    handle = tiny_handle()
    mode = draw(st.sampled_from(["tensors", "metadata", "pickle", "bytes"]))
    if mode == "bytes":
        return ".pt", draw(byte_edit(base_files()["pt"]))
    if mode == "pickle":
        return ".pt", _zip_pickle(draw(shared_pickles()))
    state = {k: v.clone() for k, v in handle.module.state_dict().items()}
    from squeezestudio.core.io.loading.metadata import metadata_from_handle

    meta = metadata_from_handle(handle)
    if mode == "tensors":
        for key in draw(st.lists(st.sampled_from(list(state) + ["extra", "\x1b[2Jx"]), min_size=1, max_size=3)):
            state[key] = draw(_tensor(tuple(state[key].shape) if key in state else (2,)))
    else:
        meta = draw(json_edit(meta))
    buffer = io.BytesIO()
    try:
        torch.save({"state_dict": state, "squeezestudio": meta}, buffer)
    except RecursionError:  # metadata edited into a structure too deep for pickle itself: keep the tensors
        buffer = io.BytesIO()
        torch.save({"state_dict": state}, buffer)
    return ".pt", buffer.getvalue()


@st.composite
def shared_pickles(draw) -> bytes:
    """Tuples, lists and dicts built from memo references: a few opcodes, possibly 2^70 nodes."""
    ops = bytearray(b"\x80\x02)q\x00")  # the seed: an empty tuple in memo 0
    count = 1
    for _ in range(draw(st.integers(1, 70))):
        a, b = (b"h" + bytes([draw(st.integers(0, count - 1))]) for _ in range(2))
        kind = draw(st.sampled_from(["tuple", "tuple", "list", "dict"]))
        if kind == "tuple":
            ops += a + b + b"\x86"  # TUPLE2
        elif kind == "list":
            ops += b"(" + a + b + b"l"  # MARK ... LIST
        else:
            ops += b"}" + a + b + b"s"  # EMPTY_DICT, key, value, SETITEM
        ops += b"q" + bytes([count])
        count = min(count + 1, 250)
    ops += b"}" + b"h" + bytes([count - 1]) + b"K\x01s."  # {last: 1}: hashes the last object
    return bytes(ops)


def _zip_pickle(pickle_bytes: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- ONNX

@st.composite
def onnx_files(draw) -> tuple[str, bytes]:
    import onnx
    from onnx import TensorProto

    blob = base_files()["onnx"]
    mode = draw(st.sampled_from(["tensors", "inputs", "loop", "bytes"]))
    if mode == "bytes":
        return ".onnx", draw(byte_edit(blob))
    model = onnx.load_from_string(blob)
    graph = model.graph
    if mode == "tensors" and graph.initializer:
        tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
        choice = draw(st.sampled_from(["dims", "raw", "external", "dtype"]))
        if choice == "dims":
            del tensor.dims[:]
            tensor.dims.extend(draw(st.lists(st.sampled_from([0, 1, 3, 4, 2 ** 20, 2 ** 40]), max_size=3)))
        elif choice == "raw":
            tensor.raw_data = tensor.raw_data[:draw(st.integers(0, len(tensor.raw_data)))]
        elif choice == "external":
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", draw(st.sampled_from(["m.onnx", "../x", "/etc/passwd", "w.bin", ""]))),
                               ("length", str(draw(HUGE_INTS)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
        else:
            tensor.data_type = draw(st.sampled_from([TensorProto.INT8, TensorProto.COMPLEX64, TensorProto.BOOL,
                                                     TensorProto.FLOAT16, TensorProto.DOUBLE, 999]))
    elif mode == "inputs":
        dims = graph.input[0].type.tensor_type.shape.dim
        for dim in dims:
            if draw(st.booleans()):
                dim.dim_value = draw(st.sampled_from([0, 1, 2, 29, 30000, 2 ** 31]))
    else:
        from onnx import helper, numpy_helper
        import numpy as np

        body = helper.make_graph(
            [helper.make_node("Identity", ["c"], ["c2"])], "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("c2", TensorProto.BOOL, [])])
        trips = draw(st.sampled_from([1, 10, 10 ** 6, 10 ** 12]))
        graph.initializer.extend([numpy_helper.from_array(np.array(trips, np.int64), "fz_trips"),
                                  numpy_helper.from_array(np.array(True), "fz_cond")])
        graph.node.append(helper.make_node("Loop", ["fz_trips", "fz_cond"], [], body=body))
    return ".onnx", model.SerializeToString()


FORMATS = {"sqz": sqz_files, "safetensors": safetensors_files, "state_dict": state_dict_files, "onnx": onnx_files}


# ----------------------------------------------------------------------------- the worker

@dataclass
class Outcome:
    outcome: str  # loaded | refused | foreign | timeout
    error: str
    seconds: float


class FuzzWorker:
    """One ``fuzz_worker.py`` process; restarted after a timeout or a crash."""

    def __init__(self, folder: Path, timeout: float = 5.0) -> None:
        self.folder = folder
        self.timeout = timeout
        self.proc: Optional[subprocess.Popen] = None
        self.count = 0

    def _start(self) -> None:
        warm = []
        for fmt, blob in base_files().items():  # first use of every loader before the clock starts
            warm.append(self.folder / f"warm.{fmt}")
            warm[-1].write_bytes(blob)
        env = {**os.environ, "PYTHONPATH": str(REPO), "FUZZ_WARM_FILES": os.pathsep.join(map(str, warm))}
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        assert json.loads(self._read_line(120.0)).get("ready")

    def _read_line(self, timeout: float) -> str:
        import select

        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError
        return line

    def run(self, suffix: str, blob: bytes) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self.count += 1
        path = self.folder / f"case{self.count % 8}{suffix}"
        path.write_bytes(blob)
        self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.proc.stdin.flush()
        try:
            answer = json.loads(self._read_line(self.timeout))
        except TimeoutError:
            self.close()
            return Outcome("timeout", f"no answer within {self.timeout} s", self.timeout)
        except EOFError:
            self.close()
            return Outcome("foreign", "the worker died (a crash or the memory limit)", 0.0)
        return Outcome(answer["outcome"], answer["error"], answer["seconds"])

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
            self.proc = None
