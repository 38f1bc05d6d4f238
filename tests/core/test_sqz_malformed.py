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
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.errors import CodecError

from test_sqz_cases import make_cm, tiny_arch  # noqa: F401  (sibling module; fixture)

pytestmark = pytest.mark.usefixtures("tiny_arch")
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid() -> bytes:
    """A pruned, entropy-coded codebook model: positions, Huffman symbols, codebook, raw tensors."""
    data = encode_sqz(make_cm("codebook_shared", True))
    fc = read_header(data)["layers"]["fc.weight"]
    assert fc["positions"]["coding"] == fc["symbols"]["coding"] == "huffman"  # so the lies below reach the decoder
    return data


def _decode_or_codec_error(data: bytes) -> CompressedModel | None:
    """Decoding either succeeds or raises CodecError; any other exception fails the test."""
    try:
        return decode_sqz(data)
    except CodecError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


def _rewrite(data: bytes, edit: Callable[[dict[str, Any], dict[str, torch.Tensor]], None],
             fix_checksum: bool = True) -> bytes:
    """Re-save a valid file after ``edit`` changed its header and/or tensors (a consistent container)."""
    header, tensors = read_header(data), dict(load_safetensors(data))
    edit(header, tensors)
    if fix_checksum:
        header["checksum"] = _checksum(tensors)
    return save_safetensors(tensors, metadata={METADATA_KEY: json.dumps(header)})


