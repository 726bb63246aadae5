"""The real pyhandle client against a Gongyun node on loopback: create, read, modify, search, delete."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError
from sqlalchemy import text

from gongyun.db import Database, upgrade
from gongyun.idres import prefixes as pfx
from gongyun.idres.auth import hash_secret
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.node_routes import NodeRoutes
from gongyun.idres.pgread import PointReader
from gongyun.idres.registry import Registry
from gongyun.idres.values import HandleValue, Permissions, admin_value
from tests.services import scratch_postgres_database

from .serving import serve_in_thread, serve_lean_in_thread

TENANT = "default"


async def _prepare(url: str) -> None:
    await upgrade(url)
    db = Database(url)
    async with db.session() as s:
        await pfx.submit(s, TENANT, "88.100.1", "enterprise", status=pfx.FilingStatus.active)
    reg = Registry(db)
    secret = HandleValue(
        300, "HS_SECKEY", "string", hash_secret("s3cret"), permissions=Permissions(True, True, False, False)
    )
    await reg.put(TENANT, "88.100.1/admin", [admin_value("88.100.1/admin", 300), secret])
    await db.dispose()


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "lean"), id="sqlite-lean"),
        pytest.param(("sqlite", "uvicorn"), id="sqlite-uvicorn"),
        pytest.param(("postgres", "lean"), id="postgres-lean", marks=pytest.mark.postgres),
    ]
)
def backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(database URL, server)``: an SQLite file under both servers, a scratch PostgreSQL database."""
    kind, server = request.param
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'node.db'}", server
    else:
        with scratch_postgres_database() as url:
            yield url, server


@pytest.fixture
def node_db(backend: tuple[str, str]) -> str:
    """The node's database URL."""
    return backend[0]


@pytest.fixture
def node(backend: tuple[str, str]) -> Iterator[str]:
    """An enterprise node for 88.100.1 built as ``gongyun idnode`` builds it on that database."""
    node_db, server = backend
    asyncio.run(_prepare(node_db))
    db = Database(node_db)
    registry = Registry(db)
    # on PostgreSQL the node reads records through its persistent point-read connections
    reader = PointReader(node_db, TENANT) if db.dialect == "postgresql" else None
    service = HandleService(registry, TENANT, reader=reader)
    app = make_app(service)
    if reader is not None:
        app.on_shutdown.append(reader.close)
    NodeRoutes(registry, TENANT, ["88.100.1"]).install(app, "enterprise")
    serve = serve_lean_in_thread if server == "lean" else serve_in_thread
    try:
        with serve(app) as base:
            yield base
    finally:
        service.close()


async def _audit_rows(url: str) -> list[tuple[str, str, str]]:
    db = Database(url)
    try:
        async with db.session() as s:
            q = "SELECT actor, action, target FROM audit_events WHERE tenant_id = :t ORDER BY seq"
            return [(r[0], r[1], r[2]) for r in (await s.execute(text(q), {"t": TENANT})).all()]
    finally:
        await db.dispose()


def test_pyhandle_lifecycle(node: str) -> None:
    client = PyHandleClient("rest").instantiate_with_username_and_password(
        node, "300:88.100.1/admin", "s3cret", HTTPS_verify=False
    )
    handle = "88.100.1/PUMP-0001"
    created = client.register_handle(
        handle, "https://plant.example/pumps/1", checksum="abc123", GY_KIND="pump"
    )
    assert created == handle
    with pytest.raises(HandleAlreadyExistsException):
        client.register_handle(handle, "https://elsewhere.example/")
    assert client.get_value_from_handle(handle, "URL") == "https://plant.example/pumps/1"
    record = client.retrieve_handle_record(handle)
    assert record["CHECKSUM"] == "abc123" and record["GY_KIND"] == "pump"

    client.modify_handle_value(handle, URL="https://plant.example/pumps/1b", GY_LOT="L-7")
    assert client.get_value_from_handle(handle, "URL") == "https://plant.example/pumps/1b"
    assert client.get_value_from_handle(handle, "GY_LOT") == "L-7"
    client.delete_handle_value(handle, "GY_LOT")
    assert client.get_value_from_handle(handle, "GY_LOT") is None

    found = client.search_handle(URL="https://plant.example/pumps/1b")
    assert found == [handle]
    assert client.search_handle(URL="*pumps*", prefix="88.100.1") == [handle]

    minted = client.generate_and_register_handle("88.100.1", "https://plant.example/new")
    assert minted.startswith("88.100.1/")

    client.delete_handle(handle)
    assert client.retrieve_handle_record_json(handle) is None


