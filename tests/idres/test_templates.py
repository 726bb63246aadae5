"""Metadata templates: definitions validated with every problem listed, records checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongyun.idres import templates as T
from gongyun.idres.values import decode_values

PUMP = {
    "prefix": "88.100",
    "name": "pump",
    "items": [
        {"type": "GY_MODEL", "required": True, "minLength": 2, "maxLength": 8, "pattern": "[A-Z0-9-]+"},
        {"type": "GY_VENDOR", "required": True},
        {"type": "GY_CLASS", "enum": ["centrifugal", "piston"]},
    ],
    "allowExtra": False,
}


def test_valid_record() -> None:
    t = T.parse_template(PUMP)
    assert t.ref == "pump@1"
    vals = decode_values(
        [
            {"index": 1, "type": "GY_MODEL", "data": "CP-10"},
            {"index": 2, "type": "GY_VENDOR", "data": "Acme"},
            {"index": 3, "type": "GY_TEMPLATE", "data": "pump@1"},
        ]
    )
    assert t.validate(vals) == []
    assert T.template_ref(vals) == ("pump", 1)


def test_every_violation_listed() -> None:
    t = T.parse_template(PUMP)
    vals = decode_values(
        [
            {"index": 1, "type": "GY_MODEL", "data": "toolong-model-x"},
            {"index": 2, "type": "GY_MODEL", "data": "a"},
            {"index": 3, "type": "GY_CLASS", "data": "screw"},
            {"index": 4, "type": "COLOR", "data": "red"},
        ]
    )
    with pytest.raises(T.TemplateViolation) as info:
        t.check(vals)
    rules = sorted((e["type"], e["rule"]) for e in info.value.details["errors"])
    assert rules == sorted(
        [
            ("GY_VENDOR", "required"),
            ("GY_MODEL", "maxCount"),
            ("GY_MODEL", "maxLength"),
            ("GY_MODEL", "pattern"),
            ("GY_MODEL", "minLength"),
            ("GY_MODEL", "pattern"),
            ("GY_CLASS", "enum"),
            ("COLOR", "allowExtra"),
        ]
    )
    assert info.value.status == 422


def test_invalid_template_lists_all_problems() -> None:
    bad = {
        "prefix": "88..1",
        "name": "",
        "version": 0,
        "items": [
            {"type": "A", "format": "blob", "pattern": "("},
            {"type": "B", "minLength": 5, "maxLength": 2, "colour": "x"},
            {"type": "B"},
            "nope",
        ],
        "extra": 1,
    }
    with pytest.raises(T.InvalidTemplate) as info:
        T.parse_template(bad)
    fields = {e["field"] for e in info.value.details["errors"]}
    assert {
        "prefix",
        "name",
        "version",
        "items[0].format",
        "items[0].pattern",
        "items[1].minLength",
        "items[1].colour",
        "items[2].type",
        "items[3]",
        "extra",
    } <= fields


def test_roundtrip_json() -> None:
    t = T.parse_template(PUMP)
    assert T.parse_template(t.to_json()) == t


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)
item_like = st.fixed_dictionaries(
    {"type": json_values},
    optional={
        k: json_values
        for k in ("required", "format", "minLength", "maxLength", "pattern", "enum", "maxCount")
    },
)
template_like = st.fixed_dictionaries(
    {
        "prefix": st.text(max_size=8),
        "name": st.text(max_size=8),
        "items": st.lists(item_like, max_size=3) | json_values,
    },
    optional={"version": json_values, "allowExtra": json_values},
)


@given(st.one_of(json_values, template_like))
def test_template_parser_fuzz(raw: object) -> None:
    try:
        t = T.parse_template(raw)
    except T.InvalidTemplate as exc:
        assert exc.details["errors"]
    else:
        assert T.parse_template(t.to_json()) == t
