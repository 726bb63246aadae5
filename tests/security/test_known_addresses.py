"""A throttled address still lets in users who recently signed in from it, with the right
password only; spraying, unknown users and the account lockout stay as they were (both databases)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gongyun.config import Settings
from gongyun.db import Database
from gongyun.db.base import utcnow
from gongyun.errors import InvalidCredentials, LoginThrottled
from gongyun.security import accounts, auth
from gongyun.security.models import KnownLoginAddress
from gongyun.security.rbac import Role
from gongyun.security.throttle import address_hash, client_key
from tests.apphelp import make_settings

NAT = "198.51.100.20"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1"}


def _settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"login_ip_threshold": 3, "lockout_threshold": 50, **overrides}
    return make_settings(tmp_path, db_url, **values)


async def _users(db: Database) -> dict[str, str]:
    async with db.session() as s:
        t = await accounts.create_tenant(s, "acme")
        return {
            n: (await accounts.create_user(s, t.id, n, p, Role.operator)).id for n, p in PASSWORDS.items()
        }


async def _login(
    db: Database, settings: Settings, name: str, client: str, password: str | None = None
) -> str:
    """``ok``, or the error code of the answer."""
    try:
        async with db.session() as s:
            await auth.login(s, settings, name, password or PASSWORDS[name], client)
    except (InvalidCredentials, LoginThrottled) as exc:
        return exc.code
    return "ok"


async def _spray(db: Database, settings: Settings, client: str) -> None:
    for i in range(settings.login_ip_threshold):
        assert await _login(db, settings, "alice" if i % 2 else f"ghost{i}", client, "guess-1") == (
            "invalid_credentials"
        )


async def test_known_users_sign_in_from_a_throttled_address_with_the_right_password_only(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = _settings(tmp_path, db_url)
    await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"  # alice works behind the NAT
    assert await _login(db, settings, "bob", "192.0.2.1") == "ok"  # bob only elsewhere
    await _spray(db, settings, NAT)
    assert await _login(db, settings, "ghost", NAT, "guess-2") == "login_throttled"
    assert await _login(db, settings, "bob", NAT) == "login_throttled"  # right password, unknown here
    assert await _login(db, settings, "alice", NAT, "guess-3") == "login_throttled"  # failures wait
    assert await _login(db, settings, "alice", NAT) == "ok"
    assert await _login(db, settings, "alice", NAT) == "ok"  # not just once
    assert await _login(db, settings, "bob", NAT) == "login_throttled"  # alice's success opens nothing
    assert await _login(db, settings, "bob", "192.0.2.1") == "ok"


async def test_ipv6_site_is_known_by_its_64(db: Database, tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url)
    await _users(db)
    assert await _login(db, settings, "alice", client_key("2001:db8:5:6::10")) == "ok"
    site = client_key("2001:db8:5:6:ffff::99")
    await _spray(db, settings, site)
    assert await _login(db, settings, "alice", site) == "ok"
    other = client_key("2001:db8:5:7::10")
    await _spray(db, settings, other)
    assert await _login(db, settings, "alice", other) == "login_throttled"


async def test_account_lockout_still_applies_to_known_users(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = _settings(tmp_path, db_url, lockout_threshold=2)
    await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"
    for i in range(settings.login_ip_threshold):
        assert await _login(db, settings, f"ghost{i}", NAT, "guess-1") == "invalid_credentials"
    for i in range(2):  # guesses at a known user from the throttled address count towards her lock
        assert await _login(db, settings, "alice", NAT, f"guess-{i}") == "login_throttled"
    assert await _login(db, settings, "alice", NAT) == "login_throttled"  # locked now
    assert await _login(db, settings, "alice", "192.0.2.1") == "invalid_credentials"  # locked everywhere


async def test_known_addresses_expire_and_can_be_turned_off(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = _settings(tmp_path, db_url)
    ids = await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"
    await _spray(db, settings, NAT)
    off = _settings(tmp_path, db_url, login_known_address_days=0)
    assert await _login(db, off, "alice", NAT) == "login_throttled"
    async with db.session() as s:  # last seen just over the window ago
        await s.execute(
            update(KnownLoginAddress)
            .where(KnownLoginAddress.user_id == ids["alice"])
            .values(last_success_at=utcnow() - timedelta(days=settings.login_known_address_days, minutes=1))
        )
    assert await _login(db, settings, "alice", NAT) == "login_throttled"
    async with db.session() as s:
        assert await auth.prune(s, settings, batch=10) == 1  # and the stale pair is forgotten
        assert (await s.execute(select(KnownLoginAddress))).first() is None


async def test_only_a_keyed_hash_of_the_address_is_stored(db: Database, tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url)
    ids = await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"
    assert await _login(db, settings, "alice", "unknown") == "ok"  # no address: nothing to remember
    async with db.session() as s:
        rows = (await s.execute(select(KnownLoginAddress))).scalars().all()
    assert [(r.user_id, r.address_hash) for r in rows] == [(ids["alice"], address_hash(settings, NAT))]
    assert NAT not in rows[0].address_hash and len(rows[0].address_hash) == 64
    other = _settings(tmp_path, db_url, secret_key="another-secret-key-0123456789abcdef0123")
    assert address_hash(other, NAT) != address_hash(settings, NAT)
    await _spray(db, settings, NAT)
    with pytest.raises(LoginThrottled):  # under another secret the stored hash means nothing
        async with db.session() as s:
            await auth.login(s, other, "alice", PASSWORDS["alice"], NAT)
