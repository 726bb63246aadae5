"""The real pyhandle client against a Gongyun node on loopback: create, read, modify, search, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

from gongyun.db import Database, upgrade
from gongyun.idres import prefixes as pfx
from gongyun.idres.auth import hash_secret
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.node_routes import NodeRoutes
from gongyun.idres.registry import Registry
from gongyun.idres.values import HandleValue, Permissions, admin_value

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


@pytest.fixture(params=["lean", "uvicorn"])
def node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    asyncio.run(_prepare(url))
    db = Database(url)
    registry = Registry(db)
    service = HandleService(registry, TENANT)
    app = make_app(service)
    NodeRoutes(registry, TENANT, ["88.100.1"]).install(app, "enterprise")
    serve = serve_lean_in_thread if request.param == "lean" else serve_in_thread
    try:
        with serve(app) as base:
            yield base
    finally:
        service.close()


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
    r = httpx.put(f"{node}/api/handles/88.100.1/L1", json={"values": values}, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (409, 101)
    r = httpx.put(f"{node}/api/handles/88.100.1/L1?overwrite=true", json={"values": values[:1]}, auth=auth)
    assert r.status_code == 200
    # the cached public answer was invalidated by the write
    assert [v["index"] for v in httpx.get(f"{node}/api/handles/88.100.1/L1").json()["values"]] == [1, 100]
    listing = httpx.get(f"{node}/api/handles?prefix=88.100.1&page=0&pageSize=1", auth=auth).json()
    assert listing["totalCount"] == "2" and listing["handles"] == ["88.100.1/admin"]
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
