"""Typed values: formats, permissions, reserved types, limits, fuzzing of the decoder."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongyun.errors import InvalidInput
from gongyun.idres import values as V


def test_string_and_shorthand() -> None:
    v = V.decode_value({"index": 1, "type": "URL", "data": "https://example.org/p"})
    assert v.format == "string" and v.public
    j = v.to_json()
    assert j["data"] == {"format": "string", "value": "https://example.org/p"}
    assert j["timestamp"].endswith("Z") and "permissions" not in j
    assert V.decode_value(j).same_content(v)


def test_admin_value_from_pyhandle() -> None:
    raw = {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"index": "200", "handle": "0.NA/88.100", "permissions": "0111"},
        },
    }
    v = V.decode_value(raw)
    assert v.value == {"handle": "0.NA/88.100", "index": 200, "permissions": "011100000000"}


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("base64", "aGVsbG8="),
        ("hex", "00ff10"),
        ("key", "AAEC"),
        ("vlist", [{"handle": "88/a", "index": 300}]),
    ],
)
def test_formats_ok(fmt: str, value: Any) -> None:
    v = V.decode_value({"index": 5, "type": "X", "data": {"format": fmt, "value": value}})
    assert v.format == fmt


def test_site_value_and_urls() -> None:
    v = V.site_value("127.0.0.1", 8080)
    again = V.decode_value(v.to_json())
    assert V.site_urls(again) == ["http://127.0.0.1:8080"]


@pytest.mark.parametrize(
    ("raw", "fieldname"),
    [
        ({"index": 1, "type": "URL", "data": {"format": "blob", "value": "x"}}, "data.format"),
        ({"index": 1, "type": "X", "data": {"format": "hex", "value": "abc"}}, "data.value"),
        ({"index": 1, "type": "X", "data": {"format": "base64", "value": "!!"}}, "data.value"),
        ({"index": 0, "type": "X", "data": "a"}, "index"),
        ({"index": 1, "type": "", "data": "a"}, "type"),
        ({"index": 1, "type": "HS_ADMIN", "data": "a"}, "data.format"),
        ({"index": 1, "type": "EMAIL", "data": "nobody"}, "data.value"),
        ({"index": 1, "type": "X", "data": "a", "ttl": -1}, "ttl"),
        ({"index": 1, "type": "X", "data": "a", "timestamp": "yesterday"}, "timestamp"),
        ({"index": 1, "type": "X", "data": "a", "permissions": "12"}, "permissions"),
        ({"index": 1, "type": "HS_ALIAS", "data": "no-slash"}, "data.value"),
    ],
)
def test_invalid_values(raw: dict[str, Any], fieldname: str) -> None:
    with pytest.raises(V.InvalidValue) as info:
        V.decode_value(raw)
    assert info.value.details.get("field") == fieldname
    assert info.value.status == 400


def test_permissions_and_seckey_hidden() -> None:
    v = V.decode_value({"index": 300, "type": "HS_SECKEY", "data": "secret"})
    assert not v.public and v.permissions == V.ADMIN_ONLY
    w = V.decode_value({"index": 2, "type": "X", "data": "a", "permissions": "1100"})
    assert V.encode_values([v, w], public_only=True) == []
    assert len(V.encode_values([v, w])) == 2


def test_record_limits() -> None:
    with pytest.raises(V.RecordTooLarge):
        V.decode_values([{"index": i + 1, "type": "X", "data": "a"} for i in range(V.MAX_VALUES + 1)])
    with pytest.raises(V.InvalidValue, match="twice"):
        V.decode_values([{"index": 1, "type": "X", "data": "a"}, {"index": 1, "type": "Y", "data": "b"}])
    with pytest.raises(V.InvalidValue):
        V.decode_value({"index": 1, "type": "X", "data": "x" * (V.MAX_DATA_BYTES + 1)})


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=15,
)
formats = st.sampled_from([*V.FORMATS, "other", 3, None])
value_like = st.fixed_dictionaries(
    {
        "index": st.one_of(st.integers(-2, 2**32), st.text(max_size=5)),
        "type": st.one_of(st.text(max_size=8), json_values),
    },
    optional={
        "data": st.one_of(
            st.text(max_size=10), st.fixed_dictionaries({"format": formats, "value": json_values})
        ),
        "ttl": json_values,
        "timestamp": json_values,
        "permissions": json_values,
        "references": json_values,
    },
)


@given(st.one_of(json_values, value_like))
def test_decoder_fuzz_never_crashes(raw: Any) -> None:
    try:
        v = V.decode_value(raw)
    except InvalidInput as exc:
        assert exc.message
    else:
        assert V.decode_value(v.to_json()).same_content(v)


@given(st.lists(value_like, max_size=5))
def test_decode_values_fuzz(raw: list[Any]) -> None:
    with contextlib.suppress(InvalidInput):
        V.decode_values(raw)
