"""Object identifiers end to end: assets, devices and tags made through the API resolve with the
real pyhandle client against ``gongyun idnode`` (a separate process on the same database) and
through a recursive resolver; private values stay with their tenant; renames and deletes show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyhandle.handleclient import PyHandleClient

from tests.apphelp import admin_headers, login, running_app

from .nodeproc import NodeProcess

OP = {"Authorization": "Bearer op-token"}
SECRET = "test-secret-key-0123456789abcdef0123456789"


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any], h: dict[str, str]) -> Any:
    r = await client.post(url, json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


async def _tenant(client: httpx.AsyncClient, root: dict[str, str], name: str) -> dict[str, str]:
    """A new tenant with an admin; returns the admin's headers."""
    tenant = await _post(client, "/api/v1/tenants", {"name": name}, root)
    user = {"username": f"{name}-admin", "password": f"{name}-Passw0rd!", "role": "tenant-admin"}
    await _post(client, "/api/v1/users", user, {**root, "X-Tenant": tenant["id"]})
    return await login(client, user["username"], user["password"])


async def _key(client: httpx.AsyncClient, h: dict[str, str]) -> dict[str, str]:
    return {
        "X-API-Key": (await _post(client, "/api/v1/apikeys", {"name": "ids", "role": "engineer"}, h))["key"]
    }


async def _plant(client: httpx.AsyncClient, h: dict[str, str], name: str) -> dict[str, Any]:
    """enterprise > site > area > line > equipment, a device on it and an important tag."""
    parent = None
    for level in ("enterprise", "site", "area", "line", "equipment"):
        node = await _post(
            client, "/api/v1/assets", {"level": level, "name": f"{name} {level}", "parent_id": parent}, h
        )
        parent = node["id"]
        if level == "enterprise":
            enterprise = node
    device = await _post(
        client,
        "/api/v1/assets/devices",
        {"name": f"{name}-plc", "equipment_id": parent, "classification": "core"},
        h,
    )
    tag = await _post(
        client,
        f"/api/v1/assets/devices/{device['id']}/tags",
        {"name": "oil_temp", "unit": "degC", "classification": "important"},
        h,
    )
    return {"asset": enterprise, "equipment": node, "device": device, "tag": tag}


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    return {v["type"]: v["data"]["value"] for v in doc.get("values", [])}