def test_secret_hidden_and_wrong_password(node: str) -> None:
    public = httpx.get(f"{node}/api/handles/88.100.1/admin").json()
    assert public["responseCode"] == 1
    assert [v["type"] for v in public["values"]] == ["HS_ADMIN"]
    with pytest.raises(HandleAuthenticationError):
        bad = PyHandleClient("rest").instantiate_with_username_and_password(
            node, "300:88.100.1/admin", "nope"
        )
        bad.register_handle("88.100.1/x", "https://x.example/")
    r = httpx.put(f"{node}/api/handles/88.100.1/y", json={"values": []})
    assert r.status_code == 401 and r.json()["responseCode"] == 402


def test_error_codes(node: str) -> None:
    r = httpx.get(f"{node}/api/handles/88.100.1/missing")
    assert (r.status_code, r.json()["responseCode"]) == (404, 100)
    r = httpx.get(f"{node}/api/handles/no-slash")
    assert (r.status_code, r.json()["responseCode"]) == (400, 102)
    auth = ("300%3A88.100.1%2Fadmin", "s3cret")
    bad_value = {"values": [{"index": 1, "type": "URL", "data": {"format": "wat", "value": "x"}}]}
    r = httpx.put(f"{node}/api/handles/88.100.1/v", json=bad_value, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (400, 202)
    assert r.json()["field"] == "data.format"
    big = {"values": [{"index": i + 1, "type": "X", "data": "y"} for i in range(1001)]}
    r = httpx.put(f"{node}/api/handles/88.100.1/v", json=big, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (413, 202)
    r = httpx.put(f"{node}/api/handles/88.999/v", json={"values": []}, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (403, 401)
    r = httpx.put(f"{node}/api/handles/88.100.1/v", content=b"{nope", auth=auth)
    assert r.status_code == 400


def test_index_type_public_only_and_listing(node: str) -> None:
    auth = ("300:88.100.1/admin", "s3cret")
    values = [
        {"index": 1, "type": "URL", "data": "https://a.example/"},
        {"index": 2, "type": "GY_SERIAL", "data": "SN-1", "permissions": "1100"},
    ]
    r = httpx.put(f"{node}/api/handles/88.100.1/L1", json={"values": values}, auth=auth)
    assert r.status_code == 201
    anon = httpx.get(f"{node}/api/handles/88.100.1/L1").json()
    assert [v["index"] for v in anon["values"]] == [1, 100]
    admin = httpx.get(f"{node}/api/handles/88.100.1/l1", auth=auth).json()
    assert [v["index"] for v in admin["values"]] == [1, 2, 100]
    only = httpx.get(f"{node}/api/handles/88.100.1/L1?publicOnly=true", auth=auth).json()
    assert [v["index"] for v in only["values"]] == [1, 100]
    typed = httpx.get(f"{node}/api/handles/88.100.1/L1?type=URL").json()
    assert [v["index"] for v in typed["values"]] == [1]
    none = httpx.get(f"{node}/api/handles/88.100.1/L1?index=2")
    assert (none.status_code, none.json()["responseCode"]) == (200, 200)
    r = httpx.put(f"{node}/api/handles/88.100.1/L1?overwrite=false", json={"values": values}, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (409, 101)
    r = httpx.put(f"{node}/api/handles/88.100.1/L1", json={"values": values[:1]}, auth=auth)
    assert r.status_code == 200  # a plain PUT overwrites (the Handle.Net default)
    # the cached public answer was invalidated by the write
    assert [v["index"] for v in httpx.get(f"{node}/api/handles/88.100.1/L1").json()["values"]] == [1, 100]
    listing = httpx.get(f"{node}/api/handles?prefix=88.100.1&page=0&pageSize=1", auth=auth).json()
    assert listing["totalCount"] == "2" and listing["handles"] == ["88.100.1/admin"]
    count = httpx.get(f"{node}/api/handles?prefix=88.100.1&pageSize=0", auth=auth).json()
    assert count == {"responseCode": 1, "prefix": "88.100.1", "totalCount": "2"}
    # keyset pages: after= the last handle of the page before (empty: from the start)
    first = httpx.get(f"{node}/api/handles?prefix=88.100.1&after=&pageSize=1", auth=auth).json()
    assert first["handles"] == ["88.100.1/admin"] and first["next"] == "88.100.1/admin"
    second = httpx.get(
        f"{node}/api/handles?prefix=88.100.1&after={first['next']}&pageSize=1", auth=auth
    ).json()
    assert second["handles"] == ["88.100.1/L1"] and second["next"] == "88.100.1/L1"
    last = httpx.get(f"{node}/api/handles?prefix=88.100.1&after=88.100.1/l1&pageSize=5", auth=auth).json()
    assert last["handles"] == [] and "next" not in last
    assert httpx.get(f"{node}/api/handles?prefix=88.100.1").status_code == 401
    r = httpx.post(
        f"{node}/api/batch",
        json={
            "records": [{"handle": f"88.100.1/b{i}", "values": values[:1]} for i in range(3)]
            + [{"handle": "88.999/z", "values": values[:1]}]
        },
        auth=auth,
    )
    assert [x["status"] for x in r.json()["results"]] == ["created"] * 3 + ["error"]


def test_templates_on_the_node(node: str) -> None:
    auth = ("300:88.100.1/admin", "s3cret")
    bad = {"prefix": "88.100.1", "name": "pump", "items": [{"type": "GY_MODEL", "maxLength": -1}]}
    r = httpx.post(f"{node}/api/templates", json=bad, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (422, 202)
    assert r.json()["errors"][0]["field"] == "items[0].maxLength"
    good = {
        "prefix": "88.100.1",
        "name": "pump",
        "items": [{"type": "GY_MODEL", "required": True, "maxLength": 4}],
    }
    assert httpx.post(f"{node}/api/templates", json=good, auth=auth).status_code == 201
    assert (
        httpx.post(f"{node}/api/templates", json={**good, "prefix": "88.999"}, auth=auth).status_code == 403
    )
    assert httpx.get(f"{node}/api/templates").json()["templates"][0]["name"] == "pump"
    values = {
        "values": [
            {"index": 1, "type": "GY_TEMPLATE", "data": "pump"},
            {"index": 2, "type": "GY_MODEL", "data": "TOO-LONG"},
        ]
    }
    r = httpx.put(f"{node}/api/handles/88.100.1/T1", json=values, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (422, 202)
    assert r.json()["errors"][0]["rule"] == "maxLength"


def test_mint_new_suffix_and_secret_rotation(node: str) -> None:
    auth = ("300:88.100.1/admin", "s3cret")
    url = {"values": [{"index": 1, "type": "URL", "data": "https://m.example/"}]}
    r = httpx.put(f"{node}/api/handles/88.100.1/?mintNewSuffix=true", json=url, auth=auth)
    assert r.status_code == 201 and len(r.json()["handle"]) == len("88.100.1/") + 32
    r = httpx.put(f"{node}/api/handles/88.100.1/lot-?mintNewSuffix=true", json=url, auth=auth)
    assert r.json()["handle"].startswith("88.100.1/lot-")
    # a new secret at index 300: the old password stops working at once
    new_secret = {"values": [{"index": 300, "type": "HS_SECKEY", "data": "n3w", "permissions": "1100"}]}
    r = httpx.put(f"{node}/api/handles/88.100.1/admin?index=300", json=new_secret, auth=auth)
    assert r.status_code == 200
    assert httpx.put(f"{node}/api/handles/88.100.1/z", json=url, auth=auth).status_code == 401
    assert (
        httpx.put(f"{node}/api/handles/88.100.1/z", json=url, auth=("300:88.100.1/admin", "n3w")).status_code
        == 201
    )


def test_overwrite_single_value_subtypes_and_counts(node: str) -> None:
    """Handle.Net REST semantics real clients rely on (issue 13, section 7)."""
    client = PyHandleClient("rest").instantiate_with_username_and_password(
        node, "300:88.100.1/admin", "s3cret", HTTPS_verify=False
    )
    handle = "88.100.1/OW-1"
    client.register_handle(handle, "https://a.example/1")
    # pyhandle's overwrite=True replaces the record
    client.register_handle(handle, "https://a.example/2", overwrite=True, GY_KIND="valve")
    assert client.get_value_from_handle(handle, "URL") == "https://a.example/2"
    # add_handle_value sends ?index=N&overwrite=false: a new index is added
    client.add_handle_value(handle, GY_LOT="L-1")
    assert client.get_value_from_handle(handle, "GY_LOT") == "L-1"
    auth = ("300:88.100.1/admin", "s3cret")
    url = f"{node}/api/handles/{handle}"
    index_of = {v["type"]: v["index"] for v in httpx.get(url).json()["values"]}
    taken = {"index": index_of["URL"], "type": "URL", "data": "https://a.example/3"}
    r = httpx.put(f"{url}?index={taken['index']}&overwrite=false", json={"values": [taken]}, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (409, 201)
    # a single value as the body (no {"values": [...]})
    r = httpx.put(f"{url}?index={taken['index']}", json=taken, auth=auth)
    assert r.status_code == 200
    assert client.get_value_from_handle(handle, "URL") == "https://a.example/3"
    r = httpx.put(
        f"{url}?index=40", json={"index": 40, "type": "URL.mirror", "data": "https://m/"}, auth=auth
    )
    assert r.status_code == 200
    r = httpx.put(f"{node}/api/handles/88.100.1/SV", json={"index": 1, "type": "URL", "data": "x"}, auth=auth)
    assert r.status_code == 201
    # a type ending in "." matches itself and its subtypes
    sub = httpx.get(f"{url}?type=URL.").json()
    assert sorted(v["type"] for v in sub["values"]) == ["URL", "URL.mirror"]
    assert [v["type"] for v in httpx.get(f"{url}?type=URL").json()["values"]] == ["URL"]
    count = httpx.get(f"{node}/api/handles?prefix=88.100.1&pageSize=0", auth=auth).json()
    assert "handles" not in count and int(count["totalCount"]) >= 3


def test_errors_name_the_handle_and_challenge(node: str) -> None:
    r = httpx.get(f"{node}/api/handles/88.100.1/missing")
    assert (r.status_code, r.json()["responseCode"], r.json()["handle"]) == (404, 100, "88.100.1/missing")
    r = httpx.get(f"{node}/api/handles/77.1/elsewhere")
    assert (r.status_code, r.json()["responseCode"]) == (404, 301)
    r = httpx.put(f"{node}/api/handles/88.100.1/y", json={"values": []})
    assert r.status_code == 401
    assert 'Basic realm="handle"' in r.headers.get_list("www-authenticate")


def test_sessions(node: str, tmp_path: Path) -> None:
    # a session authenticated by Basic at its creation, then used by its id
    r = httpx.post(f"{node}/api/sessions", auth=("300:88.100.1/admin", "s3cret"))
    assert r.status_code == 201 and r.json()["authenticated"] is True
    sid = r.json()["sessionId"]
    session = {"authorization": f'Handle sessionId="{sid}"'}
    value = {"values": [{"index": 1, "type": "URL", "data": "https://s.example/"}]}
    assert httpx.put(f"{node}/api/handles/88.100.1/S1", json=value, headers=session).status_code == 201
    assert httpx.get(f"{node}/api/sessions/this", headers=session).json()["id"] == "300:88.100.1/admin"
    assert httpx.delete(f"{node}/api/sessions/this", headers=session).status_code == 200
    assert httpx.put(f"{node}/api/handles/88.100.1/S2", json=value, headers=session).status_code == 401
    # challenge-response with a plain HS_SECKEY: HMAC-SHA256(secret, server nonce || client nonce)
    auth = ("300:88.100.1/admin", "s3cret")
    ops = {
        "values": [
            {"index": 300, "type": "HS_SECKEY", "data": "plainpw", "permissions": "1100"},
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {"format": "admin", "value": {"handle": "88.100.1/ops", "index": 300}},
            },
        ]
    }
    assert httpx.put(f"{node}/api/handles/88.100.1/ops", json=ops, auth=auth).status_code == 201
    opened = httpx.post(f"{node}/api/sessions").json()
    assert opened["authenticated"] is False
    nonce = base64.b64decode(opened["nonce"])
    cnonce = b"client-nonce-0001"
    sig = hmac.new(b"plainpw", nonce + cnonce, hashlib.sha256).digest()
    header = (
        f'Handle sessionId="{opened["sessionId"]}", id="300:88.100.1/ops", type="HS_SECKEY", '
        f'cnonce="{base64.b64encode(cnonce).decode()}", alg="SHA256", '
        f'signature="{base64.b64encode(sig).decode()}"'
    )
    r = httpx.put(f"{node}/api/sessions/this", headers={"authorization": header})
    assert r.status_code == 200 and r.json()["id"] == "300:88.100.1/ops"
    bad = header.replace(base64.b64encode(sig).decode(), base64.b64encode(b"x" * 32).decode())
    again = httpx.post(f"{node}/api/sessions").json()
    bad = bad.replace(opened["sessionId"], again["sessionId"])
    assert httpx.put(f"{node}/api/sessions/this", headers={"authorization": bad}).status_code == 401
    session = {"authorization": f'Handle sessionId="{opened["sessionId"]}"'}
    assert httpx.put(f"{node}/api/handles/88.100.1/S3", json=value, headers=session).status_code == 201


def test_per_handle_admin_and_audit(node: str, node_db: str) -> None:
    admin = ("300:88.100.1/admin", "s3cret")
    other = ("300:88.100.1/other", "0ther")
    body = {
        "values": [
            {"index": 300, "type": "HS_SECKEY", "data": "0ther", "permissions": "1100"},
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {"format": "admin", "value": {"handle": "88.100.1/other", "index": 300}},
            },
        ]
    }
    assert httpx.put(f"{node}/api/handles/88.100.1/other", json=body, auth=admin).status_code == 201
    url = {"values": [{"index": 1, "type": "URL", "data": "https://own.example/"}]}
    assert httpx.put(f"{node}/api/handles/88.100.1/OWNED", json=url, auth=admin).status_code == 201
    # other administers the prefix but is not in OWNED's HS_ADMIN
    r = httpx.put(f"{node}/api/handles/88.100.1/OWNED", json=url, auth=other)
    assert (r.status_code, r.json()["responseCode"]) == (403, 401)
    assert httpx.delete(f"{node}/api/handles/88.100.1/OWNED", auth=other).status_code == 403
    grant = {
        "index": 101,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": "88.100.1/other", "index": 300, "permissions": "000001110000"},
        },
    }
    assert (
        httpx.put(f"{node}/api/handles/88.100.1/OWNED?index=101", json=grant, auth=admin).status_code == 200
    )
    # now other may modify values (bit 4) but not delete the handle (bit 1)
    r = httpx.put(f"{node}/api/handles/88.100.1/OWNED?index=1", json=url["values"][0], auth=other)
    assert r.status_code == 200
    assert httpx.delete(f"{node}/api/handles/88.100.1/OWNED", auth=other).status_code == 403
    assert httpx.delete(f"{node}/api/handles/88.100.1/OWNED", auth=admin).status_code == 200
    rows = asyncio.run(_audit_rows(node_db))
    assert ("handle:300:88.100.1/admin", "identifier.register", "88.100.1/OWNED") in rows
    assert ("handle:300:88.100.1/other", "identifier.update", "88.100.1/OWNED") in rows
    assert ("handle:300:88.100.1/admin", "identifier.delete", "88.100.1/OWNED") in rows
