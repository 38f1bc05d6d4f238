"""Fixed-width bit packing: exact sizes, exact round trips, strict checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezestudio.core.compression.codec.bitpack import pack_bits, packed_size, unpack_bits
from squeezestudio.core.errors import CodecError


@settings(max_examples=150, deadline=None)
@given(bits=st.integers(1, 32), data=st.data())
def test_round_trip_any_width(bits: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=300))
    arr = np.asarray(values, dtype=np.uint64)
    packed = pack_bits(arr, bits)
    assert len(packed) == packed_size(len(values), bits) == (len(values) * bits + 7) // 8
    assert np.array_equal(unpack_bits(packed, bits, len(values)), arr)


def test_layout_is_lsb_first() -> None:
    assert pack_bits(np.array([1, 0, 1, 1]), 1) == bytes([0b1101])
    assert pack_bits(np.array([5, 3]), 3) == bytes([0b011101])
    assert pack_bits(np.array([0x1234]), 16) == b"\x34\x12"


def test_large_input_crosses_chunks() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 1 << 5, size=(1 << 20) + 13)
    assert np.array_equal(unpack_bits(pack_bits(values, 5), 5, values.size), values)


@pytest.mark.parametrize("values, bits", [([8], 3), ([-1], 4), ([0.5], 4), ([1], 0), ([1], 33)])
def test_bad_input_is_refused(values, bits: int) -> None:
    with pytest.raises(CodecError):
        pack_bits(np.asarray(values), bits)


def test_wrong_length_and_dirty_padding_are_refused() -> None:
    packed = pack_bits(np.array([1, 2, 3]), 3)  # 9 bits -> 2 bytes
    with pytest.raises(CodecError, match="should be 2 bytes"):
        unpack_bits(packed + b"\0", 3, 3)
    with pytest.raises(CodecError, match="should be 2 bytes"):
        unpack_bits(packed[:1], 3, 3)
    with pytest.raises(CodecError, match="padding"):
        unpack_bits(bytes([packed[0], packed[1] | 0x80]), 3, 3)
    with pytest.raises(CodecError):
        unpack_bits(packed, 3, -1)