async def _eventually(check: Callable[[], bool], timeout: float = 12.0) -> None:
    """Public answers are cached by the node for at most 5 s: wait that long for a change."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("the change did not show in time")
        await asyncio.sleep(0.2)


async def _start(
    tmp_path: Path, name: str, role: str, *args: str, env: dict[str, str] | None = None
) -> NodeProcess:
    node = NodeProcess(role, tmp_path, name, *args, db=role == "root", env=env)
    await asyncio.to_thread(node.wait_ready)
    return node


@pytest.mark.slow
async def test_object_identifiers_resolve_with_pyhandle(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url, public_url="https://plant.example") as (client, _):
        root = await admin_headers(client)
        ours = await _plant(client, root, "Acme")
        other_admin = await _tenant(client, root, "rival")
        theirs = await _plant(client, other_admin, "Rival")
        our_key, their_key = await _key(client, root), await _key(client, other_admin)
        asset, device, tag = (ours[k]["identifier"] for k in ("asset", "device", "tag"))
        assert asset == f"88.100.1/gy.asset.{ours['asset']['id']}" and tag.startswith("88.100.1/gy.tag.")
        their_device = theirs["device"]["identifier"]
        assert their_device.startswith("88.100.2/gy.device.")  # a prefix per tenant

        # the platform API: the tenant's own records with every value; another tenant's are 404
        rec = await client.get(f"/api/v1/identifiers/records/{tag}", headers=root)
        assert _values(rec.json())["GY_PARENT"] == device
        assert (
            await client.get(f"/api/v1/identifiers/records/{tag}", headers=other_admin)
        ).status_code == 404
        prefixes = (await client.get("/api/v1/identifiers/prefixes", headers=root)).json()
        assert [(p["prefix"], p["kind"], p["status"]) for p in prefixes] == [
            ("88.100.1", "enterprise", "active")
        ]

        # the platform's data directory too: its master key opens the core device's sealed name
        env = {
            "GONGYUN_SECRET_KEY": SECRET,
            "GONGYUN_DATABASE_URL": db_url,
            "GONGYUN_DATA_DIR": str(tmp_path / "var"),
        }
        args = (
            "--db",
            db_url,
            "--prefix",
            "88.100",
            "--tenant",
            "platform",
            "--all-tenants",
            "--platform-auth",
        )
        started: list[NodeProcess] = []
        try:
            node = await _start(tmp_path, "platform", "secondary", *args, env=env)
            started.append(node)
            c = httpx.AsyncClient(base_url=node.url, timeout=10, trust_env=False)
            anon = PyHandleClient("rest").instantiate_for_read_access(
                handle_server_url=node.url, HTTPS_verify=False
            )

            # typed values through the real pyhandle client: a general asset shows its kind and name...
            record = await asyncio.to_thread(anon.retrieve_handle_record, asset)
            assert record["GY_KIND"] == "asset" and record["GY_NAME"] == "Acme enterprise"
            assert "URL" not in record and "GY_API_URL" not in record  # ...and keeps the rest private
            # a core device and an important tag show nothing but the administrative value
            assert set(await asyncio.to_thread(anon.retrieve_handle_record, device)) == {"HS_ADMIN"}
            assert set(await asyncio.to_thread(anon.retrieve_handle_record, tag)) == {"HS_ADMIN"}

            # the owner's API key sees every typed value
            full = _values((await c.get(f"/api/handles/{tag}", headers=our_key)).json())
            assert full["GY_KIND"] == "tag" and full["GY_NAME"] == "oil_temp" and full["GY_PARENT"] == device
            assert full["URL"] == f"https://plant.example/assets?tag={ours['tag']['id']}"
            assert full["GY_API_URL"] == f"https://plant.example/api/v1/assets/tags/{ours['tag']['id']}"
            assert full["GY_CLASSIFICATION"] == "important"
            dev = _values((await c.get(f"/api/handles/{device}", headers=our_key)).json())
            assert dev["GY_PARENT"] == ours["equipment"]["identifier"] and dev["GY_NAME"] == "Acme-plc"

            # another tenant's caller, like an anonymous one, sees only public values of our objects...
            assert set(_values((await c.get(f"/api/handles/{tag}", headers=their_key)).json())) == {
                "HS_ADMIN"
            }
            assert "URL" not in _values((await c.get(f"/api/handles/{asset}", headers=their_key)).json())
            # ...and we see only the public ones of theirs, while they see all of their own
            assert set(_values((await c.get(f"/api/handles/{their_device}", headers=our_key)).json())) == {
                "HS_ADMIN"
            }
            theirs_full = _values((await c.get(f"/api/handles/{their_device}", headers=their_key)).json())
            assert theirs_full["GY_NAME"] == "Rival-plc"
            # nobody writes into another tenant's prefix through the node
            body = {"values": [{"index": 1, "type": "URL", "data": "https://evil.example/"}]}
            r = await c.put(f"/api/handles/{their_device}?overwrite=true", json=body, headers=our_key)
            assert (r.status_code, r.json()["code"]) == (404, "identifier_prefix_not_served")
            after = _values((await c.get(f"/api/handles/{their_device}", headers=their_key)).json())
            assert after == theirs_full

            # delete the tag: its identifier no longer resolves (404, Handle response code 100)
            r = await client.delete(f"/api/v1/assets/tags/{ours['tag']['id']}", headers=root)
            assert r.status_code == 204
            await _eventually(lambda: anon.retrieve_handle_record_json(tag) is None)
            gone = await c.get(f"/api/handles/{tag}")
            assert (gone.status_code, gone.json()["responseCode"]) == (404, 100)

            # rename the asset: the name value follows, the identifier stays
            r = await client.patch(
                f"/api/v1/assets/{ours['asset']['id']}", json={"name": "Acme Group"}, headers=root
            )
            assert r.status_code == 200 and r.json()["identifier"] == asset
            await _eventually(lambda: anon.get_value_from_handle(asset, "GY_NAME") == "Acme Group")

            # the referral record the node hierarchy expects: 0.NA/88.100.1 on the platform's node
            referral = (await c.get("/api/handles/0.NA/88.100.1")).json()
            assert [v["type"] for v in referral["values"]] == ["HS_ADMIN"]
            await c.aclose()

            # the recursive resolver: a root refers 88.100 to the platform's node
            root_node = await _start(tmp_path, "root", "root")
            started.append(root_node)
            recursive = await _start(tmp_path, "recursive", "recursive", "--root", root_node.url)
            started.append(recursive)
            await _through_the_resolver(root_node, node, recursive, asset, tag)
        finally:
            for n in started:
                await asyncio.to_thread(n.stop)


async def _through_the_resolver(
    root: NodeProcess, node: NodeProcess, recursive: NodeProcess, asset: str, tag: str
) -> None:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as c:
        site = {"address": "127.0.0.1", "port": node.port}
        filing = {"prefix": "88.100", "kind": "secondary", "site": site, "ttl": 1}
        r = await c.post(f"{root.url}/api/filings", headers=OP, json=filing)
        assert r.status_code == 201, r.text
        for action in ("verify", "activate"):
            assert (await c.post(f"{root.url}/api/filings/88.100/{action}", headers=OP)).status_code == 200
        found = await c.get(f"{recursive.url}/api/handles/{asset}")
        assert found.status_code == 200, found.text
        assert _values(found.json())["GY_NAME"] == "Acme Group" and "URL" not in _values(found.json())
        gone = await c.get(f"{recursive.url}/api/handles/{tag}")
        assert (gone.status_code, gone.json()["responseCode"]) == (404, 100)
