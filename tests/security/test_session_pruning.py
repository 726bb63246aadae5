"""Refresh tokens stay bounded: live-only checks and revocation, pruning that never ends a live
session, and the per-request check served by its partial index (both databases)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import func, insert, select, text, update

from gongyun.config import Settings
from gongyun.db import Database
from gongyun.db.base import new_id, utcnow
from gongyun.errors import TokenInvalid
from gongyun.security import accounts, auth
from gongyun.security.models import RefreshToken, User
from gongyun.security.rbac import Role
from tests.apphelp import make_settings

PASSWORD = "alice-password-1"


async def _alice(db: Database) -> str:
    async with db.session() as s:
        t = await accounts.create_tenant(s, "acme")
        return (await accounts.create_user(s, t.id, "alice", PASSWORD, Role.tenant_admin)).id


async def _login(db: Database, settings: Settings) -> auth.TokenPair:
    async with db.session() as s:
        return await auth.login(s, settings, "alice", PASSWORD, "10.0.0.1")


async def _refresh(db: Database, settings: Settings, token: str) -> auth.TokenPair:
    async with db.session() as s:
        return await auth.refresh(s, settings, token)


async def _alive(db: Database, settings: Settings, pair: auth.TokenPair) -> bool:
    try:
        async with db.session() as s:
            await auth.authenticate_access_token(s, settings, pair.access_token)
    except TokenInvalid:
        return False
    return True


async def _families(db: Database) -> dict[str, int]:
    async with db.session() as s:
        rows = await s.execute(select(RefreshToken.family_id, func.count()).group_by(RefreshToken.family_id))
        return {f: int(n) for f, n in rows.all()}


def _family(pair: auth.TokenPair) -> str:
    return str(jwt.decode(pair.access_token, options={"verify_signature": False})["sid"])


async def test_prune_removes_ended_and_long_expired_tokens_and_keeps_live_sessions(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url, session_prune_every=1_000_000)
    await _alice(db)
    ttl = timedelta(seconds=settings.refresh_token_ttl_s)
    busy = await _login(db, settings)  # refreshed three times: three spent tokens and a live one
    first = busy
    for _ in range(3):
        busy = await _refresh(db, settings, busy.refresh_token)
    old = await _login(db, settings)  # live, but its spent tokens expired long ago
    old = await _refresh(db, settings, (await _refresh(db, settings, old.refresh_token)).refresh_token)
    out = await _login(db, settings)  # logged out
    async with db.session() as s:
        await auth.logout(s, (await _refresh(db, settings, out.refresh_token)).refresh_token)
    stale = await _login(db, settings)  # never refreshed: its last token expired
    idle = await _login(db, settings)  # expired only just: still ended
    async with db.session() as s:
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == _family(old), RefreshToken.used_at.is_not(None))
            .values(expires_at=utcnow() - 2 * ttl)
        )
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == _family(stale))
            .values(expires_at=utcnow() - 3 * ttl)
        )
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == _family(idle))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await _families(db) == {
        _family(busy): 4,
        _family(old): 3,
        _family(out): 2,
        _family(stale): 1,
        _family(idle): 1,
    }
    assert not await _alive(db, settings, idle)  # an expired last token ends the session

    async with db.session() as s:
        assert await auth.prune(s, settings, batch=1) <= 2  # bounded: one row of each kind
    for _ in range(5):
        async with db.session() as s:
            await auth.prune(s, settings, batch=1)
    async with db.session() as s:
        assert await auth.prune(s, settings, batch=1) == 0  # nothing more to do
    assert await _families(db) == {_family(busy): 4, _family(old): 1}
    assert await _alive(db, settings, busy) and await _alive(db, settings, old)
    with pytest.raises(TokenInvalid, match="already used"):  # kept spent tokens still catch reuse
        await _refresh(db, settings, first.refresh_token)
    assert not await _alive(db, settings, busy)
    assert (await _refresh(db, settings, old.refresh_token)).access_token  # untouched session works


async def test_logins_and_refreshes_prune_as_they_go(db: Database, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, session_prune_every=1)
    await _alice(db)
    keep = await _login(db, settings)
    for _ in range(20):  # sessions that end: after each login and refresh little is left over
        pair = await _refresh(db, settings, (await _login(db, settings)).refresh_token)
        async with db.session() as s:
            await auth.logout(s, pair.refresh_token)
    keep = await _refresh(db, settings, keep.refresh_token)
    families = await _families(db)
    assert families == {_family(keep): 2}, families
    assert await _alive(db, settings, keep)


async def test_revocation_touches_only_live_tokens(db: Database, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, session_prune_every=1_000_000)
    user_id = await _alice(db)
    pairs = [await _login(db, settings) for _ in range(2)]
    for _ in range(3):
        pairs[0] = await _refresh(db, settings, pairs[0].refresh_token)
    async with db.session() as s:
        await auth.revoke_user_tokens(s, user_id)
    async with db.session() as s:
        rows = (await s.execute(select(RefreshToken))).scalars().all()
    revoked = [r for r in rows if r.revoked_at is not None]
    assert len(rows) == 5 and len(revoked) == 2 and all(r.used_at is None for r in revoked)
    assert not any(await asyncio.gather(*(_alive(db, settings, p) for p in pairs)))
    tenant_pair = await _login(db, settings)
    async with db.session() as s:
        await accounts.set_tenant_disabled(s, await accounts.get_tenant_by_name(s, "acme"), True)
    async with db.session() as s:
        rows = (await s.execute(select(RefreshToken))).scalars().all()
    assert sum(r.revoked_at is not None for r in rows) == 3 and len(rows) == 6
    assert not await _alive(db, settings, tenant_pair)


async def test_pruning_in_another_process_never_ends_a_live_session(
    two_processes: tuple[Database, Database], tmp_path: Path, db_url: str
) -> None:
    a, b = two_processes
    settings = make_settings(tmp_path, db_url, session_prune_every=1_000_000)
    await _alice(a)
    sessions = [await _login(a, settings) for _ in range(3)]
    ended = [await _login(a, settings) for _ in range(3)]
    for pair in ended:
        async with a.session() as s:
            await auth.logout(s, pair.refresh_token)

    async def keep_refreshing(pair: auth.TokenPair) -> auth.TokenPair:
        for _ in range(4):
            pair = await _refresh(a, settings, pair.refresh_token)
            assert await _alive(b, settings, pair)
        return pair

    async def keep_pruning() -> None:
        for _ in range(12):
            async with b.session() as s:
                await auth.prune(s, settings, batch=2)
            await asyncio.sleep(0)

    results = await asyncio.gather(*(keep_refreshing(p) for p in sessions), keep_pruning())
    finals = [r for r in results if isinstance(r, auth.TokenPair)]
    assert len(finals) == 3
    for pair in finals:
        assert await _alive(a, settings, pair)
        assert (await _refresh(b, settings, pair.refresh_token)).access_token
    assert set(await _families(a)) == {_family(p) for p in finals}


async def test_session_check_uses_the_live_family_index(db: Database, tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    user_id = await _alice(db)
    pair = await _login(db, settings)
    now = utcnow()
    async with db.session() as s:  # 400 other sessions, each with a history of spent tokens
        await s.execute(
            insert(RefreshToken),
            [
                {
                    "id": new_id(),
                    "user_id": user_id,
                    "family_id": f"{n % 400:032d}",
                    "token_hash": "0" * 64,
                    "created_at": now,
                    "expires_at": now + timedelta(days=1),
                    "used_at": None if n < 400 else now,  # each family: one live, nine spent
                }
                for n in range(4000)
            ],
        )
    query = auth.caller_query(user_id, _family(pair), now)
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("ANALYZE refresh_tokens"))
            await conn.execute(text("ANALYZE users"))
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        rows = await conn.exec_driver_sql(prefix + sql)
        plan = "\n".join(str(r[-1]) for r in rows)
    assert "ix_refresh_tokens_live_family" in plan, plan
    async with db.session() as s:
        assert (await s.get(User, user_id)) is not None
        assert (await auth.authenticate_access_token(s, settings, pair.access_token)).name == "alice"
