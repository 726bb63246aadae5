"""Walk every operation of the OpenAPI schema: 401 without credentials, 404 across tenants."""

from __future__ import annotations

import re
from typing import Any

import httpx

from gongyun.api.public import PUBLIC_PREFIXES, is_public
from gongyun.runtime import Runtime
from tests.apphelp import admin_headers, login

METHODS = ("get", "post", "put", "patch", "delete")
PARAM = re.compile(r"\{([^}]+)\}")


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    ops = []
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                ops.append((method.upper(), path))
    return ops


async def test_every_non_public_operation_requires_authentication(
    app_client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = app_client
    schema = (await client.get("/openapi.json")).json()
    ops = _operations(schema)
    assert len(ops) >= 15
    checked = 0
    for method, path in ops:
        if is_public(method, path):
            continue
        url = PARAM.sub("00000000000000000000000000000000", path)
        resp = await client.request(method, url, json={} if method in {"POST", "PUT", "PATCH"} else None)
        assert resp.status_code == 401, f"{method} {path} answered {resp.status_code} without credentials"
        assert resp.json()["code"] == "unauthenticated"
        bad = await client.request(method, url, headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401, f"{method} {path} accepted a garbage token"
        checked += 1
    assert checked >= 10


async def _tenant_with_admin(client: httpx.AsyncClient, root: dict[str, str], name: str) -> dict[str, Any]:
    tenant = (await client.post("/api/v1/tenants", json={"name": name}, headers=root)).json()
    # Platform admins act in another tenant with X-Tenant.
    as_tenant = {**root, "X-Tenant": tenant["id"]}
    password = f"{name}-admin-password"
    user = await client.post(
        "/api/v1/users",
        json={"username": f"{name}-admin", "password": password, "role": "tenant-admin"},
        headers=as_tenant,
    )
    assert user.status_code == 201, user.text
    headers = await login(client, f"{name}-admin", password)
    key = (await client.post("/api/v1/apikeys", json={"name": "k", "role": "viewer"}, headers=headers)).json()
    return {"tenant": tenant, "headers": headers, "user": user.json(), "key": key}


async def test_tenant_a_gets_404_for_every_object_of_tenant_b(
    app_client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = app_client
    root = await admin_headers(client)
    a = await _tenant_with_admin(client, root, "alpha")
    b = await _tenant_with_admin(client, root, "beta")
    ids = {"tenant_id": b["tenant"]["id"], "user_id": b["user"]["id"], "key_id": b["key"]["id"]}
    schema = (await client.get("/openapi.json")).json()
    tried = 0
    for method, path in _operations(schema):
        params = PARAM.findall(path)
        if not params or is_public(method, path):
            continue
        missing = [p for p in params if p not in ids]
        assert not missing, f"no tenant-B object for path parameter(s) {missing} of {method} {path}"
        url = path.format(**ids)
        body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
        resp = await client.request(method, url, json=body, headers=a["headers"])
        assert resp.status_code == 404, f"{method} {path} answered {resp.status_code} across tenants"
        assert b["user"]["username"] not in resp.text
        tried += 1
    assert tried >= 5
    # Listings show only the caller's own tenant.
    users = (await client.get("/api/v1/users", headers=a["headers"])).json()
    assert {u["username"] for u in users} == {"alpha-admin"}
    keys = (await client.get("/api/v1/apikeys", headers=a["headers"])).json()
    assert {k["tenant_id"] for k in keys} == {a["tenant"]["id"]}
    tenants = (await client.get("/api/v1/tenants", headers=a["headers"])).json()
    assert [t["name"] for t in tenants] == ["alpha"]
    # A tenant admin cannot borrow another tenant with X-Tenant.
    borrowed = await client.get("/api/v1/users", headers={**a["headers"], "X-Tenant": b["tenant"]["id"]})
    assert borrowed.status_code == 404
    # B's objects are intact.
    still = await client.get(f"/api/v1/users/{b['user']['id']}", headers=b["headers"])
    assert still.status_code == 200


async def test_routes_outside_the_schema_are_declared_public_or_authenticated(
    app_client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    """Console pages and mounts are not in OpenAPI; each must be public or answer 401."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Mount

    client, _ = app_client
    app = client._transport.app  # type: ignore[attr-defined]
    schema_paths = set((await client.get("/openapi.json")).json()["paths"])
    mounts, pages, total = 0, 0, 0
    for ctx in iter_route_contexts(app.routes):
        total += 1
        if isinstance(ctx.original_route, Mount):
            assert any(p.startswith(str(ctx.path) + "/") for p in PUBLIC_PREFIXES), ctx.path
            mounts += 1
            continue
        if ctx.path is None or ctx.path in schema_paths:
            continue
        for method in ctx.methods or ():
            if method == "HEAD":
                continue
            if is_public(method, ctx.path):
                pages += 1
                continue
            resp = await client.request(method, PARAM.sub("x", ctx.path))
            assert resp.status_code == 401, f"{method} {ctx.path} is neither public nor authenticated"
    assert total > 20
    assert mounts >= 1  # the console's static files
    assert pages >= 10  # the console's pages, declared public on purpose
