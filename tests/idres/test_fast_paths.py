"""The lean server's hooks answer exactly what the app answers: scheme endpoints, 404s, malformed
identifiers and remembered Basic reads on a SQLite node, computed without the ASGI app."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from gongyun.idres.asgi import AsgiApp
from gongyun.idres.nodes import NodeConfig, Role, build_app, prepare
from gongyun.idres.registry import Registry
from gongyun.idres.server import Lifespan
from gongyun.idres.values import ADMIN_ONLY, HandleValue, string_value

PREFIX = "88.100.1"
SECRET = "s3cret"
ADMIN = (f"300:{PREFIX}/admin", SECRET)
GTIN = "09506000134352"
HOST = [(b"host", b"id.test")]


def _values(url: str) -> list[HandleValue]:
    return [
        string_value(1, "URL", url),
        string_value(2, "GS1_GTIN", GTIN),
        string_value(3, "OID", "1.2.156.77.1"),
        string_value(4, "ECODE", "100010000000042"),
        HandleValue(5, "GY_COST", "string", "12.50", permissions=ADMIN_ONLY),
    ]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[AsgiApp, AsgiApp, Registry]]:
    """Two apps of one SQLite node (one answers through the app, one through its hooks)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    config = NodeConfig(role=Role.enterprise, db_url=url, prefixes=[PREFIX], admin_secret=SECRET)
    await prepare(config)
    from gongyun.db import Database

    db = Database(url)
    registry = Registry(db)
    await registry.put("default", f"{PREFIX}/p1", _values("https://a.example/1"))
    apps = [build_app(config), build_app(config)]
    spans = [Lifespan(a) for a in apps]
    for span in spans:
        await span.startup()
    try:
        yield apps[0], apps[1], registry
    finally:
        for span in spans:
            await span.shutdown()
        await db.dispose()


def _split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


async def _compare(asgi: AsgiApp, lean: AsgiApp, target: str, auth: tuple[str, str] | None = None) -> int:
    """The hook's answer equals the app's (status, content type, location, body); the status."""
    headers = list(HOST)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode())
        headers.append((b"authorization", b"Basic " + token))
    assert lean.fast_raw is not None
    raw = lean.fast_raw(target.encode(), headers, True)
    assert raw is not None, f"the hook left {target} to the app"
    status, got, body = _split(raw)
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://id.test") as c:
        r = await c.get(target, auth=auth)
    assert status == r.status_code, (target, body, r.text)
    assert body == r.content, target
    assert got.get("content-type") == r.headers.get("content-type")
    assert got.get("location") == r.headers.get("location")
    assert int(got["content-length"]) == len(body)
    return status


async def test_scheme_answers_and_errors_match_the_app(nodes: tuple[AsgiApp, AsgiApp, Registry]) -> None:
    asgi, lean, _ = nodes
    cases = {
        f"/01/{GTIN}": 307,
        f"/01/{GTIN}?linkType=all": 200,
        f"/01/{GTIN}/10/LOT-9": 307,  # falls back to the product record
        "/01/09506000134353": 400,  # wrong check digit
        "/01/00000096385074": 404,
        "/oid/1.2.156.77.1": 200,
        "/oid/1.2.156.77.2": 404,
        "/oid/1.02": 400,
        "/ecode/100010000000042": 200,
        "/ecode/9x": 400,
        "/favicon.ico": 404,
    }
    for target, status in cases.items():
        assert await _compare(asgi, lean, target) == status, target
    doc = orjson.loads(await _body(lean, "/oid/1.2.156.77.1"))
    assert doc["handle"] == f"{PREFIX}/p1" and "GY_COST" not in {v["type"] for v in doc["values"]}


async def _body(app: AsgiApp, target: str) -> bytes:
    assert app.fast_raw is not None
    raw = app.fast_raw(target.encode(), HOST, True)
    assert raw is not None
    return _split(raw)[2]


async def test_handle_errors_and_404s_match_the_app(nodes: tuple[AsgiApp, AsgiApp, Registry]) -> None:
    asgi, lean, _ = nodes
    cases = {
        f"/api/handles/{PREFIX}/nope": 404,
        "/api/handles/99.9/nope": 404,  # a prefix not homed here
        "/api/handles/%zz/%ff1": 400,
        f"/api/handles/{PREFIX}/" + "A" * 12_000: 400,
        f"/api/handles/{PREFIX}/a%01b": 400,
        "/api/handles/no-slash": 400,
    }
    for target, status in cases.items():
        assert await _compare(asgi, lean, target) == status, target


async def test_remembered_basic_reads(nodes: tuple[AsgiApp, AsgiApp, Registry]) -> None:
    asgi, lean, registry = nodes
    target = f"/api/handles/{PREFIX}/p1"
    token = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode())
    headers = [*HOST, (b"authorization", b"Basic " + token)]
    assert lean.fast_raw is not None
    assert lean.fast_raw(target.encode(), headers, True) is None  # not verified yet: the app checks
    transport = httpx.ASGITransport(app=lean)
    async with httpx.AsyncClient(transport=transport, base_url="http://id.test") as c:
        assert (await c.get(target, auth=ADMIN)).status_code == 200
        wrong = await c.get(target, auth=(ADMIN[0], "wrong"))
        assert wrong.status_code == 401
    assert lean.fast_raw(target.encode(), [*HOST, (b"authorization", b"Basic eA==")], True) is None
    await _compare(asgi, lean, target, ADMIN)  # the admin sees the private value
    raw = lean.fast_raw(target.encode(), headers, True)
    assert raw is not None and b"GY_COST" in raw
    # once the identity's record carries a read grant (written by another process), its reads go
    # through the app (audited) within a second: the change feed forgets what the node remembered
    admin = await registry.get("default", f"{PREFIX}/admin")
    grant = string_value(7, "GY_GRANT", '{"grantee": "p", "types": [], "handles": []}')
    await registry.put("default", f"{PREFIX}/admin", [*admin.values, grant], overwrite=True)
    deadline = time.monotonic() + 3
    while lean.fast_raw(target.encode(), headers, True) is not None:
        assert time.monotonic() < deadline, "the change feed did not reach the node"
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(transport=transport, base_url="http://id.test") as c:
        assert (await c.get(target, auth=ADMIN)).status_code == 200  # verified again, now a grant
    assert lean.fast_raw(target.encode(), headers, True) is None  # a grant's reads: always the app