def _data_start(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


@_SETTINGS
@given(garbage=st.binary(max_size=400))
def test_random_bytes(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(garbage)


@_SETTINGS
@given(body=st.binary(max_size=200))
def test_random_bytes_behind_a_plausible_length(body: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(struct.pack("<Q", len(body)) + body)


def test_truncation_at_every_step(valid: bytes) -> None:
    step = max(1, len(valid) // 97)
    for cut in list(range(0, len(valid), step)) + [len(valid) - 1]:
        with pytest.raises(CodecError):
            decode_sqz(valid[:cut])


def test_appended_bytes_are_rejected(valid: bytes) -> None:
    with pytest.raises(CodecError):
        decode_sqz(valid + b"\0")


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
        decode_sqz(bytes(mutated))


def _layer(header: dict[str, Any], name: str = "fc.weight") -> dict[str, Any]:
    return header["layers"][name]


def _other(stream: dict[str, Any]) -> str:
    return "fixed" if stream["coding"] == "huffman" else "huffman"


LIES: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], None]] = {
    "kept too high": lambda h, t: _layer(h).update(kept=_layer(h)["kept"] + 1),
    "kept too low": lambda h, t: _layer(h).update(kept=_layer(h)["kept"] - 1),
    "kept beyond numel": lambda h, t: _layer(h).update(kept=10 ** 12),
    "position count": lambda h, t: _layer(h)["positions"].update(count=_layer(h)["positions"]["count"] + 3),
    "position count huge": lambda h, t: _layer(h)["positions"].update(count=10 ** 15),
    "gap width": lambda h, t: _layer(h)["positions"].update(width=_layer(h)["positions"]["width"] + 1),
    "gap width 99": lambda h, t: _layer(h)["positions"].update(width=99),
    "position coding": lambda h, t: _layer(h)["positions"].update(coding=_other(_layer(h)["positions"])),
    "no positions": lambda h, t: _layer(h).update(positions=None),
    "bits": lambda h, t: _layer(h).update(bits=2),
    "bits zero": lambda h, t: _layer(h).update(bits=0),
    "shape": lambda h, t: _layer(h).update(shape=[10, 255]),
    "huge shape": lambda h, t: _layer(h).update(shape=[2 ** 40, 2 ** 40]),
    "negative shape": lambda h, t: _layer(h).update(shape=[-1, 256]),
    "string kept": lambda h, t: _layer(h).update(kept="896"),
    "kind": lambda h, t: _layer(h).update(kind="float32"),
    "unknown kind": lambda h, t: _layer(h).update(kind="float8"),
    "symbol coding": lambda h, t: _layer(h)["symbols"].update(coding=_other(_layer(h)["symbols"])),
    "symbol dtype": lambda h, t: _layer(h)["symbols"].update(dtype="float32"),
    "codebook shape": lambda h, t: _layer(h)["codebook"].update(shape=[17]),
    "codebook too small": lambda h, t: (_layer(h)["codebook"].update(shape=[2]),
                                        t.update({"w:fc.weight:codebook": t["w:fc.weight:codebook"][:8].clone()})),
    "codebook dtype": lambda h, t: _layer(h)["codebook"].update(dtype="object"),
    "missing layer": lambda h, t: h["layers"].pop("fc.weight"),
    "missing stream": lambda h, t: t.pop("w:fc.weight:symbols"),
    "extra tensor": lambda h, t: t.update({"w:fc.weight:extra": torch.zeros(3, dtype=torch.uint8)}),
    "short stream": lambda h, t: t.update({"w:fc.weight:symbols": t["w:fc.weight:symbols"][:-1].clone()}),
    "long stream": lambda h, t: t.update({"w:fc.weight:positions": torch.cat(
        [t["w:fc.weight:positions"], torch.zeros(1, dtype=torch.uint8)])}),
    "raw tensor shape": lambda h, t: t.update({"raw:fc.bias": torch.zeros(11)}),
    "raw tensor dtype": lambda h, t: t.update({"raw:fc.bias": torch.zeros(10, dtype=torch.float64)}),
    "raw not declared": lambda h, t: h["raw"].pop("fc.bias"),
    "layers not a dict": lambda h, t: h.update(layers=[]),
    "no checksum": lambda h, t: h.pop("checksum"),
    "architecture kind": lambda h, t: h.update(architecture={"kind": "martian"}),
    "architecture missing": lambda h, t: h.update(architecture=None),
    "class names": lambda h, t: h.update(class_names="0123456789"),
    "input spec": lambda h, t: h.update(input_spec={"channels": 1}),
    "wrong format": lambda h, t: h.update(format="onnx"),
    "version 0": lambda h, t: h.update(version=0),
    "version text": lambda h, t: h.update(version="1"),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_headers(valid: bytes, lie: str) -> None:
    mutated = _rewrite(valid, LIES[lie], fix_checksum=lie != "no checksum")
    with pytest.raises(CodecError):
        decode_sqz(mutated)


def test_newer_version_says_to_update(valid: bytes) -> None:
    with pytest.raises(CodecError, match="update SqueezeStudio"):
        decode_sqz(_rewrite(valid, lambda h, t: h.update(version=2)))


@_SETTINGS
@given(data=st.data())
def test_random_numbers_in_the_layer_header(valid: bytes, data: st.DataObject) -> None:
    """Any integer field of a layer set to any value: a loadable file or a CodecError."""
    header = read_header(valid)
    targets = [(name, key, None) for name, m in header["layers"].items() for key, v in m.items()
               if isinstance(v, int)]
    targets += [(name, key, sub) for name, m in header["layers"].items() for key, v in m.items()
                if isinstance(v, dict) for sub, w in v.items() if isinstance(w, int)]
    name, key, sub = data.draw(st.sampled_from(targets))
    value = data.draw(st.one_of(st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 40)))

    def edit(h: dict[str, Any], t: dict[str, torch.Tensor]) -> None:
        if sub is None:
            h["layers"][name][key] = value
        else:
            h["layers"][name][key][sub] = value

    _decode_or_codec_error(_rewrite(valid, edit))


def test_missing_and_unreadable_paths(tmp_path) -> None:
    with pytest.raises(CodecError, match="cannot read"):
        load_sqz(tmp_path / "absent.sqz")
    with pytest.raises(CodecError, match="cannot read"):
        load_sqz(tmp_path)
    empty = tmp_path / "empty.sqz"
    empty.write_bytes(b"")
    with pytest.raises(CodecError, match="too short"):
        load_sqz(empty)
