"""The two data tensors of a .sqz file: packing, and the checks on every declared range."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.codec.sqz_layout import pack_raw, pack_streams, stream_spans, unpack_raw
from squeezestudio.core.errors import CodecError


def _tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"a": torch.randn(3), "flag": torch.tensor([True, False, True]), "count": torch.tensor(7),
            "half": torch.randn(5).half(), "empty": torch.zeros(0, dtype=torch.int32), "b": torch.randn(2, 2).double()}


def test_raw_round_trip_is_exact_and_aligned() -> None:
    tensors = _tensors()
    blob, meta = pack_raw(tensors)
    assert list(meta) == list(tensors)  # the JSON keeps the model's order
    assert len(blob) == sum(t.numel() * t.element_size() for t in tensors.values())  # widest first: no padding
    for name, t in tensors.items():
        assert meta[name]["offset"] % t.element_size() == 0
    out = unpack_raw(meta, blob, tensors)
    for name, t in tensors.items():
        assert out[name].dtype == t.dtype and torch.equal(out[name], t)


def test_streams_tile_their_tensor() -> None:
    blob, spans = pack_streams({"x": {"positions": b"ab", "symbols": b"cde"}, "y": {"values": b""}})
    assert blob == b"abcde"
    assert spans == {"x": {"positions": [0, 2], "symbols": [2, 3]}, "y": {"values": [5, 0]}}
    meta = {name: {"streams": s} for name, s in spans.items()}
    assert stream_spans(meta, len(blob)) == {"x": {"positions": (0, 2), "symbols": (2, 3)}, "y": {"values": (5, 0)}}
    with pytest.raises(CodecError, match="end"):
        stream_spans(meta, len(blob) + 1)


def _manual_layout(pad: bytes) -> tuple[bytes, dict[str, dict], dict[str, torch.Tensor]]:
    """An int8 tensor of 3 bytes, then alignment padding, then a float32 tensor at offset 4."""
    small, wide = torch.tensor([1, 2, 3], dtype=torch.int8), torch.tensor([1.5, -2.0])
    blob = small.numpy().tobytes() + pad + wide.numpy().tobytes()
    meta = {"s": {"dtype": "int8", "shape": [3], "offset": 0}, "w": {"dtype": "float32", "shape": [2], "offset": 4}}
    return blob, meta, {"s": small, "w": wide}


def test_alignment_padding_must_be_zero() -> None:
    blob, meta, expected = _manual_layout(b"\0")
    assert torch.equal(unpack_raw(meta, blob, expected)["w"], expected["w"])
    blob, meta, expected = _manual_layout(b"\7")
    with pytest.raises(CodecError, match="undeclared"):
        unpack_raw(meta, blob, expected)


def test_a_gap_wider_than_alignment_is_rejected() -> None:
    blob, meta, expected = _manual_layout(b"\0")
    blob = blob[:4] + b"\0" * 4 + blob[4:]
    meta["w"]["offset"] = 8
    with pytest.raises(CodecError):
        unpack_raw(meta, blob, expected)


def test_booleans_other_than_0_or_1_are_rejected() -> None:
    flag = torch.tensor([True, False])
    with pytest.raises(CodecError, match="0 or 1"):
        unpack_raw({"f": {"dtype": "bool", "shape": [2], "offset": 0}}, b"\1\2", {"f": flag})


def test_unstorable_dtype_is_refused() -> None:
    with pytest.raises(CodecError, match="cannot store"):
        pack_raw({"z": torch.zeros(2, dtype=torch.complex64)})
