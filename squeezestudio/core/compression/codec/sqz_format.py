"""The .sqz file: a safetensors container of two byte tensors plus a JSON header.

Why safetensors: it is a flat, pickle-free format (opening an untrusted file
runs no code) that other tools can list, and its parser is strict about
offsets. The file holds exactly two ``uint8`` tensors (see :mod:`.sqz_layout`):
``streams``, every encoded weight's byte streams back to back (see
:mod:`.layer_codec`), and ``raw``, the parameters and buffers without an
encoding (biases, BatchNorm statistics) stored exactly, each aligned to its
dtype. One tensor entry per model instead of one per stream keeps the
safetensors header small. The safetensors metadata key ``squeezestudio``
holds compact JSON::

    {"format": "squeezestudio-sqz", "version": 1, "architecture": ..., "input_spec": ...,
     "class_names": [...], "name": ..., "recipe": {...}, "metrics": {...}, "provenance": {...},
     "layers": {param: {layer JSON..., "streams": {part: [offset, length]}}},
     "raw": {name: {"dtype", "shape", "offset"}}, "checksum": crc32}

``checksum`` is a CRC-32 over both tensors' names and bytes in sorted name
order, so a flipped bit in the data is reported instead of silently changing
a weight. Loading checks every range before use, rebuilds the module from
``architecture`` with :func:`squeezestudio.core.compression.replay.build_module`
(modifications and custom encodings go to the methods of the registry the
caller passes) and loads the decoded weights with a strict ``load_state_dict``.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from squeezestudio.core.compression.codec.file_metrics import metrics_for_file, metrics_from_file
from squeezestudio.core.compression.codec.json_checks import as_dict, as_int, as_shape, as_str, field
from squeezestudio.core.compression.codec.layer_codec import LayerStreams, check_encoding, decode_layer, encode_layer
from squeezestudio.core.compression.codec.sqz_layout import (
    RAW,
    STREAMS,
    data_tensors,
    pack_raw,
    pack_streams,
    stream_spans,
    unpack_raw,
)
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import CustomPayload, WeightEncoding, kept_positions
from squeezestudio.core.bounded_parse import load_json
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.replay import build_module
from squeezestudio.core.errors import CodecError, PluginError, PreprocessingError, SqueezeStudioError
from squeezestudio.core.limits import check_elements, current_limits, element_budget
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.model.outputs import output_semantics, restore_output_semantics
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

FORMAT = "squeezestudio-sqz"
VERSION = 1
METADATA_KEY = "squeezestudio"


# ----------------------------------------------------------------------------- custom payloads

def custom_decoder(payload: CustomPayload, shape: tuple[int, ...], registry: MethodRegistry) -> np.ndarray:
    """Dense weight of a custom payload, by the method of ``registry`` that produced it."""
    try:
        method = registry.get(payload.method)
        return np.asarray(method.decode_custom(payload, shape), dtype=np.float32)
    except (CodecError, PluginError):
        raise
    except SqueezeStudioError as exc:
        raise CodecError(f"the method {payload.method!r} could not decode its stored weights: {exc}") from exc
    except Exception as exc:  # a plugin's failure must not crash the loader
        raise CodecError(f"the method {payload.method!r} could not decode its stored weights ({exc})") from exc


def _decoded(name: str, enc: WeightEncoding, registry: Optional[MethodRegistry]) -> np.ndarray:
    """Dense weight of ``enc``; ``registry`` decodes custom encodings (None: there are none to decode)."""
    decoder = None
    if enc.kind == "custom":
        if registry is None:
            raise CodecError(f"{name}: a custom encoding needs the method registry to be decoded")
        decoder = lambda payload, shape: custom_decoder(payload, shape, registry)  # noqa: E731
    try:
        return enc.decode(decoder)
    except SqueezeStudioError:
        raise
    except Exception as exc:
        raise CodecError(f"{name}: its stored encoding cannot be decoded ({exc})") from exc


_PARALLEL_FROM = 1 << 20  # weights: below this, encoding layers on threads costs more than it saves


def _layer_pool(encodings: dict[str, WeightEncoding]) -> Optional[ThreadPoolExecutor]:
    """Threads for encoding big models' layers (numpy work that releases the GIL), or None."""
    workers = min(4, os.cpu_count() or 1, len(encodings))
    if workers <= 1 or sum(enc.numel for enc in encodings.values()) < _PARALLEL_FROM:
        return None
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="squeezestudio-encode")


