"""Register codec: types, byte and word order, scale and offset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongyun.edge.codec import DataType, Order, decode, encode, register_count
from gongyun.edge.errors import DecodeError


def test_known_vectors() -> None:
    assert encode(1.0, DataType.float32) == [0x3F80, 0x0000]
    assert encode(1.0, DataType.float32, word_order=Order.little) == [0x0000, 0x3F80]
    assert encode(1.0, DataType.float32, byte_order=Order.little) == [0x803F, 0x0000]
    assert encode(-2, DataType.int16) == [0xFFFE]
    assert encode(0x12345678, DataType.uint32) == [0x1234, 0x5678]
    assert decode([0x1234, 0x5678], DataType.uint32, word_order=Order.little) == 0x56781234
    assert decode([0x4142, 0x4300], DataType.string) == "ABC"
    assert decode([0x4241, 0x0043], DataType.string, byte_order=Order.little) == "ABC"


@pytest.mark.parametrize("byte_order", list(Order))
@pytest.mark.parametrize("word_order", list(Order))
@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (DataType.int16, -12345),
        (DataType.uint16, 54321),
        (DataType.int32, -1_234_567_890),
        (DataType.uint32, 4_000_000_000),
        (DataType.int64, -(2**62)),
        (DataType.uint64, 2**63 + 5),
        (DataType.float32, 3.5),
        (DataType.float64, 2.718281828459045),
        (DataType.bool, True),
    ],
)
def test_roundtrip_every_type_and_order(
    dtype: DataType, value: float, byte_order: Order, word_order: Order
) -> None:
    regs = encode(value, dtype, byte_order, word_order)
    assert len(regs) == register_count(dtype)
    assert decode(regs, dtype, byte_order, word_order) == value


@given(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.1, 0.01, 2.0]), st.floats(-100, 100))
def test_scale_offset_roundtrip(value: float, scale: float, offset: float) -> None:
    regs = encode(value, DataType.int32, scale=scale, offset=offset)
    back = decode(regs, DataType.int32, scale=scale, offset=offset)
    assert abs(float(back) - value) <= scale / 2 + 1e-6


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="non-finite"):
        decode([0x7FC0, 0x0000], DataType.float32)
    with pytest.raises(DecodeError, match="needs 2 registers"):
        decode([1], DataType.float32)
    with pytest.raises(DecodeError, match="out of range"):
        decode([70000, 0], DataType.uint32)
    with pytest.raises(DecodeError, match="does not fit"):
        encode(70000, DataType.int16)


def test_reconnect_backoff_doubles_and_resets() -> None:
    from gongyun.edge.drivers.base import Backoff

    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5
