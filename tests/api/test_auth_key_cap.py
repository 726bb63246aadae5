"""Over HTTP, on both databases: a demoted creator's API keys shrink with them at once."""

from __future__ import annotations

from pathlib import Path

from tests.apphelp import admin_headers, login, running_app


async def test_api_keys_are_capped_when_their_creator_is_demoted(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        root = await admin_headers(client)
        made = await client.post(
            "/api/v1/users",
            json={"username": "erin", "password": "erin-password-1", "role": "tenant-admin"},
            headers=root,
        )
        erin = await login(client, "erin", "erin-password-1")
        key = (
            await client.post("/api/v1/apikeys", json={"name": "ops", "role": "tenant-admin"}, headers=erin)
        ).json()
        as_key = {"X-API-Key": key["key"]}
        newcomer = {"username": "frank", "password": "frank-password-1", "role": "viewer"}
        assert (await client.post("/api/v1/users", json=newcomer, headers=as_key)).status_code == 201

        down = await client.patch(
            f"/api/v1/users/{made.json()['id']}", json={"role": "operator"}, headers=root
        )
        assert down.status_code == 200, down.text
        me = (await client.get("/api/v1/me", headers=as_key)).json()
        assert me["role"] == "operator" and "users:write" not in me["permissions"]
        assert "devices:command" in me["permissions"]
        again = {**newcomer, "username": "grace"}
        refused = await client.post("/api/v1/users", json=again, headers=as_key)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        minted = await client.post("/api/v1/apikeys", json={"name": "x", "role": "viewer"}, headers=as_key)
        assert minted.status_code == 403
        listed = {k["name"]: k for k in (await client.get("/api/v1/apikeys", headers=root)).json()}
        assert listed["ops"]["role"] == "tenant-admin" and listed["ops"]["revoked_at"] is None

        trail = (await client.get("/api/v1/audit?limit=50", headers=root)).json()
        demotion = [
            (e["actor"], e["action"], e["target"], e["detail"].get("to"), e["detail"].get("effective_role"))
            for e in trail
            if e["action"] in {"user.demote", "apikey.cap"}
        ]
        assert sorted(demotion) == [
            ("admin", "apikey.cap", "ops", None, "operator"),
            ("admin", "user.demote", "erin", "operator", None),
        ]

        up = await client.patch(
            f"/api/v1/users/{made.json()['id']}", json={"role": "tenant-admin"}, headers=root
        )
        assert up.status_code == 200
        assert (await client.get("/api/v1/me", headers=as_key)).json()["role"] == "tenant-admin"
        assert (await client.post("/api/v1/users", json=again, headers=as_key)).status_code == 201
