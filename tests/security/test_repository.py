"""Accounts repository and tenant scoping, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from gongyun.db import Database
from gongyun.errors import Conflict, PermissionDenied, ValidationFailed
from gongyun.security import accounts, auth
from gongyun.security.models import ApiKey, User
from gongyun.security.rbac import Role
from gongyun.security.tenancy import scope_session


async def test_create_and_find_accounts(db: Database) -> None:
    async with db.session() as s:
        t = await accounts.create_tenant(s, "acme", "ACME Corp")
        u = await accounts.create_user(s, t.id, "alice", "alice-password", Role.engineer, "Alice")
        k = await accounts.create_api_key(s, t.id, "line-1", Role.operator, "alice")
    async with db.session() as s:
        found = await accounts.get_user_by_name(s, "alice")
        assert found.id == u.id and found.role == "engineer"
        assert auth.verify_password(found.password_hash, "alice-password")
        assert found.password_hash.startswith("$argon2id$")
        principal = await auth.authenticate_api_key(s, k.key)
        assert principal.tenant_id == t.id and principal.role is Role.operator
    with pytest.raises(Conflict):
        async with db.session() as s:
            await accounts.create_tenant(s, "acme")
    with pytest.raises(Conflict):
        async with db.session() as s:
            await accounts.create_user(s, t.id, "alice", "another-password", Role.viewer)
    with pytest.raises(ValidationFailed):
        async with db.session() as s:
            await accounts.create_user(s, t.id, "bob", "short", Role.viewer)


async def test_bootstrap_creates_first_admin_once(db: Database) -> None:
    async with db.session() as s:
        generated = await accounts.ensure_bootstrap(s, "admin", None)
    assert generated and len(generated) >= 16
    async with db.session() as s:
        assert await accounts.ensure_bootstrap(s, "admin", None) is None
        admin = await accounts.get_user_by_name(s, "admin")
        assert admin.role == Role.platform_admin.value
        assert auth.verify_password(admin.password_hash, generated)


async def test_scoped_session_hides_and_protects_other_tenants(db: Database) -> None:
    async with db.session() as s:
        a = await accounts.create_tenant(s, "tenant-a")
        b = await accounts.create_tenant(s, "tenant-b")
        await accounts.create_user(s, a.id, "ua", "password-of-a", Role.viewer)
        ub = await accounts.create_user(s, b.id, "ub", "password-of-b", Role.viewer)
        await accounts.create_api_key(s, b.id, "kb", Role.viewer, "ub")
    async with db.sessions() as s:
        scope_session(s.sync_session, a.id)
        names = set((await s.execute(select(User.username))).scalars())
        assert names == {"ua"}
        assert await s.get(User, ub.id) is None
        assert list((await s.execute(select(ApiKey))).scalars()) == []
        # Bulk updates and deletes cannot reach the other tenant either.
        await s.execute(update(User).values(display_name="hacked"))
        await s.execute(delete(ApiKey))
        await s.commit()
    async with db.session() as s:
        other = await accounts.get_user_by_name(s, "ub")
        assert other.display_name == ""
        assert len(list((await s.execute(select(ApiKey))).scalars())) == 1
    # New rows are stamped with the session's tenant; a foreign tenant id is refused.
    async with db.sessions() as s:
        scope_session(s.sync_session, a.id)
        key = await accounts.create_api_key(s, a.id, "ka", Role.viewer, "ua")
        assert key.row.tenant_id == a.id
        s.add(ApiKey(tenant_id=b.id, name="sneak", role="viewer", prefix="p" * 12, secret_hash="0" * 64))
        with pytest.raises(PermissionDenied):
            await s.flush()
        await s.rollback()
