"""Per-client-address sign-in throttling, kept in the database so every process agrees.

Works like the per-account lockout but keyed by where the attempts come from, so that
password spraying (one password against many accounts, known or not) is slowed too. An
attempt is counted *before* the password is checked and refunded when it succeeds: only
failures add up, and concurrent guesses cannot all slip through under the threshold.

So that one attacker behind a shared NAT cannot lock a whole site out, a user who signed in
successfully from the same address (IPv6: the same /64) within ``login_known_address_days``
may still sign in there with the right password while the address is blocked. Such a pair has
its own small budget of failures (``login_known_blocked_failures``, counted under
:func:`known_pair_key`) so that guesses from a blocked address can neither go on nor lock the
account out. Only a keyed hash of the address is stored (HMAC with the app secret), so the table
is no address log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.config import Settings
from gongyun.db.base import utcnow
from gongyun.errors import LoginThrottled
from gongyun.security.models import KnownLoginAddress, LoginThrottle

log = logging.getLogger("gongyun.security")
UNKNOWN_CLIENT = "unknown"


def client_key(host: str | None) -> str:
    """The throttle key of a client address: IPv4 as is, IPv6 by its /64 (one site)."""
    if not host:
        return UNKNOWN_CLIENT
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


async def _ensure_row(session: AsyncSession, settings: Settings, client: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    created = await session.execute(
        make_insert(LoginThrottle)
        .values(client=client, failures=0, window_start=now, blocked_until=None)
        .on_conflict_do_nothing()
    )
    if created.rowcount == 1:  # type: ignore[attr-defined]
        # A new address: forget the ones that went quiet (bounded work, indexed).
        stale = now - timedelta(seconds=max(settings.login_ip_window_s, settings.login_ip_block_s))
        await session.execute(
            delete(LoginThrottle)
            .where(
                LoginThrottle.window_start < stale,
                or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),
            )
            .execution_options(synchronize_session=False)
        )


async def _retry_after(session: AsyncSession, client: str, now: datetime) -> int:
    until = (
        await session.execute(select(LoginThrottle.blocked_until).where(LoginThrottle.client == client))
    ).scalar_one_or_none()
    if until is None:
        return 1
    return max(1, math.ceil((until - now).total_seconds()))


async def claim(session: AsyncSession, settings: Settings, client: str, threshold: int | None = None) -> None:
    """Count a sign-in attempt from ``client`` (committed); raise ``LoginThrottled`` when blocked.

    ``threshold``: failures allowed in a window (default ``login_ip_threshold``).
    """
    limit = settings.login_ip_threshold if threshold is None else threshold
    now = utcnow()
    await _ensure_row(session, settings, client, now)
    fresh = LoginThrottle.window_start < now - timedelta(seconds=settings.login_ip_window_s)
    result = await session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.client == client,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
        )
        .values(
            failures=case((fresh, 1), else_=LoginThrottle.failures + 1),
            window_start=case((fresh, now), else_=LoginThrottle.window_start),
            blocked_until=None,
        )
        .returning(LoginThrottle.failures)
        .execution_options(synchronize_session=False)
    )
    count = result.scalar_one_or_none()
    blocked = count is None
    if count is not None and count > limit:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.client == client)
            .values(
                blocked_until=now + timedelta(seconds=settings.login_ip_block_s), failures=0, window_start=now
            )
            .execution_options(synchronize_session=False)
        )
        log.warning("sign-ins from %s throttled after repeated failures", client, extra={"client": client})
        blocked = True
    await session.commit()
    if blocked:
        retry = await _retry_after(session, client, now)
        raise LoginThrottled(
            "too many sign-in attempts from this address; try again later", retry_after_s=retry
        )


async def refund(session: AsyncSession, client: str) -> None:
    """Take back the attempt of a successful sign-in (in the caller's transaction)."""
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.client == client, LoginThrottle.failures > 0)
        .values(failures=LoginThrottle.failures - 1)
        .execution_options(synchronize_session=False)
    )


def address_hash(settings: Settings, client: str) -> str:
    """A keyed hash (HMAC-SHA256 under the app secret) of a throttle key, stored in its place."""
    key = hmac.new(settings.jwt_secret().encode(), b"gongyun login address", hashlib.sha256).digest()
    return hmac.new(key, client.encode(), hashlib.sha256).hexdigest()


def known_pair_key(settings: Settings, user_id: str, client: str) -> str:
    """The throttle key of one user at one (throttled) address: a keyed hash, like the address's."""
    return "pair:" + address_hash(settings, f"{user_id}@{client}")[:56]


def _known_cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.login_known_address_days)


async def known(session: AsyncSession, settings: Settings, user_id: str, client: str) -> bool:
    """True when ``user_id`` signed in successfully from ``client`` recently enough."""
    if client == UNKNOWN_CLIENT or settings.login_known_address_days == 0:
        return False
    seen = (
        await session.execute(
            select(KnownLoginAddress.last_success_at).where(
                KnownLoginAddress.user_id == user_id,
                KnownLoginAddress.address_hash == address_hash(settings, client),
            )
        )
    ).scalar_one_or_none()
    return seen is not None and seen > _known_cutoff(settings, utcnow())


# A known pair is rewritten at most this often, so Basic-auth callers do not write every time.
_REMEMBER_EVERY = timedelta(hours=1)


async def remember(session: AsyncSession, settings: Settings, user_id: str, client: str) -> None:
    """Record a successful sign-in of ``user_id`` from ``client`` (in the caller's transaction)."""
    if client == UNKNOWN_CLIENT or settings.login_known_address_days == 0:
        return
    now = utcnow()
    digest = address_hash(settings, client)
    seen = (
        await session.execute(
            select(KnownLoginAddress.last_success_at).where(
                KnownLoginAddress.user_id == user_id, KnownLoginAddress.address_hash == digest
            )
        )
    ).scalar_one_or_none()
    if seen is not None and now - seen < _REMEMBER_EVERY:
        return
    dialect = session.get_bind().dialect.name
    make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = make_insert(KnownLoginAddress).values(user_id=user_id, address_hash=digest, last_success_at=now)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[KnownLoginAddress.user_id, KnownLoginAddress.address_hash],
            set_={"last_success_at": now},
        )
    )


async def prune_known(session: AsyncSession, settings: Settings, batch: int) -> int:
    """Forget at most ``batch`` known pairs older than ``login_known_address_days``; return how many."""
    cutoff = _known_cutoff(settings, utcnow())
    old = (
        select(KnownLoginAddress.user_id, KnownLoginAddress.address_hash)
        .where(KnownLoginAddress.last_success_at <= cutoff)
        .limit(batch)
    )
    result = await session.execute(
        delete(KnownLoginAddress)
        .where(tuple_(KnownLoginAddress.user_id, KnownLoginAddress.address_hash).in_(old))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
