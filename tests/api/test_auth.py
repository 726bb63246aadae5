"""Login, lockout, refresh rotation, logout, API keys, /me."""

from __future__ import annotations

from pathlib import Path

import httpx

from gongyun.platform import Platform
from tests.apphelp import ADMIN_PASSWORD, admin_headers, login, running_app


async def test_login_and_me(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    headers = await admin_headers(client)
    me = (await client.get("/api/v1/me", headers=headers)).json()
    assert me["username"] == "admin"
    assert me["role"] == "platform-admin"
    assert me["tenant_name"] == "default"
    assert "tenants:write" in me["permissions"]


async def test_wrong_password_is_401_with_problem(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    resp = await client.post("/api/v1/auth/token", data={"username": "admin", "password": "nope-nope-nope"})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "invalid_credentials"
    unknown = await client.post("/api/v1/auth/token", data={"username": "ghost", "password": "x" * 12})
    assert unknown.json()["code"] == "invalid_credentials"  # no user enumeration


async def test_lockout_after_repeated_wrong_passwords(tmp_path: Path) -> None:
    async with running_app(tmp_path, lockout_threshold=3, lockout_duration_s=2) as (client, _):
        for _ in range(3):
            resp = await client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": "wrong-password"}
            )
            assert resp.status_code == 401
        locked = await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        # A locked account answers exactly like a wrong password (no account enumeration).
        assert locked.status_code == 401
        assert locked.json()["code"] == "invalid_credentials"
        assert "retry-after" not in locked.headers
        import asyncio

        await asyncio.sleep(2.2)
        assert (
            await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        ).status_code == 200


async def test_refresh_rotation_and_reuse_detection(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    first = (
        await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    ).json()
    second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert me.status_code == 200
    # Reusing the spent token is theft: the whole family is revoked, the new one too.
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "token_invalid"
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert after.status_code == 401


async def test_logout_revokes_refresh_token(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    tokens = (
        await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    ).json()
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


async def test_expired_and_forged_access_tokens(tmp_path: Path) -> None:
    import jwt

    async with running_app(tmp_path, access_token_ttl_s=1) as (client, _):
        headers = await admin_headers(client)
        forged = jwt.encode(
            {"sub": "x", "tid": "y", "role": "platform-admin", "typ": "access", "exp": 9999999999},
            "wrong-key-wrong-key-wrong-key-32b",
            algorithm="HS256",
        )
        resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert resp.status_code == 401
        import asyncio

        await asyncio.sleep(2.1)
        expired = await client.get("/api/v1/me", headers=headers)
        assert expired.status_code == 401
        assert "expired" in expired.json()["detail"]


async def test_api_key_lifecycle(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, runtime = app_client
    headers = await admin_headers(client)
    created = await client.post("/api/v1/apikeys", json={"name": "scada", "role": "viewer"}, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("gy_")
    listed = (await client.get("/api/v1/apikeys", headers=headers)).json()
    assert all("key" not in item and "secret_hash" not in item for item in listed)
    me = await client.get("/api/v1/me", headers={"X-API-Key": key})
    assert me.status_code == 200 and me.json()["role"] == "viewer" and me.json()["kind"] == "apikey"
    # A viewer key cannot create users.
    denied = await client.post(
        "/api/v1/users",
        json={"username": "eve", "password": "correct-horse-battery", "role": "viewer"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    # The key is stored hashed: the plain secret appears nowhere in the database.
    from sqlalchemy import text

    async with runtime.db.session() as session:
        rows = (await session.execute(text("SELECT prefix, secret_hash FROM api_keys"))).all()
    assert rows and all(key.split("_", 2)[2] not in r.secret_hash for r in rows)
    assert (await client.delete(f"/api/v1/apikeys/{body['id']}", headers=headers)).status_code == 204
    revoked = await client.get("/api/v1/me", headers={"X-API-Key": key})
    assert revoked.status_code == 401


async def test_role_escalation_is_refused(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    admin = await admin_headers(client)
    ok = await client.post(
        "/api/v1/users",
        json={"username": "eng1", "password": "engineer-password", "role": "engineer"},
        headers=admin,
    )
    assert ok.status_code == 201
    eng = await login(client, "eng1", "engineer-password")
    # engineers have no users:write at all
    resp = await client.post(
        "/api/v1/users",
        json={"username": "x2", "password": "another-password", "role": "viewer"},
        headers=eng,
    )
    assert resp.status_code == 403
    # a tenant admin cannot mint a platform admin
    await client.post(
        "/api/v1/users",
        json={"username": "ta", "password": "tenant-admin-pw", "role": "tenant-admin"},
        headers=admin,
    )
    ta = await login(client, "ta", "tenant-admin-pw")
    resp = await client.post(
        "/api/v1/apikeys", json={"name": "root-key", "role": "platform-admin"}, headers=ta
    )
    assert resp.status_code == 403


async def test_disabled_user_and_password_change_invalidate_tokens(
    app_client: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, _ = app_client
    admin = await admin_headers(client)
    uid = (
        await client.post(
            "/api/v1/users",
            json={"username": "op1", "password": "operator-password", "role": "operator"},
            headers=admin,
        )
    ).json()["id"]
    op = await login(client, "op1", "operator-password")
    assert (await client.get("/api/v1/me", headers=op)).status_code == 200
    await client.patch(f"/api/v1/users/{uid}", json={"password": "a-new-password-1"}, headers=admin)
    assert (await client.get("/api/v1/me", headers=op)).status_code == 401
    op = await login(client, "op1", "a-new-password-1")
    await client.patch(f"/api/v1/users/{uid}", json={"disabled": True}, headers=admin)
    assert (await client.get("/api/v1/me", headers=op)).status_code == 401
    resp = await client.post("/api/v1/auth/token", data={"username": "op1", "password": "a-new-password-1"})
    assert resp.status_code == 401
