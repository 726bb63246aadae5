"""A throttled address still lets in users who recently signed in from it, with the right
password only; spraying, unknown users and the account lockout stay as they were (both databases)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from gongyun.config import Settings
from gongyun.db import Database
from gongyun.db.base import utcnow
from gongyun.errors import InvalidCredentials, LoginThrottled
from gongyun.security import accounts, auth
from gongyun.security.models import KnownLoginAddress, User
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


async def _locked_until(db: Database, user_id: str) -> tuple[int, object]:
    async with db.session() as s:
        user = await s.get(User, user_id)
        assert user is not None
        return user.failed_logins, user.locked_until


async def test_guesses_from_a_throttled_address_neither_go_on_nor_lock_the_account(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = _settings(tmp_path, db_url, lockout_threshold=2)
    ids = await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"
    assert await _login(db, settings, "bob", NAT) == "ok"
    await _spray(db, settings, NAT)
    before = await _locked_until(db, ids["alice"])
    for i in range(settings.login_known_blocked_failures):  # more than lockout_threshold guesses
        assert await _login(db, settings, "alice", NAT, f"guess-{i}") == "login_throttled"
    assert await _locked_until(db, ids["alice"]) == before  # the account counter is left alone
    assert before[1] is None
    assert await _login(db, settings, "alice", NAT) == "login_throttled"  # this pair is used up
    assert await _login(db, settings, "bob", NAT) == "ok"  # bob's pair has its own budget
    assert await _login(db, settings, "alice", "192.0.2.1") == "ok"  # and alice is not locked out


async def test_an_account_locked_elsewhere_stays_locked_at_a_throttled_address(
    db: Database, tmp_path: Path, db_url: str
) -> None:
    settings = _settings(tmp_path, db_url, lockout_threshold=2)
    ids = await _users(db)
    assert await _login(db, settings, "alice", NAT) == "ok"
    for i in range(2):
        assert await _login(db, settings, "alice", "192.0.2.1", f"guess-{i}") == "invalid_credentials"
    assert (await _locked_until(db, ids["alice"]))[1] is not None
    await _spray(db, settings, NAT)
    assert await _login(db, settings, "alice", NAT) == "login_throttled"


async def test_every_answer_costs_one_password_check(
    db: Database, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing tells nothing: each path runs argon2 exactly once (counted on the real hasher)."""
    settings = _settings(tmp_path, db_url, lockout_threshold=50)
    await _users(db)
    checks: list[str] = []
    real_verify = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> Literal[True]:
        checks.append(str(password))
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)

    async def attempt(name: str, client: str, password: str | None = None) -> str:
        checks.clear()
        answer = await _login(db, settings, name, client, password)
        assert len(checks) == 1, (name, client, password, answer, checks)
        return answer

    assert await attempt("alice", NAT) == "ok"
    assert await attempt("ghost", NAT, "guess-0") == "invalid_credentials"
    assert await attempt("alice", NAT, "guess-0") == "invalid_credentials"
    for i in range(settings.login_ip_threshold - 2):
        assert await attempt(f"ghost{i}", NAT, "guess-1") == "invalid_credentials"
    # Throttled: an unknown user, a user unknown here, a known user (wrong, right, pair used up).
    assert await attempt("nobody", NAT, "guess-2") == "login_throttled"
    assert await attempt("bob", NAT) == "login_throttled"
    assert await attempt("alice", NAT, "guess-3") == "login_throttled"
    assert await attempt("alice", NAT) == "ok"
    for i in range(settings.login_known_blocked_failures):
        assert await attempt("alice", NAT, f"guess-{i + 4}") == "login_throttled"
    assert await attempt("alice", NAT) == "login_throttled"


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
