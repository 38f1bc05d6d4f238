"""A malformed .sqz file fails with one CodecError, never an IndexError/ValueError/MemoryError."""

from __future__ import annotations

import json
import struct
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from squeezestudio.core.compression.codec import decode_sqz, encode_sqz, load_sqz
from squeezestudio.core.compression.codec.sqz_format import METADATA_KEY, _checksum, read_header
from squeezestudio.core.compression.codec.sqz_layout import pack_raw, pack_streams
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.errors import CodecError

from test_sqz_cases import make_cm, CODEC_REGISTRY  # sibling module


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid() -> bytes:
    """A pruned, entropy-coded codebook model: positions, Huffman symbols, codebook, raw tensors."""
    data = encode_sqz(make_cm("codebook_shared", True), registry=CODEC_REGISTRY)
    fc = read_header(data)["layers"]["fc.weight"]
    assert fc["positions"]["coding"] == fc["symbols"]["coding"] == "huffman"  # so the lies below reach the decoder
    return data


def _decode_or_codec_error(data: bytes) -> CompressedModel | None:
    """Decoding either succeeds or raises CodecError; any other exception fails the test."""
    try:
        return decode_sqz(data, registry=CODEC_REGISTRY)
    except CodecError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


Parts = dict[str, dict[str, bytes]]
Edit = Callable[[dict[str, Any], Parts, dict[str, torch.Tensor], dict[str, torch.Tensor]], None]


def _rewrite(data: bytes, edit: Edit, fix_checksum: bool = True,
             after: Callable[[dict[str, Any], dict[str, torch.Tensor]], None] | None = None) -> bytes:
    """Re-save a valid file after ``edit`` changed its header, streams, raw tensors and/or tensors.

    ``edit`` sees each layer's streams and each raw tensor as separate values;
    they are packed back into the ``streams``/``raw`` tensors with consistent
    ranges (a raw tensor whose declaration was removed is left out), so a lie
    about a stream's content reaches the layer decoder. ``after`` may then lie
    about the ranges themselves.
    """
    header, tensors = read_header(data), dict(load_safetensors(data))
    blob, raw = tensors["streams"].numpy().tobytes(), tensors["raw"].numpy().tobytes()
    parts = {name: {part: blob[o:o + n] for part, (o, n) in m["streams"].items()}
             for name, m in header["layers"].items()}
    raws = {}
    for name, m in header["raw"].items():
        like = tensors_like(m)
        nbytes = like.numel() * like.element_size()
        chunk = bytearray(raw[m["offset"]:m["offset"] + nbytes])
        raws[name] = torch.frombuffer(chunk, dtype=like.dtype).reshape(like.shape) if nbytes else like
    edit(header, parts, raws, tensors)
    blob, spans = pack_streams(parts)
    for name, span in spans.items():
        if isinstance(header["layers"], dict) and isinstance(header["layers"].get(name), dict):
            header["layers"][name]["streams"] = span
    raw, raw_meta = pack_raw({n: t for n, t in raws.items() if n in header["raw"]})
    for name, m in raw_meta.items():
        header["raw"][name]["offset"] = m["offset"]
    tensors["streams"] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    tensors["raw"] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if after is not None:
        after(header, tensors)
    if fix_checksum:
        header["checksum"] = _checksum(tensors)
    return save_safetensors(tensors, metadata={METADATA_KEY: json.dumps(header, separators=(",", ":"))})


def tensors_like(meta: dict[str, Any]) -> torch.Tensor:
    """An empty tensor of a raw declaration's dtype and shape (to read its bytes back)."""
    return torch.zeros(meta["shape"], dtype=getattr(torch, meta["dtype"]))


