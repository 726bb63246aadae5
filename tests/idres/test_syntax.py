"""Identifier syntax: parsing, case rules, precise errors, parse/format round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongyun.errors import MalformedIdentifier
from gongyun.idres import syntax
from gongyun.idres.syntax import Handle, parse, parse_bytes, parse_indexed

segment = st.text(alphabet="abcXYZ0189-_", min_size=1, max_size=8)
prefixes = st.lists(segment, min_size=1, max_size=4).map(".".join)
suffix_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn"))
suffixes = st.text(alphabet=suffix_chars, min_size=1, max_size=40)


def test_parse_hierarchical() -> None:
    h = parse("88.100.1/PUMP-0001")
    assert (h.prefix, h.suffix) == ("88.100.1", "PUMP-0001")
    assert h.prefix_chain() == ["88", "88.100", "88.100.1"]
    assert syntax.parent_prefix("88.100.1") == "88.100"
    assert syntax.parent_prefix("88") is None


def test_suffix_may_contain_slash_and_utf8() -> None:
    h = parse("88.100.1/批次/2024/泵")
    assert h.suffix == "批次/2024/泵"


def test_case_rules() -> None:
    a, b = parse("88.100.ab/pump-1"), parse("88.100.AB/PUMP-1")
    assert a != b and a.norm == b.norm == "88.100.AB/PUMP-1"
    assert str(a) == "88.100.ab/pump-1"
    # non-ASCII letters are compared exactly
    assert parse("1/ä").norm == "1/ä"
    assert parse("0.na/88").is_prefix_record


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("", "empty", None),
        ("88.100.1", "missing_slash", None),
        ("/abc", "empty_prefix", 0),
        ("88.100.1/", "empty_suffix", 9),
        ("88..1/x", "empty_prefix_segment", 3),
        ("88.1 0/x", "prefix_character", 4),
        ("88/a\x00b", "control_character", 4),
        ("88/a\x85b", "control_character", 4),
        ("88/" + "x" * 1100, "too_long", None),
    ],
)
def test_malformed_precise(text: str, reason: str, position: int | None) -> None:
    with pytest.raises(MalformedIdentifier) as info:
        parse(text)
    assert info.value.details["reason"] == reason
    assert info.value.details.get("position") == position
    assert info.value.status == 400 and info.value.code == "identifier_malformed"


def test_parse_bytes_rejects_bad_utf8() -> None:
    with pytest.raises(MalformedIdentifier) as info:
        parse_bytes(b"88/\xff")
    assert info.value.details["reason"] == "invalid_utf8"
    assert parse_bytes("88/泵".encode()) == Handle("88", "泵")


def test_indexed() -> None:
    ih = parse_indexed("300:88.100.1/admin")
    assert ih.index == 300 and str(ih.handle) == "88.100.1/admin"
    assert str(ih) == "300:88.100.1/admin"
    for bad in ("88.100.1/admin", "x:88/a", "0:88/a", "99999999999:88/a"):
        with pytest.raises(MalformedIdentifier):
            parse_indexed(bad)


def test_is_under() -> None:
    assert syntax.is_under("88.100.1", "88.100")
    assert syntax.is_under("88.100", "88.100")
    assert not syntax.is_under("88.1000", "88.100")


@given(prefixes, suffixes)
def test_format_parse_roundtrip(prefix: str, suffix: str) -> None:
    h = Handle(prefix, suffix)
    text = syntax.format_handle(h)
    if len(text.encode()) <= syntax.MAX_HANDLE_BYTES:
        assert parse(text) == h
        assert syntax.format_handle(parse(text)) == text
        assert parse(h.norm).norm == h.norm


@given(st.text(max_size=60))
def test_parser_never_crashes(text: str) -> None:
    try:
        h = parse(text)
    except MalformedIdentifier as exc:
        assert exc.details["reason"]
    else:
        assert syntax.format_handle(h) == text


@given(st.binary(max_size=60))
def test_bytes_parser_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(MalformedIdentifier):
        parse_bytes(raw)
