"""Sparkplug B wire format: the Tahu ``Payload`` message built in code and scalar value mapping.

The descriptor mirrors eclipse/tahu ``sparkplug_b.proto`` (package ``org.eclipse.tahu.protobuf``)
field for field, so payloads are byte-compatible with every Sparkplug B implementation; it is
built with ``descriptor_pb2`` at import, so nothing is generated or downloaded.
"""

from __future__ import annotations

import time
from enum import IntEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError as _PbDecodeError  # type: ignore[import-untyped]
from google.protobuf.message import Message

from gongyun.sparkplug.errors import SparkplugPayloadInvalid

_F = descriptor_pb2.FieldDescriptorProto


class SpbType(IntEnum):
    """Sparkplug B data types (metric ``datatype``)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21


_SCALARS = {
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_VALUE_FIELDS = [
    ("int_value", "uint32"),
    ("long_value", "uint64"),
    ("float_value", "float"),
    ("double_value", "double"),
    ("boolean_value", "bool"),
    ("string_value", "string"),
]
_P = ".org.eclipse.tahu.protobuf.Payload."


def _msg(name: str, fields: list[tuple[str, int, str, str]], oneof_from: int | None = None) -> Any:
    """Build a DescriptorProto; fields are (name, number, label, type-or-message)."""
    msg = descriptor_pb2.DescriptorProto(name=name)
    if oneof_from is not None:
        msg.oneof_decl.add(name="value")
    for fname, number, label, ftype in fields:
        field = msg.field.add(name=fname, number=number)
        field.label = _F.LABEL_REPEATED if label == "repeated" else _F.LABEL_OPTIONAL
        if ftype in _SCALARS:
            field.type = _SCALARS[ftype]
        else:
            field.type = _F.TYPE_MESSAGE
            field.type_name = _P + ftype
        if oneof_from is not None and number >= oneof_from and label == "oneof":
            field.oneof_index = 0
    return msg


def _value_fields(start: int) -> list[tuple[str, int, str, str]]:
    return [(n, start + i, "oneof", t) for i, (n, t) in enumerate(_VALUE_FIELDS)]


def _build() -> tuple[type[Message], descriptor_pool.DescriptorPool]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="gongyun/sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = fdp.message_type.add(name="Payload")
    template = _msg(
        "Template",
        [
            ("version", 1, "optional", "string"),
            ("metrics", 2, "repeated", "Metric"),
            ("parameters", 3, "repeated", "Template.Parameter"),
            ("template_ref", 4, "optional", "string"),
            ("is_definition", 5, "optional", "bool"),
        ],
    )
    template.nested_type.append(
        _msg(
            "Parameter",
            [("name", 1, "optional", "string"), ("type", 2, "optional", "uint32"), *_value_fields(3)],
            oneof_from=3,
        )
    )
    dataset = _msg(
        "DataSet",
        [
            ("num_of_columns", 1, "optional", "uint64"),
            ("columns", 2, "repeated", "string"),
            ("types", 3, "repeated", "uint32"),
            ("rows", 4, "repeated", "DataSet.Row"),
        ],
    )
    dataset.nested_type.append(_msg("DataSetValue", _value_fields(1), oneof_from=1))
    dataset.nested_type.append(_msg("Row", [("elements", 1, "repeated", "DataSet.DataSetValue")]))
    prop_value = _msg(
        "PropertyValue",
        [
            ("type", 1, "optional", "uint32"),
            ("is_null", 2, "optional", "bool"),
            *_value_fields(3),
            ("propertyset_value", 9, "oneof", "PropertySet"),
            ("propertysets_value", 10, "oneof", "PropertySetList"),
        ],
        oneof_from=3,
    )
    prop_set = _msg(
        "PropertySet", [("keys", 1, "repeated", "string"), ("values", 2, "repeated", "PropertyValue")]
    )
    prop_list = _msg("PropertySetList", [("propertyset", 1, "repeated", "PropertySet")])
    metadata = _msg(
        "MetaData",
        [
            ("is_multi_part", 1, "optional", "bool"),
            ("content_type", 2, "optional", "string"),
            ("size", 3, "optional", "uint64"),
            ("seq", 4, "optional", "uint64"),
            ("file_name", 5, "optional", "string"),
            ("file_type", 6, "optional", "string"),
            ("md5", 7, "optional", "string"),
            ("description", 8, "optional", "string"),
        ],
    )
    metric = _msg(
        "Metric",
        [
            ("name", 1, "optional", "string"),
            ("alias", 2, "optional", "uint64"),
            ("timestamp", 3, "optional", "uint64"),
            ("datatype", 4, "optional", "uint32"),
            ("is_historical", 5, "optional", "bool"),
            ("is_transient", 6, "optional", "bool"),
            ("is_null", 7, "optional", "bool"),
            ("metadata", 8, "optional", "MetaData"),
            ("properties", 9, "optional", "PropertySet"),
            *_value_fields(10),
            ("bytes_value", 16, "oneof", "bytes"),
            ("dataset_value", 17, "oneof", "DataSet"),
            ("template_value", 18, "oneof", "Template"),
        ],
        oneof_from=10,
    )
    payload.nested_type.extend([template, dataset, prop_value, prop_set, prop_list, metadata, metric])
    for fname, number, label, ftype in [
        ("timestamp", 1, "optional", "uint64"),
        ("metrics", 2, "repeated", "Metric"),
        ("seq", 3, "optional", "uint64"),
        ("uuid", 4, "optional", "string"),
        ("body", 5, "optional", "bytes"),
    ]:
        field = payload.field.add(name=fname, number=number)
        field.label = _F.LABEL_REPEATED if label == "repeated" else _F.LABEL_OPTIONAL
        if ftype in _SCALARS:
            field.type = _SCALARS[ftype]
        else:
            field.type = _F.TYPE_MESSAGE
            field.type_name = _P + ftype
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))
    return cls, pool


Payload, _POOL = _build()


def now_ms() -> int:
    """Milliseconds since the epoch, as Sparkplug timestamps are."""
    return int(time.time() * 1000)


def parse(data: bytes) -> Any:
    """Decode a Sparkplug B payload; raise SparkplugPayloadInvalid on anything that is not one."""
    msg = Payload()
    try:
        msg.ParseFromString(data)
    except (_PbDecodeError, ValueError, RuntimeError) as exc:
        raise SparkplugPayloadInvalid(f"not a Sparkplug B payload: {exc}") from exc
    return msg


def metric_value(metric: Any) -> float | int | bool | str | None:
    """The scalar a metric carries (None when null or not a scalar: see :mod:`.values` for the rest)."""
    if getattr(metric, "is_null", False):
        return None
    kind = metric.WhichOneof("value")
    if kind not in _SCALAR_KINDS:
        return None
    dtype = metric.datatype if hasattr(metric, "datatype") else metric.type
    return signed(getattr(metric, kind), kind, dtype)


_SCALAR_KINDS = frozenset(name for name, _ in _VALUE_FIELDS)
_BITS = {SpbType.Int8: 8, SpbType.Int16: 16, SpbType.Int32: 32}


def signed(value: Any, kind: str, dtype: int) -> float | int | bool | str:
    """Undo the two's-complement wrapping of signed integers carried in unsigned fields."""
    if kind == "int_value" and dtype in _BITS:
        bits = _BITS[SpbType(dtype)]
        value &= (1 << bits) - 1
        if value >= 1 << (bits - 1):
            value -= 1 << bits
    elif kind == "long_value" and dtype == SpbType.Int64 and value >= 1 << 63:
        value -= 1 << 64
    return value  # type: ignore[no-any-return]


