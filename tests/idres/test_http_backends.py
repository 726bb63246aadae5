"""The Handle API on both registry backends (PostgreSQL reads go through the async engine)."""

from __future__ import annotations

import httpx

from gongyun.idres.auth import Principal, static_token_auth
from gongyun.idres.http import HandleService, make_app
from gongyun.idres.registry import Registry

from .conftest import TENANT

OP = {"Authorization": "Bearer tok"}


async def test_handle_api_on_backend(registry: Registry) -> None:
    service = HandleService(
        registry, TENANT, authenticators=[static_token_auth({"tok": Principal("op", None, operator=True)})]
    )
    app = make_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        values = {"values": [{"index": 1, "type": "URL", "data": "https://b.example/1"}]}
        assert (await c.put("/api/handles/88.100.1/b1", json=values, headers=OP)).status_code == 201
        first = await c.get("/api/handles/88.100.1/b1")
        second = await c.get("/api/handles/88.100.1/B1")
        assert first.status_code == second.status_code == 200 and first.content == second.content
        values["values"][0]["data"] = "https://b.example/2"
        r = await c.put("/api/handles/88.100.1/b1?overwrite=true", json=values, headers=OP)
        assert r.status_code == 200
        assert (await c.get("/api/handles/88.100.1/b1")).json()["values"][0]["data"]["value"].endswith("/2")
        assert (await c.get("/hrls/handles", params={"URL": "*b.example/2"}, headers=OP)).json() == [
            "88.100.1/b1"
        ]
        # keyset pages of a reverse lookup: {"handles", "next"} with after= (empty: the first page)
        for i in range(2, 5):
            more = {"values": [{"index": 1, "type": "URL", "data": "https://b.example/2"}]}
            assert (await c.put(f"/api/handles/88.100.1/b{i}", json=more, headers=OP)).status_code == 201
        query = {"URL": "https://b.example/2", "after": "", "limit": "3"}
        page = (await c.get("/hrls/handles", params=query, headers=OP)).json()
        assert (
            page["handles"] == ["88.100.1/b1", "88.100.1/b2", "88.100.1/b3"] and page["next"] == "88.100.1/b3"
        )
        page = (await c.get("/hrls/handles", params={**query, "after": page["next"]}, headers=OP)).json()
        assert page["handles"] == ["88.100.1/b4"] and "next" not in page
        assert (await c.get("/hrls/handles", params=query)).status_code == 401
        assert (await c.delete("/api/handles/88.100.1/b1", headers=OP)).status_code == 200
        r = await c.get("/api/handles/88.100.1/b1")
        assert (r.status_code, r.json()["responseCode"]) == (404, 100)
    service.close()