def _matches(name: str, enc: WeightEncoding, target: torch.Tensor, registry: Optional[MethodRegistry]) -> bool:
    """True when ``target`` equals ``enc.decode()`` (as ``torch.equal`` would say).

    For a masked float32 weight this compares only the kept positions and
    counts the non-zeros, instead of building the dense decoding: equal at
    the kept positions and no other non-zero means equal everywhere.
    """
    if enc.mask is not None and enc.kind != "custom" and target.dtype == torch.float32 \
            and tuple(enc.shape) == tuple(target.shape) and np.asarray(enc.mask).size == target.numel():
        try:
            kept = enc.kept_values()
        except Exception as exc:
            raise CodecError(f"{name}: its stored encoding cannot be decoded ({exc})") from exc
        flat = target.contiguous().view(-1).numpy()
        positions = kept_positions(enc.mask)
        if positions.size != kept.size:
            raise CodecError(f"{name}: its stored encoding cannot be decoded (mask and values disagree)")
        return bool(np.array_equal(flat.take(positions), kept)) and \
            int(np.count_nonzero(flat)) == int(np.count_nonzero(kept))
    decoded = torch.from_numpy(np.ascontiguousarray(_decoded(name, enc, registry)))
    return tuple(decoded.shape) == tuple(target.shape) and torch.equal(decoded.to(target.dtype), target)


# ----------------------------------------------------------------------------- writing

def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, torch.dtype)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(type(obj).__name__)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


def _checksum(tensors: dict[str, torch.Tensor]) -> int:
    crc = 0
    for name in sorted(tensors):
        crc = zlib.crc32(name.encode("utf-8"), crc)
        crc = zlib.crc32(_tensor_bytes(tensors[name]), crc)
    return crc


