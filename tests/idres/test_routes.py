"""The console's identifier routes behind Gongyun authentication."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.apphelp import admin_headers, running_app


async def test_identifier_routes(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _):
        assert (await client.get("/api/v1/identifiers/prefixes")).status_code == 401
        h = await admin_headers(client)
        r = await client.post("/api/v1/identifiers/prefixes", headers=h, json={"prefix": "88.100.9"})
        assert r.status_code == 201 and r.json()["status"] == "submitted"
        url = [{"index": 1, "type": "URL", "data": "https://x.example/1"}]
        r = await client.put("/api/v1/identifiers/records/88.100.9/a", headers=h, json={"values": url})
        assert r.status_code == 404 and r.json()["code"] == "identifier_prefix_not_served"
        for status in ("verified", "active"):
            r = await client.post(
                "/api/v1/identifiers/prefixes/88.100.9/status", headers=h, json={"status": status}
            )
            assert r.status_code == 200
        r = await client.post(
            "/api/v1/identifiers/prefixes/88.100.9/status", headers=h, json={"status": "verified"}
        )
        assert r.status_code == 409
        r = await client.put("/api/v1/identifiers/records/88.100.9/a", headers=h, json={"values": url})
        assert r.status_code == 200 and r.json()["created"]
        r = await client.get("/api/v1/identifiers/records/88.100.9/A", headers=h)
        assert r.json()["values"][0]["data"]["value"] == "https://x.example/1"
        bad = [{"index": 1, "type": "URL", "data": {"format": "nope", "value": "x"}}]
        r = await client.put("/api/v1/identifiers/records/88.100.9/b", headers=h, json={"values": bad})
        assert r.status_code == 400 and r.json()["code"] == "identifier_value_invalid"
        r = await client.post(
            "/api/v1/identifiers/batch",
            headers=h,
            json={"records": [{"handle": f"88.100.9/b{i}", "values": url} for i in range(3)]},
        )
        assert [x["status"] for x in r.json()["results"]] == ["created"] * 3
        r = await client.get("/api/v1/identifiers/records", headers=h, params={"prefix": "88.100.9"})
        assert r.json()["total"] == 4
        r = await client.post(
            "/api/v1/identifiers/templates", headers=h, json={"prefix": "88.100.9", "name": "t", "items": []}
        )
        assert r.status_code == 422 and r.json()["errors"]
        r = await client.delete("/api/v1/identifiers/records/88.100.9/a", headers=h)
        assert r.status_code == 204


async def test_other_tenant_gets_404(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _):
        root = await admin_headers(client)
        ids = {}
        for name in ("alpha", "beta"):
            tenant = (await client.post("/api/v1/tenants", json={"name": name}, headers=root)).json()
            ids[name] = {**root, "X-Tenant": tenant["id"]}
        b = ids["beta"]
        await client.post("/api/v1/identifiers/prefixes", headers=b, json={"prefix": "88.200.1"})
        for status in ("verified", "active"):
            await client.post(
                "/api/v1/identifiers/prefixes/88.200.1/status", headers=b, json={"status": status}
            )
        url = [{"index": 1, "type": "URL", "data": "https://b.example/1"}]
        r = await client.put("/api/v1/identifiers/records/88.200.1/x", headers=b, json={"values": url})
        assert r.status_code == 200
        a = ids["alpha"]
        for method, path, body in (
            ("GET", "/api/v1/identifiers/records/88.200.1/x", None),
            ("PUT", "/api/v1/identifiers/records/88.200.1/x", {}),
            ("DELETE", "/api/v1/identifiers/records/88.200.1/x", None),
            ("POST", "/api/v1/identifiers/prefixes/88.200.1/status", {"status": "suspended"}),
        ):
            resp = await client.request(method, path, json=body, headers=a)
            assert resp.status_code == 404, (method, path, resp.text)


async def test_platform_api_keys_on_a_node(tmp_path: Path) -> None:
    from gongyun.idres import prefixes as pfx
    from gongyun.idres.nodes import NodeConfig, build_app

    async with running_app(tmp_path) as (client, runtime):
        root = await admin_headers(client)
        tenant_id = (await client.get("/api/v1/tenants", headers=root)).json()[0]["id"]
        keys = {}
        for role in ("engineer", "viewer"):
            r = await client.post("/api/v1/apikeys", headers=root, json={"name": role, "role": role})
            keys[role] = r.json()["key"]
        async with runtime.db.session() as s:
            await pfx.submit(s, tenant_id, "88.300", "enterprise", status=pfx.FilingStatus.active)
        config = NodeConfig(
            role="enterprise",
            db_url=runtime.settings.effective_database_url,
            tenant=tenant_id,
            prefixes=["88.300"],
            platform_auth=True,
        )
        app = build_app(config)
        node = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        values = {
            "values": [{"index": 1, "type": "URL", "data": "https://n.example/1", "permissions": "1100"}]
        }
        r = await node.put("/api/handles/88.300/k1", json=values, headers={"X-API-Key": keys["viewer"]})
        assert r.status_code == 403
        r = await node.put("/api/handles/88.300/k1", json=values, headers={"X-API-Key": keys["engineer"]})
        assert r.status_code == 201, r.text
        r = await node.get("/api/handles/88.300/k1", headers={"X-API-Key": keys["viewer"]})
        assert [v["index"] for v in r.json()["values"]] == [1, 100]
        r = await node.get("/api/handles/88.300/k1")
        assert [v["index"] for v in r.json()["values"]] == [100]
        r = await node.get("/api/handles/88.300/k1", headers={"X-API-Key": "gy_000000000000_nope"})
        assert r.status_code == 401
        await node.aclose()
        for hook in app.on_shutdown:
            await hook()