def _data_start(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


@_SETTINGS
@given(garbage=st.binary(max_size=400))
def test_random_bytes(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(garbage, registry=CODEC_REGISTRY)


@_SETTINGS
@given(body=st.binary(max_size=200))
def test_random_bytes_behind_a_plausible_length(body: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(struct.pack("<Q", len(body)) + body, registry=CODEC_REGISTRY)


def test_truncation_at_every_step(valid: bytes) -> None:
    step = max(1, len(valid) // 97)
    for cut in list(range(0, len(valid), step)) + [len(valid) - 1]:
        with pytest.raises(CodecError):
            decode_sqz(valid[:cut], registry=CODEC_REGISTRY)


def test_appended_bytes_are_rejected(valid: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(valid + b"\0", registry=CODEC_REGISTRY)


@_SETTINGS
@given(data=st.data())
def test_bit_flips_anywhere(valid: bytes, data: st.DataObject) -> None:
    """A flip in the header may leave a loadable file (a renamed class); never another exception."""
    pos = data.draw(st.integers(0, len(valid) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = bytearray(valid)
    mutated[pos] ^= 1 << bit
    _decode_or_codec_error(bytes(mutated))


@_SETTINGS
@given(data=st.data())
def test_bit_flips_in_the_data_are_always_caught(valid: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(_data_start(valid), len(valid) - 1))
    mutated = bytearray(valid)
    mutated[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CodecError, match="checksum"):
        decode_sqz(bytes(mutated), registry=CODEC_REGISTRY)


def _layer(header: dict[str, Any], name: str = "fc.weight") -> dict[str, Any]:
    return header["layers"][name]


def _other(stream: dict[str, Any]) -> str:
    return "fixed" if stream["coding"] == "huffman" else "huffman"


LIES: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], None]] = {
    "kept too high": lambda h, p, r, t: _layer(h).update(kept=_layer(h)["kept"] + 1),
    "kept too low": lambda h, p, r, t: _layer(h).update(kept=_layer(h)["kept"] - 1),
    "kept beyond numel": lambda h, p, r, t: _layer(h).update(kept=10 ** 12),
    "position count": lambda h, p, r, t: _layer(h)["positions"].update(count=_layer(h)["positions"]["count"] + 3),
    "position count huge": lambda h, p, r, t: _layer(h)["positions"].update(count=10 ** 15),
    "gap width": lambda h, p, r, t: _layer(h)["positions"].update(width=_layer(h)["positions"]["width"] + 1),
    "gap width 99": lambda h, p, r, t: _layer(h)["positions"].update(width=99),
    "position coding": lambda h, p, r, t: _layer(h)["positions"].update(coding=_other(_layer(h)["positions"])),
    "no positions": lambda h, p, r, t: _layer(h).update(positions=None),
    "bits": lambda h, p, r, t: _layer(h).update(bits=2),
    "bits zero": lambda h, p, r, t: _layer(h).update(bits=0),
    "shape": lambda h, p, r, t: _layer(h).update(shape=[10, 255]),
    "huge shape": lambda h, p, r, t: _layer(h).update(shape=[2 ** 40, 2 ** 40]),
    "negative shape": lambda h, p, r, t: _layer(h).update(shape=[-1, 256]),
    "string kept": lambda h, p, r, t: _layer(h).update(kept="896"),
    "kind": lambda h, p, r, t: _layer(h).update(kind="float32"),
    "unknown kind": lambda h, p, r, t: _layer(h).update(kind="float8"),
    "symbol coding": lambda h, p, r, t: _layer(h)["symbols"].update(coding=_other(_layer(h)["symbols"])),
    "symbol dtype": lambda h, p, r, t: _layer(h)["symbols"].update(dtype="float32"),
    "codebook shape": lambda h, p, r, t: _layer(h)["codebook"].update(shape=[17]),
    "codebook too small": lambda h, p, r, t: (_layer(h)["codebook"].update(shape=[2]),
                                              p["fc.weight"].update(codebook=p["fc.weight"]["codebook"][:8])),
    "codebook dtype": lambda h, p, r, t: _layer(h)["codebook"].update(dtype="object"),
    "missing layer": lambda h, p, r, t: h["layers"].pop("fc.weight"),
    "missing stream": lambda h, p, r, t: p["fc.weight"].pop("symbols"),
    "extra stream": lambda h, p, r, t: p["fc.weight"].update(extra=b"\1\2\3"),
    "extra tensor": lambda h, p, r, t: t.update({"extra": torch.zeros(3, dtype=torch.uint8)}),
    "short stream": lambda h, p, r, t: p["fc.weight"].update(symbols=p["fc.weight"]["symbols"][:-1]),
    "long stream": lambda h, p, r, t: p["fc.weight"].update(positions=p["fc.weight"]["positions"] + b"\0"),
    "raw tensor shape": lambda h, p, r, t: (r.update({"fc.bias": torch.zeros(11)}), h["raw"]["fc.bias"].update(shape=[11])),
    "raw tensor dtype": lambda h, p, r, t: (r.update({"fc.bias": torch.zeros(10, dtype=torch.float64)}),
                                            h["raw"]["fc.bias"].update(dtype="float64")),
    "raw dtype unknown": lambda h, p, r, t: h["raw"]["fc.bias"].update(dtype="complex64"),
    "layer streams missing": lambda h, p, r, t: p.pop("fc.weight"),
    "raw not declared": lambda h, p, r, t: h["raw"].pop("fc.bias"),
    "layers not a dict": lambda h, p, r, t: h.update(layers=[]),
    "no checksum": lambda h, p, r, t: h.pop("checksum"),
    "architecture kind": lambda h, p, r, t: h.update(architecture={"kind": "martian"}),
    "architecture missing": lambda h, p, r, t: h.update(architecture=None),
    "class names": lambda h, p, r, t: h.update(class_names="0123456789"),
    "input spec": lambda h, p, r, t: h.update(input_spec={"channels": 1}),
    "wrong format": lambda h, p, r, t: h.update(format="onnx"),
    "version 0": lambda h, p, r, t: h.update(version=0),
    "version text": lambda h, p, r, t: h.update(version="1"),
}


def _streams(h: dict[str, Any], name: str = "fc.weight") -> dict[str, list[int]]:
    return h["layers"][name]["streams"]


def _raw(h: dict[str, Any], name: str = "fc.bias") -> dict[str, Any]:
    return h["raw"][name]


# Lies about where things lie, told after the data was packed consistently.
RANGE_LIES: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], None]] = {
    "stream past the end": lambda h, t: _streams(h)["symbols"].__setitem__(1, 10 ** 9),
    "stream offset past the end": lambda h, t: _streams(h)["symbols"].__setitem__(0, 10 ** 9),
    "negative stream offset": lambda h, t: _streams(h)["symbols"].__setitem__(0, -1),
    "overlapping streams": lambda h, t: _streams(h)["symbols"].__setitem__(0, _streams(h)["symbols"][0] - 1),
    "gap between streams": lambda h, t: (_streams(h)["symbols"].__setitem__(0, _streams(h)["symbols"][0] + 1),
                                         _streams(h)["symbols"].__setitem__(1, _streams(h)["symbols"][1] - 1)),
    "stream span not a pair": lambda h, t: _streams(h).update(symbols=[_streams(h)["symbols"][0]]),
    "stream span text": lambda h, t: _streams(h).update(symbols="0:10"),
    "streams not a dict": lambda h, t: h["layers"]["fc.weight"].update(streams=[]),
    "trailing stream bytes": lambda h, t: t.update(streams=torch.cat([t["streams"], torch.zeros(2, dtype=torch.uint8)])),
    "trailing raw bytes": lambda h, t: t.update(raw=torch.cat([t["raw"], torch.zeros(4, dtype=torch.uint8)])),
    "raw missing offset": lambda h, t: _raw(h).pop("offset"),
    "raw misaligned": lambda h, t: _raw(h).update(offset=_raw(h)["offset"] + 1),
    "raw past the end": lambda h, t: _raw(h).update(offset=10 ** 9),
    "raw negative offset": lambda h, t: _raw(h).update(offset=-4),
    "raw overlapping": lambda h, t: _raw(h).update(offset=_raw(h)["offset"] - 4),
    "streams tensor typed": lambda h, t: t.update(streams=t["streams"].to(torch.int16)),
    "raw tensor 2-d": lambda h, t: t.update(raw=t["raw"].reshape(-1, 2)),
    "no raw tensor": lambda h, t: t.pop("raw"),
}


@pytest.mark.parametrize("lie", sorted(RANGE_LIES))
def test_lying_ranges(valid: bytes, lie: str) -> None:
    mutated = _rewrite(valid, lambda h, p, r, t: None, after=RANGE_LIES[lie])
    with pytest.raises(CodecError):
        decode_sqz(mutated, registry=CODEC_REGISTRY)


def test_rewrite_without_lies_still_loads(valid: bytes) -> None:
    """The helper itself repacks faithfully, so each lie above is what makes its file fail."""
    assert _rewrite(valid, lambda h, p, r, t: None) == valid


@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_headers(valid: bytes, lie: str) -> None:
    mutated = _rewrite(valid, LIES[lie], fix_checksum=lie != "no checksum")
    with pytest.raises(CodecError):
        decode_sqz(mutated, registry=CODEC_REGISTRY)


def test_newer_version_says_to_update(valid: bytes) -> None:
    with pytest.raises(CodecError, match="update SqueezeStudio"):
        decode_sqz(_rewrite(valid, lambda h, p, r, t: h.update(version=2)), registry=CODEC_REGISTRY)


@_SETTINGS
@given(data=st.data())
def test_random_numbers_in_the_layer_header(valid: bytes, data: st.DataObject) -> None:
    """Any integer field of a layer set to any value: a loadable file or a CodecError."""
    header = read_header(valid)
    targets = [(name, key, None) for name, m in header["layers"].items() for key, v in m.items()
               if isinstance(v, int)]
    targets += [(name, key, sub) for name, m in header["layers"].items() for key, v in m.items()
                if isinstance(v, dict) for sub, w in v.items() if isinstance(w, int)]
    targets += [(name, "streams", (part, i)) for name, m in header["layers"].items()
                for part in m["streams"] for i in (0, 1)]  # stream ranges: [offset, length]
    name, key, sub = data.draw(st.sampled_from(targets))
    value = data.draw(st.one_of(st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 40)))

    def edit(h: dict[str, Any], p: Parts, r: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> None:
        if isinstance(sub, tuple):
            h["layers"][name][key][sub[0]][sub[1]] = value
        elif sub is None:
            h["layers"][name][key] = value
        else:
            h["layers"][name][key][sub] = value

    after = edit if key == "streams" else None  # ranges are rewritten by packing, so lie after it
    _decode_or_codec_error(_rewrite(valid, (lambda h, p, r, t: None) if after else edit, after=after and
                                    (lambda h, t: edit(h, {}, {}, t))))


@_SETTINGS
@given(data=st.data())
def test_random_raw_offsets(valid: bytes, data: st.DataObject) -> None:
    """Any raw tensor's offset set to any value: a loadable file or a CodecError."""
    names = sorted(read_header(valid)["raw"])
    name = data.draw(st.sampled_from(names))
    value = data.draw(st.one_of(st.integers(-2 ** 70, 2 ** 70), st.integers(-9, 400)))
    _decode_or_codec_error(_rewrite(valid, lambda h, p, r, t: None,
                                    after=lambda h, t: h["raw"][name].update(offset=value)))


def test_missing_and_unreadable_paths(tmp_path) -> None:
    with pytest.raises(CodecError, match="cannot read"):
        load_sqz(tmp_path / "absent.sqz", registry=CODEC_REGISTRY)
    with pytest.raises(CodecError, match="cannot read"):
        load_sqz(tmp_path, registry=CODEC_REGISTRY)
    empty = tmp_path / "empty.sqz"
    empty.write_bytes(b"")
    with pytest.raises(CodecError, match="too short"):
        load_sqz(empty, registry=CODEC_REGISTRY)
