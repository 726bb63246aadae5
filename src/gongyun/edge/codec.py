"""Register codec: Modbus 16-bit registers <-> typed values with byte/word order, scale and offset."""

from __future__ import annotations

import math
import struct
from enum import StrEnum

from gongyun.edge.errors import DecodeError


class DataType(StrEnum):
    """Tag data types a profile may declare."""

    int16 = "int16"
    uint16 = "uint16"
    int32 = "int32"
    uint32 = "uint32"
    int64 = "int64"
    uint64 = "uint64"
    float32 = "float32"
    float64 = "float64"
    bool = "bool"
    string = "string"


class Order(StrEnum):
    """Byte order within a register, or word order across registers."""

    big = "big"
    little = "little"


_STRUCT = {
    DataType.int16: ">h",
    DataType.uint16: ">H",
    DataType.int32: ">i",
    DataType.uint32: ">I",
    DataType.int64: ">q",
    DataType.uint64: ">Q",
    DataType.float32: ">f",
    DataType.float64: ">d",
}

Value = float | int | bool | str


def register_count(dtype: DataType, length: int = 0) -> int:
    """Number of 16-bit registers a value of ``dtype`` occupies (``length`` bytes for strings)."""
    if dtype is DataType.string:
        return max(1, (length + 1) // 2)
    if dtype is DataType.bool:
        return 1
    return struct.calcsize(_STRUCT[dtype]) // 2


def _to_bytes(registers: list[int], byte_order: Order, word_order: Order) -> bytes:
    regs = list(reversed(registers)) if word_order is Order.little else registers
    out = bytearray()
    for reg in regs:
        if not 0 <= reg <= 0xFFFF:
            raise DecodeError(f"register value {reg} out of range")
        hi, lo = reg >> 8, reg & 0xFF
        out += bytes((lo, hi)) if byte_order is Order.little else bytes((hi, lo))
    return bytes(out)


def _from_bytes(raw: bytes, byte_order: Order, word_order: Order) -> list[int]:
    regs = []
    for i in range(0, len(raw), 2):
        a, b = raw[i], raw[i + 1]
        regs.append((b << 8 | a) if byte_order is Order.little else (a << 8 | b))
    return list(reversed(regs)) if word_order is Order.little else regs


def decode(
    registers: list[int],
    dtype: DataType,
    byte_order: Order = Order.big,
    word_order: Order = Order.big,
    scale: float = 1.0,
    offset: float = 0.0,
) -> Value:
    """Decode registers into a value, then apply ``value * scale + offset`` to numbers."""
    need = register_count(dtype, len(registers) * 2)
    if len(registers) < need:
        raise DecodeError(f"{dtype} needs {need} registers, got {len(registers)}")
    if dtype is DataType.string:
        raw = _to_bytes(registers, byte_order, Order.big)
        return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if dtype is DataType.bool:
        return registers[0] != 0
    (number,) = struct.unpack(_STRUCT[dtype], _to_bytes(registers[:need], byte_order, word_order))
    if dtype in (DataType.float32, DataType.float64) and not math.isfinite(number):
        raise DecodeError(f"{dtype} decoded to non-finite {number}")
    if scale == 1.0 and offset == 0.0:
        return number  # type: ignore[no-any-return]
    return float(number * scale + offset)


def encode(
    value: Value,
    dtype: DataType,
    byte_order: Order = Order.big,
    word_order: Order = Order.big,
    scale: float = 1.0,
    offset: float = 0.0,
    length: int = 0,
) -> list[int]:
    """Encode an engineering value into registers (inverse of :func:`decode`)."""
    if dtype is DataType.string:
        raw = str(value).encode("utf-8")
        size = max(length, len(raw))
        raw = raw.ljust(size + (size % 2), b"\x00")
        return _from_bytes(raw, byte_order, Order.big)
    if dtype is DataType.bool:
        return [1 if value else 0]
    if isinstance(value, str):
        raise DecodeError(f"cannot encode string {value!r} as {dtype}")
    raw_value = (float(value) - offset) / scale if (scale != 1.0 or offset != 0.0) else value
    if dtype in (DataType.float32, DataType.float64):
        packed = struct.pack(_STRUCT[dtype], float(raw_value))
    else:
        try:
            packed = struct.pack(_STRUCT[dtype], round(raw_value))
        except struct.error as exc:
            raise DecodeError(f"{value!r} does not fit {dtype}") from exc
    return _from_bytes(packed, byte_order, word_order)