def encode_container(cm: CompressedModel, progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None, *, registry: Optional[MethodRegistry] = None,
                     ) -> tuple[bytes, dict[str, LayerStreams], int]:
    """(file bytes, layer streams by parameter, raw tensor bytes): what the size report measures.

    ``registry`` decodes custom (plugin) encodings to check they match the
    model; it may be None when ``cm`` has none.
    """
    handle = cm.handle
    if handle.architecture is None:
        raise CodecError(f"{handle.name} has no architecture description, so a .sqz file could not rebuild it; "
                         "load it from the zoo, a SqueezeStudio checkpoint or ONNX first")
    state = handle.module.state_dict()
    unknown = sorted(set(cm.encodings) - set(state))
    if unknown:
        raise CodecError(f"an encoding is given for {unknown[0]}, which is not a parameter of the model")
    tensors: dict[str, torch.Tensor] = {}
    layers: dict[str, LayerStreams] = {}
    pool = _layer_pool(cm.encodings)
    try:
        pending = {}
        for name, enc in cm.encodings.items():
            check(cancel)
            check_encoding(name, enc)
            target = state[name].detach().cpu()
            if not _matches(name, enc, target, registry):
                raise CodecError(f"{name}: the model's weight differs from its encoding, so the file would not "
                                 "reproduce the model; re-apply the compression method")
            if pool is not None:
                pending[name] = pool.submit(encode_layer, name, enc)
        for i, (name, enc) in enumerate(cm.encodings.items()):
            check(cancel)
            report(progress, i / max(len(cm.encodings), 1), f"encoding {name}")
            layers[name] = pending[name].result() if pool is not None else encode_layer(name, enc)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    blob, spans = pack_streams({name: streams.streams for name, streams in layers.items()})
    raw, raw_meta = pack_raw({name: t for name, t in state.items() if name not in cm.encodings})
    tensors = {STREAMS: _byte_tensor(blob), RAW: _byte_tensor(raw)}
    header = {
        "format": FORMAT, "version": VERSION,
        "architecture": handle.architecture.to_dict(), "input_spec": handle.input_spec.to_dict(),
        "class_names": list(handle.class_names), "name": handle.name, "outputs": output_semantics(handle),
        "recipe": cm.recipe, "metrics": metrics_for_file(cm.metrics), "provenance": cm.provenance,
        "layers": {name: {**s.meta, STREAMS: spans[name]} for name, s in layers.items()}, "raw": raw_meta,
        "checksum": _checksum(tensors),
    }
    try:
        text = json.dumps(header, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise CodecError(f"the model's metadata cannot be written as JSON ({exc})") from exc
    from safetensors.torch import save as save_safetensors

    data = save_safetensors(tensors, metadata={METADATA_KEY: text})
    report(progress, 1.0, "encoded")
    return data, layers, len(raw)


# ----------------------------------------------------------------------------- reading

def read_header(data: bytes) -> dict[str, Any]:
    """The SqueezeStudio JSON of a .sqz file, after checking format and version."""
    if len(data) < 8:
        raise CodecError("the file is too short to be a .sqz file")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise CodecError("the file is truncated: its header is longer than the file")
    container = load_json(data[8:8 + size], "the .sqz file's safetensors header", CodecError)
    try:
        meta_text = container["__metadata__"][METADATA_KEY]
    except (KeyError, TypeError) as exc:
        raise CodecError("the file is not a .sqz file (no SqueezeStudio header)") from exc
    if not isinstance(meta_text, str):
        raise CodecError("the file is not a .sqz file (no SqueezeStudio header)")
    header = load_json(meta_text, "the .sqz file's SqueezeStudio header", CodecError)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CodecError("the file is not a .sqz file (wrong format tag)")
    version = header.get("version")
    if version != VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise CodecError(f"the file is .sqz version {version}, newer than this SqueezeStudio reads "
                             f"(version {VERSION}); update SqueezeStudio to open it")
        raise CodecError(f"the file has an unknown .sqz version {version!r}")
    return header


def _load_tensors(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as load_safetensors

    try:
        return load_safetensors(bytes(data))
    except Exception as exc:  # the Rust parser's own error type, or anything else
        raise CodecError(f"the .sqz container is malformed ({str(exc).splitlines()[0] if str(exc) else exc})") from exc


def _declared_shapes(layers_meta: dict[str, Any], raw_meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape the header gives every tensor (checked against the architecture before building it)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for table, kind in ((layers_meta, "layer"), (raw_meta, "raw tensor")):
        for name, meta in table.items():
            shapes[name] = as_shape(field(meta, "shape", f"{kind} {name}"), f"{kind} {name} shape")
    return shapes


def _check_planned_module(spec: ArchitectureSpec, declared: dict[str, tuple[int, ...]], file_bytes: int,
                          registry: MethodRegistry) -> None:
    """Build the architecture on the meta device (no memory) and refuse it before the real build.

    A header may say ``num_classes=10_000_000`` or describe a ``Linear(40000, 40000)``
    with weights that are not in the file: the shapes it would build are
    compared with the tensors the file declares, and the total with the
    element budget for a file of this size.
    """
    try:
        with torch.device("meta"):
            planned = build_module(spec, registry=registry).state_dict()
    except (CodecError, PluginError):
        raise
    except Exception:  # a builder that needs real tensors: the real build below reports its own errors
        return
    total = sum(int(t.numel()) for t in planned.values())
    check_elements(total, element_budget(file_bytes, current_limits().sqz_elements_per_byte),
                   "the architecture recorded in the .sqz file", "sqz_elements_per_byte", error=CodecError)
    missing = sorted(set(planned) - set(declared))
    unexpected = sorted(set(declared) - set(planned))
    if missing or unexpected:
        detail = f"lacks {missing[0]}" if missing else f"has an unexpected {unexpected[0]}"
        raise CodecError(f"the .sqz file does not fit its architecture: it {detail}")
    for name, t in planned.items():
        if tuple(t.shape) != declared[name]:
            raise CodecError(f"the .sqz file does not fit its architecture: {name} is stored with shape "
                             f"{list(declared[name])} but the architecture builds {list(t.shape)}")


def _build_module(spec_dict: Any, declared: dict[str, tuple[int, ...]], file_bytes: int,
                  registry: MethodRegistry) -> tuple[ArchitectureSpec, torch.nn.Module]:
    try:
        spec = ArchitectureSpec.from_dict(as_dict(spec_dict, "architecture"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError("the .sqz header's architecture description is incomplete") from exc
    _check_planned_module(spec, declared, file_bytes, registry)
    try:
        module = build_module(spec, registry=registry)
    except (CodecError, PluginError):
        raise  # a missing plugin is actionable as it is: install it
    except SqueezeStudioError as exc:
        raise CodecError(f"the model's architecture could not be rebuilt from the file: {exc}") from exc
    except Exception as exc:
        raise CodecError(f"the model's architecture could not be rebuilt from the file ({type(exc).__name__}: "
                         f"{exc})") from exc
    return spec, module


def _handle_fields(header: dict[str, Any]) -> tuple[InputSpec, list[str], str]:
    try:
        input_spec = InputSpec.from_dict(as_dict(field(header, "input_spec", "top level"), "input_spec"))
    except (KeyError, TypeError, ValueError, PreprocessingError) as exc:
        raise CodecError("the .sqz header's input description is incomplete or invalid") from exc
    names = field(header, "class_names", "top level")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CodecError("the .sqz header's class_names must be a list of strings")
    return input_spec, list(names), as_str(field(header, "name", "top level"), "name")


def decode_container(data: bytes, source_path: Optional[Path] = None,
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None, *, registry: MethodRegistry) -> CompressedModel:
    """Validate and decode a whole .sqz file into a :class:`CompressedModel`.

    ``registry`` holds the methods that replay architecture modifications and
    decode custom encodings.
    """
    data = bytes(data)
    header = read_header(data)
    tensors = _load_tensors(data)
    checksum = as_int(field(header, "checksum", "top level"), "checksum", 0, 2 ** 32 - 1)
    if _checksum(tensors) != checksum:
        raise CodecError("the .sqz file's data does not match its checksum; the file is corrupt")
    layers_meta = as_dict(field(header, "layers", "top level"), "layers")
    raw_meta = as_dict(field(header, "raw", "top level"), "raw")
    input_spec, class_names, name = _handle_fields(header)
    extras = {k: as_dict(field(header, k, "top level"), k) for k in ("recipe", "metrics", "provenance")}
    spec, module = _build_module(field(header, "architecture", "top level"),
                                 _declared_shapes(layers_meta, raw_meta), len(data), registry)
    state = module.state_dict()
    declared = set(layers_meta) | set(raw_meta)
    if set(layers_meta) & set(raw_meta) or declared != set(state):
        missing = sorted(set(state) - declared)
        unexpected = sorted(declared - set(state))
        detail = f"lacks {missing[0]}" if missing else f"has an unexpected {unexpected[0] if unexpected else 'duplicate'}"
        raise CodecError(f"the .sqz file does not fit its architecture: it {detail}")
    blob, raw = data_tensors(tensors)
    spans = stream_spans(layers_meta, len(blob))
    new_state: dict[str, torch.Tensor] = {}
    encodings: dict[str, WeightEncoding] = {}
    for i, (pname, meta) in enumerate(layers_meta.items()):
        check(cancel)
        report(progress, i / max(len(layers_meta), 1), f"decoding {pname}")
        used: set[str] = set()

        def take(part: str, _p: str = pname, _used: set[str] = used) -> bytes:
            span = spans[_p].get(part)
            if span is None or part in _used:
                raise CodecError(f"the .sqz file lacks the byte stream {part} of {_p}")
            _used.add(part)
            return blob[span[0]:span[0] + span[1]]

        target = state[pname]
        enc = decode_layer(pname, meta, take, tuple(target.shape))
        leftover = sorted(set(spans[pname]) - used)
        if leftover:
            raise CodecError(f"the .sqz file declares a stream {leftover[0]} of {pname} that its encoding does not use")
        encodings[pname] = enc
        new_state[pname] = torch.from_numpy(np.ascontiguousarray(_decoded(pname, enc, registry))).to(target.dtype)
    new_state.update(unpack_raw(raw_meta, raw, state))
    try:
        module.load_state_dict(new_state, strict=True)
    except (RuntimeError, ValueError) as exc:
        raise CodecError(f"the decoded weights do not fit the model ({str(exc).splitlines()[0]})") from exc
    module.eval()
    handle = ModelHandle(module=module, name=name, input_spec=input_spec, class_names=class_names,
                         source_format="sqz", source_path=source_path, architecture=spec)
    try:
        restore_output_semantics(handle, as_dict(header.get("outputs", {}), "outputs"))
    except ValueError as exc:
        raise CodecError(f"the .sqz header's output description is invalid ({exc})") from None
    report(progress, 1.0, "decoded")
    return CompressedModel(handle=handle, encodings=encodings, recipe=extras["recipe"],
                           metrics=metrics_from_file(extras["metrics"]), provenance=extras["provenance"])
