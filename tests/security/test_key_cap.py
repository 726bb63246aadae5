"""API keys never do more than their creator can do now (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from gongyun.db import Database
from gongyun.security import accounts, auth
from gongyun.security.audit.chain import AuditEvent
from gongyun.security.models import User
from gongyun.security.rbac import MATRIX, Role, can_grant, cap_role


def test_cap_is_the_strongest_role_both_grant() -> None:
    for role in Role:
        for ceiling in Role:
            capped = cap_role(role, ceiling)
            assert capped is not None
            assert MATRIX[capped] == MATRIX[role] & MATRIX[ceiling], (role, ceiling, capped)
    assert cap_role(Role.engineer, Role.operator) is Role.operator
    assert cap_role(Role.engineer, Role.auditor) is Role.viewer  # never the auditor's extras
    assert cap_role(Role.viewer, Role.platform_admin) is Role.viewer  # a cap never raises


def test_grants_follow_permissions_not_rank() -> None:
    assert can_grant(Role.tenant_admin, Role.auditor)
    assert not can_grant(Role.tenant_admin, Role.platform_admin)
    assert not can_grant(Role.engineer, Role.auditor)  # auditors read the audit trail
    assert not can_grant(Role.auditor, Role.operator)  # operators command devices
    assert all(can_grant(Role.platform_admin, r) for r in Role)


async def _role(db: Database, key: str) -> Role:
    async with db.session() as s:
        return (await auth.authenticate_api_key(s, key)).role


async def _demote(db: Database, user_id: str, role: Role) -> None:
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        await accounts.set_role(s, user, role, actor="root")


async def test_keys_are_capped_at_their_creators_current_role(db: Database) -> None:
    async with db.session() as s:
        t = await accounts.create_tenant(s, "plant")
        other = await accounts.create_tenant(s, "other")
        alice = await accounts.create_user(s, t.id, "alice", "alice-password-1", Role.tenant_admin)
        admin_key = await accounts.create_api_key(s, t.id, "adm", Role.tenant_admin, "alice", None, alice.id)
        eng_key = await accounts.create_api_key(s, t.id, "eng", Role.engineer, "alice", None, alice.id)
        via = await accounts.creator_of(s, "apikey", admin_key.row.id)  # a key made by her key
        child = await accounts.create_api_key(s, t.id, "child", Role.operator, "adm", None, via)
        abroad = await accounts.create_api_key(s, other.id, "abroad", Role.auditor, "alice", None, alice.id)
        viewer_key = await accounts.create_api_key(s, t.id, "view", Role.viewer, "alice", None, alice.id)
        cli = await accounts.create_api_key(s, t.id, "cli", Role.engineer, "cli")
    assert await _role(db, admin_key.key) is Role.tenant_admin

    await _demote(db, alice.id, Role.operator)
    assert await _role(db, admin_key.key) is Role.operator
    assert await _role(db, eng_key.key) is Role.operator
    assert await _role(db, child.key) is Role.operator
    assert await _role(db, abroad.key) is Role.viewer  # auditor ∩ operator
    assert await _role(db, viewer_key.key) is Role.viewer
    assert await _role(db, cli.key) is Role.engineer  # made by no person: nothing to cap at

    await _demote(db, alice.id, Role.viewer)
    assert {await _role(db, k.key) for k in (admin_key, eng_key, child, abroad)} == {Role.viewer}
    await _demote(db, alice.id, Role.engineer)  # a promotion gives back up to the key's own role
    assert await _role(db, admin_key.key) is Role.engineer
    assert await _role(db, abroad.key) is Role.viewer
    assert await _role(db, child.key) is Role.operator

    async with db.session() as s:
        events = (
            await s.execute(
                select(AuditEvent)
                .where(AuditEvent.action.in_(["user.demote", "apikey.cap"]))
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        trail = [
            (e.tenant_id, e.actor, e.action, e.target, e.detail.get("to"), e.detail.get("effective_role"))
            for e in events
        ]
    assert trail == [
        (t.id, "root", "user.demote", "alice", "operator", None),
        (t.id, "root", "apikey.cap", "abroad", None, "viewer"),  # audited where alice lives
        (t.id, "root", "apikey.cap", "adm", None, "operator"),
        (t.id, "root", "apikey.cap", "eng", None, "operator"),
        (t.id, "root", "user.demote", "alice", "viewer", None),
        (t.id, "root", "apikey.cap", "abroad", None, "viewer"),
        (t.id, "root", "apikey.cap", "adm", None, "viewer"),
        (t.id, "root", "apikey.cap", "child", None, "viewer"),
        (t.id, "root", "apikey.cap", "eng", None, "viewer"),
    ]
