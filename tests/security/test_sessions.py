"""Session revocation, address throttling, lockout secrecy, creator-bound API keys (both databases)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from gongyun.config import Settings
from gongyun.db import Database
from gongyun.errors import InvalidCredentials, LoginThrottled, TokenInvalid
from gongyun.security import accounts, auth
from gongyun.security.audit.chain import AuditEvent
from gongyun.security.models import ApiKey, LoginThrottle, RefreshToken, User
from gongyun.security.rbac import Role
from gongyun.security.throttle import client_key
from tests.apphelp import make_settings

PASSWORD = "alice-password-1"


async def _alice(db: Database, tenant: str = "acme") -> tuple[str, str]:
    async with db.session() as s:
        t = await accounts.create_tenant(s, tenant)
        u = await accounts.create_user(s, t.id, "alice", PASSWORD, Role.tenant_admin)
        return t.id, u.id


async def _login(db: Database, settings: Settings, client: str = "10.0.0.1") -> auth.TokenPair:
    async with db.session() as s:
        return await auth.login(s, settings, "alice", PASSWORD, client)


async def _check(db: Database, settings: Settings, token: str) -> auth.Principal:
    async with db.session() as s:
        return await auth.authenticate_access_token(s, settings, token)


async def test_logout_ends_access_token_at_once_in_another_process(
    two_processes: tuple[Database, Database], tmp_path: Path, db_url: str
) -> None:
    a, b = two_processes
    settings = make_settings(tmp_path, db_url)
    await _alice(a)
    one, two = await _login(a, settings), await _login(a, settings)
    assert (await _check(b, settings, one.access_token)).name == "alice"
    refreshed = None
    async with b.session() as s:
        refreshed = await auth.refresh(s, settings, one.refresh_token)
    assert (await _check(a, settings, refreshed.access_token)).name == "alice"
    async with a.session() as s:
        await auth.logout(s, refreshed.refresh_token)
    for token in (one.access_token, refreshed.access_token):
        with pytest.raises(TokenInvalid, match="session ended"):
            await _check(b, settings, token)
    assert (await _check(b, settings, two.access_token)).name == "alice"  # the other login lives


async def test_refresh_reuse_ends_the_access_tokens_of_the_family(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url)
    await _alice(db)
    pair = await _login(db, settings)
    async with db.session() as s:
        await auth.refresh(s, settings, pair.refresh_token)
    with pytest.raises(TokenInvalid):
        async with db.session() as s:
            await auth.refresh(s, settings, pair.refresh_token)  # reuse: theft assumed
    with pytest.raises(TokenInvalid, match="session ended"):
        await _check(db, settings, pair.access_token)


async def test_password_change_user_and_tenant_disable_end_sessions(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url)
    _, user_id = await _alice(db)
    pair = await _login(db, settings)
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        await accounts.set_password(s, user, "alice-password-2")
    with pytest.raises(TokenInvalid, match="password changed"):
        await _check(db, settings, pair.access_token)
    with pytest.raises(TokenInvalid):
        async with db.session() as s:
            await auth.refresh(s, settings, pair.refresh_token)

    async with db.session() as s:
        pair = await auth.login(s, settings, "alice", "alice-password-2", "10.0.0.1")
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        await accounts.set_disabled(s, user, True)
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        await accounts.set_disabled(s, user, False)
    with pytest.raises(TokenInvalid, match="session ended"):  # re-enabling revives nothing
        await _check(db, settings, pair.access_token)

    async with db.session() as s:
        pair = await auth.login(s, settings, "alice", "alice-password-2", "10.0.0.1")
    async with db.session() as s:
        tenant = await accounts.get_tenant_by_name(s, "acme")
        await accounts.set_tenant_disabled(s, tenant, True)
    with pytest.raises(TokenInvalid, match="tenant disabled"):
        await _check(db, settings, pair.access_token)
    async with db.session() as s:
        tenant = await accounts.get_tenant_by_name(s, "acme")
        await accounts.set_tenant_disabled(s, tenant, False)
    with pytest.raises(TokenInvalid, match="session ended"):
        await _check(db, settings, pair.access_token)
    async with db.session() as s:
        live = select(func.count()).select_from(RefreshToken).where(RefreshToken.revoked_at.is_(None))
        assert (await s.execute(live)).scalar_one() == 0


async def test_tokens_without_a_session_id_are_refused(db: Database, tmp_path: Path, db_url: str) -> None:
    import jwt

    settings = make_settings(tmp_path, db_url)
    tenant_id, user_id = await _alice(db)
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "role": "tenant-admin",
            "typ": "access",
            "exp": 9_999_999_999,
            "pwv": auth.password_version(user),
        }
    legacy = jwt.encode(claims, settings.jwt_secret(), algorithm=auth.JWT_ALG)
    with pytest.raises(TokenInvalid):
        await _check(db, settings, legacy)
    forged_sid = jwt.encode({**claims, "sid": "f" * 32}, settings.jwt_secret(), algorithm=auth.JWT_ALG)
    with pytest.raises(TokenInvalid, match="session ended"):
        await _check(db, settings, forged_sid)


def test_client_key_groups_ipv6_by_64_and_unmaps_ipv4() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"
    assert client_key("testclient") == "testclient"


async def test_address_throttle_is_shared_by_processes(
    two_processes: tuple[Database, Database], tmp_path: Path, db_url: str
) -> None:
    a, b = two_processes
    settings = make_settings(
        tmp_path, db_url, login_ip_threshold=3, login_ip_block_s=1, lockout_threshold=100
    )
    await _alice(a)
    for i, db in enumerate((a, b, a)):  # unknown users count too: spraying is throttled
        with pytest.raises(InvalidCredentials):
            async with db.session() as s:
                await auth.login(s, settings, f"nobody{i}", "wrong-password", "10.0.0.9")
    with pytest.raises(LoginThrottled) as blocked:
        await _login(b, settings, "10.0.0.9")  # even the right password waits
    assert blocked.value.code == "login_throttled" and blocked.value.status == 429
    assert 1 <= blocked.value.details["retry_after_s"] <= 2
    assert (await _login(a, settings, "10.0.0.10")).access_token  # another address is unaffected
    await asyncio.sleep(1.2)
    assert (await _login(a, settings, "10.0.0.9")).access_token


async def test_successes_are_refunded_and_parallel_guesses_stop_at_threshold(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url, login_ip_threshold=4, lockout_threshold=100)
    await _alice(db)
    for _ in range(10):  # a busy shared address that only succeeds is never throttled
        await _login(db, settings, "10.0.0.5")

    async def guess(i: int) -> str:
        try:
            async with db.session() as s:
                await auth.login(s, settings, "alice", f"wrong-{i}", "10.0.0.5")
        except (InvalidCredentials, LoginThrottled) as exc:
            return exc.code
        return "ok"

    codes = await asyncio.gather(*(guess(i) for i in range(12)))
    assert codes.count("invalid_credentials") <= 4, codes
    assert codes.count("login_throttled") >= 8, codes
    async with db.session() as s:
        row = await s.get(LoginThrottle, "10.0.0.5")
        assert row is not None and row.blocked_until is not None


async def test_locked_account_answers_like_unknown_user_with_the_same_work(
    db: Database, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, db_url, lockout_threshold=2, login_ip_threshold=100)
    tenant_id, _ = await _alice(db)
    checks: list[str] = []
    real_verify = auth.verify_password

    def counting_verify(password_hash: str, password: str) -> bool:
        checks.append(password)
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counting_verify)

    async def answer(username: str, password: str) -> tuple[type[Exception], str, int]:
        before = len(checks)
        with pytest.raises(InvalidCredentials) as exc:
            async with db.session() as s:
                await auth.login(s, settings, username, password)
        return type(exc.value), exc.value.message, len(checks) - before

    wrong = await answer("alice", "wrong-password-1")
    await answer("alice", "wrong-password-2")  # second failure locks the account
    locked = await answer("alice", PASSWORD)
    unknown = await answer("ghost", PASSWORD)
    assert wrong == locked == unknown == (InvalidCredentials, "invalid username or password", 1)
    async with db.session() as s:
        rows = (
            await s.execute(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.seq)
            )
        ).scalars()
        trail = [(e.action, e.outcome, e.detail.get("reason")) for e in rows]
    assert ("auth.lockout", "failure", None) in trail
    assert trail[-1] == ("auth.login", "failure", "locked")


async def test_api_keys_stop_with_their_creator(db: Database) -> None:
    async with db.session() as s:
        t = await accounts.create_tenant(s, "plant")
        other = await accounts.create_tenant(s, "other")
        alice = await accounts.create_user(s, t.id, "alice", PASSWORD, Role.tenant_admin)
        bob = await accounts.create_user(s, t.id, "bob", "bob-password-1", Role.tenant_admin)
        own = await accounts.create_api_key(s, t.id, "own", Role.viewer, "alice", None, alice.id)
        # made by alice's key (inherits alice) and one alice made in another tenant
        via_key = await accounts.create_api_key(
            s, t.id, "via", Role.viewer, "own", None, await accounts.creator_of(s, "apikey", own.row.id)
        )
        abroad = await accounts.create_api_key(s, other.id, "abroad", Role.viewer, "alice", None, alice.id)
        cli = await accounts.create_api_key(s, t.id, "cli", Role.viewer, "cli")
        bobs = await accounts.create_api_key(s, t.id, "bobs", Role.viewer, "bob", None, bob.id)
    async with db.session() as s:
        assert (await auth.authenticate_api_key(s, via_key.key)).name == "via"
    async with db.session() as s:
        user = await s.get(User, alice.id)
        assert user is not None
        await accounts.set_disabled(s, user, True, actor="root")
    for key in (own.key, via_key.key, abroad.key):
        with pytest.raises(InvalidCredentials, match="revoked"):
            async with db.session() as s:
                await auth.authenticate_api_key(s, key)
    async with db.session() as s:
        assert (await auth.authenticate_api_key(s, cli.key)).name == "cli"  # bound to no person
        events = (
            await s.execute(
                select(AuditEvent).where(AuditEvent.action == "apikey.revoke").order_by(AuditEvent.seq)
            )
        ).scalars()
        revoked = {
            (e.tenant_id, e.actor, e.target, e.detail["reason"], e.detail["key_tenant_id"]) for e in events
        }
    assert revoked == {
        (t.id, "root", "own", "creator_disabled", t.id),
        (t.id, "root", "via", "creator_disabled", t.id),
        (t.id, "root", "abroad", "creator_disabled", other.id),
    }
    async with db.session() as s:  # enabling alice again does not bring her keys back
        user = await s.get(User, alice.id)
        assert user is not None
        await accounts.set_disabled(s, user, False)
    with pytest.raises(InvalidCredentials, match="revoked"):
        async with db.session() as s:
            await auth.authenticate_api_key(s, own.key)
    # A creator that disappears without a disable (removed from the database) takes its keys too.
    async with db.session() as s:
        await s.execute(delete(RefreshToken).where(RefreshToken.user_id == bob.id))
        await s.execute(delete(User).where(User.id == bob.id))
    with pytest.raises(InvalidCredentials, match="disabled or deleted"):
        async with db.session() as s:
            await auth.authenticate_api_key(s, bobs.key)
    async with db.session() as s:
        row = (await s.execute(select(ApiKey).where(ApiKey.name == "bobs"))).scalar_one()
        assert row.creator_user_id == bob.id and row.revoked_at is None
