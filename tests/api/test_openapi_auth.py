"""Walk every operation of the OpenAPI schema: 401 without credentials, 404 across tenants."""

from __future__ import annotations

import re
from typing import Any

import httpx

from gongyun.api.public import PUBLIC_PREFIXES, is_public
from gongyun.platform import Platform
from tests.api.tenant_objects import NONEXISTENT, make_objects
from tests.apphelp import admin_headers, login

METHODS = ("get", "post", "put", "patch", "delete")
BUILT_IN_APPS = ("maintenance", "quality", "oee", "scheduling", "trace")
PARAM = re.compile(r"\{([^}]+)\}")


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    ops = []
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                ops.append((method.upper(), path))
    return ops


async def test_every_non_public_operation_requires_authentication(
    app_client: tuple[httpx.AsyncClient, Platform],
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


async def _tenant(client: httpx.AsyncClient, root: dict[str, str], name: str) -> dict[str, Any]:
    tenant = (await client.post("/api/v1/tenants", json={"name": name}, headers=root)).json()
    as_tenant = {**root, "X-Tenant": tenant["id"]}  # platform admins act in a tenant with X-Tenant
    callers: dict[str, dict[str, str]] = {}
    first_user: dict[str, Any] = {}
    for role in ("tenant-admin", "engineer", "operator"):
        password = f"{name}-{role}-password"
        user = await client.post(
            "/api/v1/users",
            json={"username": f"{name}-{role}", "password": password, "role": role},
            headers=as_tenant,
        )
        assert user.status_code == 201, user.text
        first_user = first_user or user.json()
        callers[role] = await login(client, f"{name}-{role}", password)
    key = (
        await client.post(
            "/api/v1/apikeys", json={"name": "k", "role": "viewer"}, headers=callers["tenant-admin"]
        )
    ).json()
    callers["viewer-key"] = {"X-API-Key": key["key"]}
    base = {"tenant_id": tenant["id"], "user_id": first_user["id"], "key_id": key["id"]}
    for app in BUILT_IN_APPS:  # their routes answer only where they are enabled: probe them live
        on = await client.patch(
            f"/api/v1/apps/{app}", json={"enabled": True}, headers=callers["tenant-admin"]
        )
        assert on.status_code == 200, on.text
    ids = await make_objects(client, callers["tenant-admin"], base, name)
    return {"tenant": tenant, "callers": callers, "ids": ids, "user": first_user}


def _app_own_route(path: str) -> bool:
    """A built-in app's own route with path parameters (the app's objects, not the platform's).

    Those are probed with values naming nothing (no 5xx, no leak of B's data); each app's own
    tests check that another tenant's objects stay out of reach.
    """
    return any(path.startswith(f"/api/v1/apps/{app}/") for app in BUILT_IN_APPS) and bool(PARAM.search(path))


def _url(path: str, ids: dict[str, str]) -> str:
    if _app_own_route(path):  # an app's own parameters, never the platform's objects
        return PARAM.sub("0" * 32, path)
    missing = [p for p in PARAM.findall(path) if p.split(":")[0] not in ids]
    assert not missing, f"tests/api/tenant_objects.py has no object for path parameter(s) {missing} of {path}"
    return PARAM.sub(lambda m: ids[m.group(1).split(":")[0]], path)


async def test_tenant_b_objects_are_indistinguishable_from_nonexistent_ones(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    """For every role of tenant A, B's objects answer exactly like objects that do not exist."""
    client, _ = app_client
    root = await admin_headers(client)
    a = await _tenant(client, root, "alpha")
    b = await _tenant(client, root, "beta")
    ops = [(m, p) for m, p in _operations((await client.get("/openapi.json")).json()) if PARAM.search(p)]
    ops = [(m, p) for m, p in ops if not is_public(m, p)]
    assert len(ops) >= 10
    # (names the caller itself puts in the URL, such as a device name, may be echoed back)
    secrets_of_b = [b["user"]["username"], "secret-beta.example", "hook-beta", "ent-beta", "hot-beta"]
    for role, headers in a["callers"].items():
        for method, path in ops:
            body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
            resp_b = await client.request(method, _url(path, b["ids"]), json=body, headers=headers)
            resp_none = await client.request(method, _url(path, NONEXISTENT), json=body, headers=headers)
            where = f"{role}: {method} {path}"
            app_route = _app_own_route(path)
            # (an app's PUT may create the caller's own object under a name: 2xx is no leak there)
            assert app_route or not 200 <= resp_b.status_code < 300, f"{where} reached tenant B's object"
            assert resp_b.status_code == resp_none.status_code, (
                f"{where}: B's object answers {resp_b.status_code}, a missing one {resp_none.status_code}"
            )
            assert not any(s in resp_b.text for s in secrets_of_b), f"{where} leaked B's data"
            assert resp_b.status_code < 500, f"{where} failed with {resp_b.status_code}: {resp_b.text[:300]}"
            if role == "tenant-admin" and method == "GET" and not app_route:
                assert resp_b.status_code == 404, f"{where} answered {resp_b.status_code}, not 404"
    # Listings show only the caller's own tenant.
    admin_a = a["callers"]["tenant-admin"]
    users = (await client.get("/api/v1/users", headers=admin_a)).json()
    assert {u["username"] for u in users} == {"alpha-tenant-admin", "alpha-engineer", "alpha-operator"}
    keys = (await client.get("/api/v1/apikeys", headers=admin_a)).json()
    assert {k["tenant_id"] for k in keys} == {a["tenant"]["id"]}
    tenants = (await client.get("/api/v1/tenants", headers=admin_a)).json()
    assert [t["name"] for t in tenants] == ["alpha"]
    # A tenant admin cannot borrow another tenant with X-Tenant.
    borrowed = await client.get("/api/v1/users", headers={**admin_a, "X-Tenant": b["tenant"]["id"]})
    assert borrowed.status_code == 404
    # Every object of B survived tenant A's attempts.
    admin_b = b["callers"]["tenant-admin"]
    for path in (
        f"/api/v1/users/{b['ids']['user_id']}",
        f"/api/v1/apikeys/{b['ids']['key_id']}",
        f"/api/v1/assets/devices/{b['ids']['device_id']}",
        f"/api/v1/assets/tags/{b['ids']['tag_id']}",
        f"/api/v1/assets/{b['ids']['node_id']}",
        f"/api/v1/alarms/rules/{b['ids']['rule_id']}",
        f"/api/v1/identifiers/records/{b['ids']['handle']}",
    ):
        assert (await client.get(path, headers=admin_b)).status_code == 200, path


async def test_routes_outside_the_schema_are_declared_public_or_authenticated(
    app_client: tuple[httpx.AsyncClient, Platform],
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
