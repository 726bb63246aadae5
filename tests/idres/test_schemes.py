"""GS1 Digital Link, OID and Ecode adapters, parsing and resolution onto records."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gongyun.errors import MalformedIdentifier
from gongyun.idres.asgi import AsgiApp
from gongyun.idres.registry import Registry
from gongyun.idres.schemes import ecode, gs1, install_schemes, oid
from gongyun.idres.schemes.handle import parse_uri, to_uri

from .conftest import TENANT

GTIN = "09506000134352"  # GS1's documentation example


def test_check_digits() -> None:
    assert gs1.check_digit("950600013435") == 2
    assert gs1.normalise_gtin("9506000134352") == GTIN
    assert gs1.normalise_gtin("96385074") == "00000096385074"
    with pytest.raises(gs1.InvalidGS1Key) as info:
        gs1.normalise_gtin("09506000134353")
    assert info.value.details["reason"] == "gtin_check_digit"
    with pytest.raises(gs1.InvalidGS1Key):
        gs1.normalise_gtin("12345")


def test_digital_link_paths() -> None:
    dl = gs1.parse_path(f"/01/{GTIN}/10/ABC-1/21/S%251")  # the path is split, then decoded
    assert (dl.gtin, dl.lot, dl.serial) == (GTIN, "ABC-1", "S%1")
    assert dl.criteria()[0] == {"GS1_GTIN": GTIN, "GY_LOT": "ABC-1", "GY_SERIAL": "S%1"}
    assert gs1.parse_path(f"/01/{GTIN}/22/V1/10/A%2FB").lot == "A/B"
    with pytest.raises(gs1.InvalidGS1Key):
        gs1.parse_path(f"/01/{GTIN}/10/S%1")  # a raw % is not allowed
    for bad in (
        f"/01/{GTIN}/21/x/10/y",
        f"/01/{GTIN}/10",
        "/02/123",
        f"/01/{GTIN}/10/" + "x" * 21,
        f"/01/{GTIN}/10/é",
    ):
        with pytest.raises(gs1.InvalidGS1Key):
            gs1.parse_path(bad)


@given(st.text(max_size=40))
def test_gs1_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(MalformedIdentifier):
        gs1.parse_path(text)


def test_oid() -> None:
    assert oid.parse("urn:oid:1.2.156.10197.1") == "1.2.156.10197.1"
    assert oid.is_chinese("1.2.156.3")
    for bad, reason in (
        ("3.1", "oid_root"),
        ("1.40", "oid_second_arc"),
        ("1.02", "oid_leading_zero"),
        ("1", "oid_arcs"),
        ("1.a", "oid_arc"),
    ):
        with pytest.raises(MalformedIdentifier) as info:
            oid.parse(bad)
        assert info.value.details["reason"] == reason


def test_ecode() -> None:
    code = ecode.parse("1000112345678901234567890")
    assert (code.version, code.nsi, code.md) == (1, "0001", "12345678901234567890")
    assert str(ecode.parse("300012ABCXYZ")) == "300012ABCXYZ"
    for bad, reason in (
        ("9123", "ecode_version"),
        ("012", "ecode_nsi"),
        ("00001" + "1" * 21, "ecode_md_length"),
        ("00001abc", "ecode_md_charset"),
        ("300012abc", "ecode_md_charset"),
    ):
        with pytest.raises(MalformedIdentifier) as info:
            ecode.parse(bad)
        assert info.value.details["reason"] == reason


def test_handle_uri() -> None:
    h = parse_uri("hdl:88.100.1/x")
    assert str(h) == "88.100.1/x" and to_uri(h) == "hdl:88.100.1/x"
    assert str(parse_uri("https://hdl.handle.net/88.100.1/y")) == "88.100.1/y"


async def test_resolution_onto_records(registry: Registry) -> None:
    await registry.register_batch(
        TENANT,
        [
            (
                "88.100.1/prod",
                [
                    {"index": 1, "type": "GS1_GTIN", "data": GTIN},
                    {"index": 2, "type": "URL", "data": "https://shop.example/p"},
                    {"index": 3, "type": "GS1_LINK", "data": "gs1:pip https://shop.example/pip Product info"},
                    {"index": 4, "type": "GS1_LINK", "data": "gs1:certificationInfo https://cert.example/1"},
                    {"index": 5, "type": "GS1_LINK", "data": "gs1:certificationInfo https://cert.example/2"},
                    {"index": 6, "type": "OID", "data": "1.2.156.99.1"},
                ],
            ),
            (
                "88.100.1/lot7",
                [
                    {"index": 1, "type": "GS1_GTIN", "data": GTIN},
                    {"index": 2, "type": "GY_LOT", "data": "LOT7"},
                    {"index": 3, "type": "URL", "data": "https://shop.example/lot7"},
                    {"index": 4, "type": "ECODE", "data": "1000112345"},
                ],
            ),
        ],
    )
    app = AsgiApp()
    install_schemes(app, registry, TENANT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://id.test") as c:
        r = await c.get(f"/01/{GTIN}")
        assert (r.status_code, r.headers["location"]) == (307, "https://shop.example/p")
        r = await c.get(f"/01/{GTIN}/10/LOT7")
        assert r.headers["location"] == "https://shop.example/lot7"
        r = await c.get(f"/01/{GTIN}/10/OTHER")  # falls back to the product
        assert r.headers["location"] == "https://shop.example/p"
        r = await c.get(f"/01/{GTIN}?linkType=gs1:pip")
        assert (r.status_code, r.headers["location"]) == (307, "https://shop.example/pip")
        r = await c.get(f"/01/{GTIN}?linkType=gs1:certificationInfo")
        assert r.status_code == 300
        assert len(r.json()["linkset"][0]["https://gs1.org/voc/certificationInfo"]) == 2
        r = await c.get(f"/01/{GTIN}?linkType=gs1:recipeInfo")
        assert r.status_code == 404
        r = await c.get(f"/01/{GTIN}", headers={"accept": "application/linkset+json"})
        doc = r.json()["linkset"][0]
        assert r.status_code == 200 and doc["anchor"] == f"http://id.test/01/{GTIN}"
        assert doc["https://gs1.org/voc/pip"][0]["title"] == "Product info"
        r = await c.get("/01/09506000134353")
        assert (r.status_code, r.json()["responseCode"], r.json()["reason"]) == (400, 102, "gtin_check_digit")
        r = await c.get("/01/00000096385074")
        assert (r.status_code, r.json()["responseCode"]) == (404, 100)
        r = await c.get("/.well-known/gs1resolver")
        assert r.json()["supportedPrimaryKeys"] == ["01", "00", "414", "8003", "8004"]
        r = await c.get("/oid/1.2.156.99.1")
        assert r.json()["handle"] == "88.100.1/prod"
        assert (await c.get("/oid/1.2.156.99.2")).status_code == 404
        assert (await c.get("/oid/7.1")).status_code == 400
        r = await c.get("/ecode/1000112345")
        assert r.json()["handle"] == "88.100.1/lot7"
        assert (await c.get("/ecode/x")).status_code == 400


@given(st.text(max_size=30))
def test_oid_and_ecode_parsers_never_crash(text: str) -> None:
    for parse in (oid.parse, ecode.parse):
        try:
            parse(text)
        except MalformedIdentifier as exc:
            assert exc.details["reason"]
