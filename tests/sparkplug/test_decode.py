"""The Sparkplug B decoder: columns, names and datatypes from births, templates, datasets, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from gongyun.sparkplug import payload as spb
from gongyun.sparkplug import values as spbv
from gongyun.sparkplug.decode import Births, Metric, Metrics, decode, decode_bytes, quality_of, sample_value
from gongyun.sparkplug.errors import SparkplugPayloadInvalid

T = spb.SpbType
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def payload(metrics: list[tuple[str, Any, spb.SpbType, int | None]], ts: int = NOW_MS) -> bytes:
    p = spb.Payload()
    p.timestamp = ts
    for name, value, dtype, mts in metrics:
        m = p.metrics.add()
        m.name = name
        if mts is not None:
            m.timestamp = mts
        spb.set_metric_value(m, value, dtype)
    return bytes(p.SerializeToString())


def test_doubles_become_a_float_column() -> None:
    got = decode_bytes(payload([(f"m{k}", k + 0.5, T.Double, NOW_MS + k) for k in range(5)])).metrics
    assert got.names == [f"m{k}" for k in range(5)]
    assert isinstance(got.values, np.ndarray) and got.values.tolist() == [k + 0.5 for k in range(5)]
    assert got.ts_ms.tolist() == [NOW_MS + k for k in range(5)]


def test_other_types_zeros_nulls_and_missing_timestamps() -> None:
    data = payload(
        [
            ("zero", 0.0, T.Double, None),
            ("f", 1.5, T.Float, None),
            ("i", -3, T.Int32, NOW_MS - 1),
            ("b", True, T.Boolean, None),
            ("s", "x", T.String, None),
            ("null", None, T.Double, None),
        ]
    )
    got = decode_bytes(data).metrics
    assert got.values == [0.0, 1.5, -3, True, "x", None]
    assert got.ts_ms.tolist() == [NOW_MS] * 2 + [NOW_MS - 1] + [NOW_MS] * 3
    assert len(decode_bytes(payload([])).metrics) == 0
    with pytest.raises(SparkplugPayloadInvalid):
        decode_bytes(b"\xff\xff\xff")


def test_data_takes_names_and_datatypes_from_the_birth() -> None:
    births = Births()
    birth = spb.Payload(timestamp=NOW_MS, seq=1)
    for alias, (name, value, dtype) in enumerate([("temp", 1.5, T.Double), ("level", -7, T.Int16)], 1):
        m = birth.metrics.add(name=name, alias=alias)
        spb.set_metric_value(m, value, dtype)
    born = decode(birth, births, "dev", birth=True)
    assert born.metrics.names == ["temp", "level"] and born.metrics.value_list() == [1.5, -7]
    data = spb.Payload(timestamp=NOW_MS, seq=2)
    data.metrics.add(alias=1, double_value=2.5)
    data.metrics.add(alias=2, int_value=(-9) & 0xFFFFFFFF)  # no datatype: the birth says Int16
    data.metrics.add(alias=3, double_value=1.0)  # never born
    got = decode(data, births, "dev")
    assert got.unknown_aliases == 1
    assert got.metrics.names == ["temp", "level"] and got.metrics.value_list() == [2.5, -9]
    assert got.metrics.datatypes == [int(T.Double), int(T.Int16)]
    assert decode(data, births, "other").unknown_aliases == 3  # aliases are per device


def test_template_members_become_rows_and_malformed_metrics_are_dropped() -> None:
    pid = spbv.Template([spbv.Member("Kp", T.Float, 1.0)], is_definition=True)
    recipe_def = spbv.Template(
        [
            spbv.Member("TargetWeight", T.Double, 0.0),
            spbv.Member("Batch", T.Int32, 0),
            spbv.Member("Loop", T.Template, spbv.Template([], ref="Pid")),
            spbv.Member("Product", T.String, "water"),
        ],
        is_definition=True,
    )
    nbirth = spb.Payload(timestamp=NOW_MS, seq=0)
    for name, definition in (("Pid", pid), ("Recipe", recipe_def)):
        spbv.set_value(nbirth.metrics.add(name=name), definition, T.Template)
    births = Births()
    assert births.node_birth(nbirth) == {}
    inner = spbv.Template([spbv.Member("Kp", T.Float, 0.5)], ref="Pid")
    recipe = spbv.Template(
        [
            spbv.Member("TargetWeight", T.Double, 12.5),
            spbv.Member("Batch", T.Int32, -4),
            spbv.Member("Loop", T.Template, inner),
        ],
        ref="Recipe",
    )
    table = spbv.DataSet(("lot", "kg"), (T.String, T.Double), (("L1", 1.0),))
    p = spb.Payload(timestamp=NOW_MS, seq=1)
    p.metrics.add(name="speed", datatype=int(T.Double), double_value=3.0)
    spbv.set_value(p.metrics.add(name="Recipe", timestamp=NOW_MS - 5), recipe, T.Template)
    spbv.set_value(p.metrics.add(name="Weighings"), table, T.DataSet)
    bad = p.metrics.add(name="Broken", datatype=int(T.DataSet))
    bad.dataset_value.num_of_columns = 2
    bad.dataset_value.columns.append("only-one")
    got = decode(p, births, "dev", birth=True)
    rows = got.metrics
    assert rows.names == [
        "speed",
        "Recipe/TargetWeight",
        "Recipe/Batch",
        "Recipe/Loop/Kp",
        "Recipe/Product",  # a birth carries every member: the definition's default
        "Weighings",
    ]
    assert rows.value_list()[:5] == [3.0, 12.5, -4, 0.5, "water"] and rows.value_list()[5] == table
    assert rows.ts_ms.tolist()[1:5] == [NOW_MS - 5] * 4
    assert [kind for kind, _ in got.errors] == ["dataset"] and "Broken" in got.errors[0][1]
    assert births.instance_refs[("dev", "Recipe")] == "Recipe"


def test_rows_properties_and_sample_values() -> None:
    p = spb.Payload(timestamp=NOW_MS, seq=1)
    m = p.metrics.add(name="a", datatype=int(T.Double), double_value=1.0)
    spbv.encode_properties(m.properties, {"Quality": (T.Int32, 64), "gy_seq": (T.UInt64, 7)})
    p.metrics.add(name="b", datatype=int(T.Bytes), bytes_value=b"\x01\x02")
    p.metrics.add(name="c", datatype=int(T.Double), double_value=2.0, timestamp=2**64 - 1)
    got = decode(p).metrics
    assert got.column("gy_seq") == [7, None, None]
    assert [quality_of(props).value for props in got.properties] == ["uncertain", "good", "good"]
    rows = list(got.rows())
    assert rows[0] == Metric("a", 1.0, NOW, int(T.Double), {"Quality": 64, "gy_seq": 7})
    assert sample_value(rows[1].value) == "0102"
    assert rows[2].ts.year == 9999  # absurd, but a datetime: a consumer rejects it as in the future
    assert got.without({"b"}).names == ["a", "c"]
    assert Metrics.of(rows).names == ["a", "b", "c"]
