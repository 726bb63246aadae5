"""Concurrency and abuse: lockout under parallel guesses, refresh races, duplicate races."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from gongyun.db import Database
from gongyun.errors import PermissionDenied
from gongyun.security.audit.chain import AuditEvent
from gongyun.security.models import ApiKey, User
from gongyun.security.tenancy import scope_session
from tests.apphelp import ADMIN_PASSWORD, admin_headers, running_app


async def test_parallel_wrong_passwords_lock_and_check_at_most_threshold(tmp_path: Path, db_url: str) -> None:
    async with running_app(
        tmp_path, db_url, lockout_threshold=5, lockout_duration_s=60, login_ip_threshold=1000
    ) as (client, runtime):

        async def guess(i: int) -> int:
            resp = await client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": f"wrong-{i}"}
            )
            return resp.status_code

        codes = await asyncio.gather(*(guess(i) for i in range(30)))
        assert set(codes) == {401}, codes  # a locked account answers like a wrong password
        async with runtime.db.session() as session:
            admin = (await session.execute(select(User).where(User.username == "admin"))).scalar_one()
            checked = (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(
                        AuditEvent.action == "auth.login",
                        AuditEvent.detail["reason"].as_string() == "password",
                    )
                )
            ).scalar_one()
        assert admin.locked_until is not None
        assert checked <= 5  # never more than the threshold passwords checked
        right = await client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert right.status_code == 401 and right.json()["code"] == "invalid_credentials"


async def test_parallel_use_of_one_refresh_token_leaves_no_live_session(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        tokens = (
            await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        ).json()
        results = await asyncio.gather(
            *(
                client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
                for _ in range(5)
            )
        )
        winners = [r.json() for r in results if r.status_code == 200]
        assert len(winners) <= 1
        # The losers' reuse revoked the family: the winner's token is dead too.
        for w in winners:
            again = await client.post("/api/v1/auth/refresh", json={"refresh_token": w["refresh_token"]})
            assert again.status_code == 401


async def test_password_change_kills_refresh_tokens_and_new_login_works(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _):
        headers = await admin_headers(client)
        uid = (
            await client.post(
                "/api/v1/users",
                json={"username": "bob", "password": "bob-password-1", "role": "viewer"},
                headers=headers,
            )
        ).json()["id"]
        old = (
            await client.post("/api/v1/auth/token", data={"username": "bob", "password": "bob-password-1"})
        ).json()
        await client.patch(f"/api/v1/users/{uid}", json={"password": "bob-password-2"}, headers=headers)
        assert (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]})
        ).status_code == 401
        fresh = await client.post(
            "/api/v1/auth/token", data={"username": "bob", "password": "bob-password-2"}
        )
        me = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}
        )
        assert me.status_code == 200  # a token issued right after the change works


async def test_concurrent_duplicate_creates_give_conflict_not_500(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        headers = await admin_headers(client)
        results = await asyncio.gather(
            *(client.post("/api/v1/tenants", json={"name": "same"}, headers=headers) for _ in range(6))
        )
        codes = sorted(r.status_code for r in results)
        assert codes.count(201) == 1 and set(codes) <= {201, 409}, codes


async def test_nul_bytes_and_huge_numbers_are_4xx(tmp_path: Path, db_url: str) -> None:
    async with running_app(tmp_path, db_url) as (client, _):
        headers = await admin_headers(client)
        assert (await client.get("/api/v1/users/abc%00def", headers=headers)).status_code == 400
        assert (
            await client.get("/api/v1/audit?before_seq=10000000000000000000000000", headers=headers)
        ).status_code == 422
        resp = await client.post(
            "/api/v1/users",
            json={
                "username": "nul-user",
                "password": "nul-password-1",
                "role": "viewer",
                "display_name": "a\u0000b",
            },
            headers=headers,
        )
        assert resp.status_code in {400, 201}  # SQLite stores NUL; PostgreSQL refuses it: never 500
        login = await client.post(
            "/api/v1/auth/token", data={"username": "ad\u0000min", "password": "x" * 12}
        )
        assert 400 <= login.status_code < 500
        assert (await client.get("/healthz")).status_code == 200


async def test_scoped_session_refuses_foreign_inserts_updates_and_deletes(db_url: str) -> None:
    from gongyun.db import upgrade
    from gongyun.security import accounts
    from gongyun.security.rbac import Role

    await upgrade(db_url)
    db = Database(db_url)
    try:
        async with db.session() as s:
            a = await accounts.create_tenant(s, "ta")
            b = await accounts.create_tenant(s, "tb")
            ub = await accounts.create_user(s, b.id, "userb", "password-bbbb", Role.viewer)
        async with db.sessions() as s:
            scope_session(s.sync_session, a.id)
            with pytest.raises(PermissionDenied):
                await s.execute(
                    insert(ApiKey).values(
                        tenant_id=b.id,
                        name="x",
                        role="viewer",
                        prefix="q" * 12,
                        secret_hash="0" * 64,
                        created_by="",
                        created_at=ub.created_at,
                    )
                )
            with pytest.raises(PermissionDenied):
                await s.execute(update(User).values(tenant_id=b.id))
            await s.rollback()
        async with db.sessions() as s:
            foreign = await s.get(User, ub.id)
            assert foreign is not None
            scope_session(s.sync_session, a.id)
            await s.delete(foreign)
            with pytest.raises(PermissionDenied):
                await s.flush()
            await s.rollback()
    finally:
        await db.dispose()