_INT32 = (SpbType.Int8, SpbType.Int16, SpbType.Int32, SpbType.UInt8, SpbType.UInt16, SpbType.UInt32)
_INT64 = (SpbType.Int64, SpbType.UInt64, SpbType.DateTime)


def _as_int(value: float | int | bool | str) -> int:
    if isinstance(value, int):
        return int(value)
    return round(float(value))


def set_metric_value(
    metric: Any, value: float | int | bool | str | None, dtype: SpbType, type_field: str = "datatype"
) -> None:
    """Store ``value`` in the value field for ``dtype`` (``type_field="type"`` for properties).

    A value that cannot be represented in ``dtype`` (text in a number, NaN in an integer) is sent
    as null rather than failing the whole message.
    """
    setattr(metric, type_field, int(dtype))
    if value is None or not set_scalar(metric, value, dtype):
        metric.is_null = True


def value_field(dtype: SpbType) -> str:
    """The oneof member that carries a scalar of ``dtype``."""
    if dtype in _INT32:
        return "int_value"
    if dtype in _INT64:
        return "long_value"
    if dtype is SpbType.Float:
        return "float_value"
    if dtype is SpbType.Double:
        return "double_value"
    if dtype is SpbType.Boolean:
        return "boolean_value"
    return "string_value"


def set_scalar(msg: Any, value: float | int | bool | str, dtype: SpbType) -> bool:
    """Set the value field of ``msg`` for ``dtype``; False when ``value`` cannot be represented."""
    field_name = value_field(dtype)
    try:
        if field_name == "int_value":
            msg.int_value = _as_int(value) & 0xFFFFFFFF
        elif field_name == "long_value":
            msg.long_value = _as_int(value) & 0xFFFFFFFFFFFFFFFF
        elif field_name in ("float_value", "double_value"):
            setattr(msg, field_name, float(value))
        elif field_name == "boolean_value":
            msg.boolean_value = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        else:
            msg.string_value = str(value)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def type_for(value: float | int | bool | str | None) -> SpbType:
    """A Sparkplug type suited to a Python value."""
    if isinstance(value, bool):
        return SpbType.Boolean
    if isinstance(value, int):
        return SpbType.Int64
    if isinstance(value, float):
        return SpbType.Double
    return SpbType.String
