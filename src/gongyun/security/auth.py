"""Authentication: argon2id passwords, JWT access tokens, rotating refresh tokens, API keys.

A login starts a session whose id is the refresh-token family id; access tokens carry it as
``sid``. Every request checks, in the same query that loads the user and the tenant, that
the session still has a live refresh token (unused, unrevoked, unexpired: a family holds at
most one), so logout, reuse detection, a password change, disabling the user or the tenant end
the access tokens at once, in every process. There is deliberately no in-process cache: one
lookup on a partial index is folded into a query that runs anyway.

Spent tokens are kept only as long as they serve reuse detection: every
``session_prune_every``-th login or refresh of a process also deletes, in the same
transaction and in bounded batches, tokens whose expiry is ``refresh_token_ttl_s`` past and
every token of ended sessions, plus stale known sign-in addresses; no scheduler is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, case, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from gongyun.config import Settings
from gongyun.db.base import new_id, utcnow
from gongyun.errors import (
    CurrentPasswordInvalid,
    CurrentPasswordRequired,
    InvalidCredentials,
    LoginThrottled,
    TokenInvalid,
)
from gongyun.security.audit import record as audit
from gongyun.security.models import ApiKey, RefreshToken, Tenant, User
from gongyun.security.rbac import Role, cap_role
from gongyun.security.throttle import (
    UNKNOWN_CLIENT,
    claim,
    known,
    known_pair_key,
    prune_known,
    refund,
    remember,
)

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH = _hasher.hash("timing-equaliser-not-a-password")
API_KEY_PREFIX = "gy_"
JWT_ALG = "HS256"
log = logging.getLogger("gongyun.security")


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _sha256(text: str) -> str:
    # API keys and refresh tokens are 256-bit random secrets: a fast hash is enough at rest;
    # a slow KDF only protects low-entropy secrets such as passwords.
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user or an API key, in a tenant, with a role."""

    kind: Literal["user", "apikey"]
    id: str
    name: str
    tenant_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int


def password_version(user: User) -> int:
    """The user's password version (microseconds of its last change), carried in tokens."""
    return int(user.password_changed_at.timestamp() * 1_000_000)


def issue_access_token(settings: Settings, user: User, sid: str) -> str:
    """A short-lived signed JWT for ``user`` in session ``sid`` (its refresh family)."""
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": user.id,
        "tid": user.tenant_id,
        "role": user.role,
        "name": user.username,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.access_token_ttl_s)).timestamp()),
        "jti": new_id(),
        "pwv": password_version(user),
        "sid": sid,
    }
    return jwt.encode(claims, settings.jwt_secret(), algorithm=JWT_ALG)


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    """Verify an access token and return its claims, or raise ``TokenInvalid``."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret(),
            algorithms=[JWT_ALG],
            options={"require": ["exp", "sub", "tid", "role", "typ", "sid"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenInvalid("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenInvalid("access token invalid") from exc
    if claims.get("typ") != "access":
        raise TokenInvalid("not an access token")
    return claims


async def _new_refresh_token(session: AsyncSession, settings: Settings, user: User, family: str) -> str:
    secret = secrets.token_urlsafe(32)
    row = RefreshToken(
        user_id=user.id,
        family_id=family,
        token_hash=_sha256(secret),
        expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    session.add(row)
    await session.flush()
    return f"{row.id}.{secret}"


async def _issue_pair(session: AsyncSession, settings: Settings, user: User, family: str) -> TokenPair:
    refresh = await _new_refresh_token(session, settings, user, family)
    return TokenPair(issue_access_token(settings, user, family), refresh, settings.access_token_ttl_s)


async def _active_user(session: AsyncSession, user: User | None) -> User:
    if user is None or user.disabled:
        raise InvalidCredentials("invalid username or password")
    tenant = await session.get(Tenant, user.tenant_id)
    if tenant is None or tenant.disabled:
        raise InvalidCredentials("invalid username or password")
    return user


async def _claim_attempt(session: AsyncSession, settings: Settings, user: User, client: str) -> int | None:
    """Count this attempt before checking the password; None when the account is locked.

    The counter is bumped atomically in the database (and committed) *before* the slow
    password check, so concurrent guesses cannot all read the same count: at most
    ``lockout_threshold`` passwords are ever checked per window.
    """
    now = utcnow()
    window_start = now - timedelta(seconds=settings.lockout_window_s)
    fresh = or_(User.first_failed_at.is_(None), User.first_failed_at < window_start)
    result = await session.execute(
        update(User)
        .where(User.id == user.id, or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(
            failed_logins=case((fresh, 1), else_=User.failed_logins + 1),
            first_failed_at=case((fresh, now), else_=User.first_failed_at),
        )
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    )
    count = result.scalar_one_or_none()
    if count is not None and count > settings.lockout_threshold:
        await _lock(session, settings, user, client)
        count = None
    await session.commit()
    return None if count is None else int(count)


async def _lock(session: AsyncSession, settings: Settings, user: User, client: str) -> None:
    until = utcnow() + timedelta(seconds=settings.lockout_duration_s)
    await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(locked_until=until, failed_logins=0, first_failed_at=None)
        .execution_options(synchronize_session=False)
    )
    await audit(
        session, user.tenant_id, user.username, "auth.lockout", user.username, "failure", client=client
    )


_WRONG = "invalid username or password"


async def check_password(
    session: AsyncSession, settings: Settings, username: str, password: str, client: str = UNKNOWN_CLIENT
) -> User:
    """Verify a username and password with address throttling and lockout; return the user.

    Unknown user, wrong password, locked or disabled account all answer the same
    ``InvalidCredentials`` after the same argon2 work, so the answer never tells whether an
    account exists or is locked; the audit trail of the account's tenant records which it was.
    While the address is throttled every answer is ``LoginThrottled`` (see :func:`_while_blocked`).
    """
    blocked: LoginThrottled | None = None
    try:
        await claim(session, settings, client)  # 429 login_throttled, whatever the account
    except LoginThrottled as exc:
        blocked = exc
    user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if blocked is not None:
        return await _while_blocked(session, settings, user, username, password, client, blocked)
    failed = InvalidCredentials(_WRONG)
    if user is None:
        verify_password(_DUMMY_HASH, password)  # same work whether or not the user exists
        raise failed
    count = await _claim_attempt(session, settings, user, client)
    if count is None:
        verify_password(_DUMMY_HASH, password)  # same work as a wrong password
        await _audit_failure(session, user, client, "locked")
        raise failed
    # Lock order everywhere: the users row first, then the audit chain head.
    if not verify_password(user.password_hash, password):
        if count >= settings.lockout_threshold:
            await _lock(session, settings, user, client)
        await _audit_failure(session, user, client, "password")
        raise failed
    await _succeed(session, user, password, failed)
    await refund(session, client)
    await remember(session, settings, user.id, client)
    await session.flush()
    return user


async def _while_blocked(
    session: AsyncSession,
    settings: Settings,
    user: User | None,
    username: str,
    password: str,
    client: str,
    blocked: LoginThrottled,
) -> User:
    """A sign-in from a throttled address: only a known user with the right password gets in.

    Every path does exactly one argon2 check, so timing does not tell which users signed in from
    here. A known user's failures count under the (user, address) pair, at most
    ``login_known_blocked_failures`` of them before the pair is throttled too; the account's own
    lockout counter is not touched, so guesses from behind a shared NAT cannot lock it out. An
    account locked by failures elsewhere stays locked here.
    """
    if user is None or not await known(session, settings, user.id, client):
        verify_password(_DUMMY_HASH, password)  # same work as a known user's attempt
        raise blocked
    pair = known_pair_key(settings, user.id, client)
    try:
        await claim(session, settings, pair, settings.login_known_blocked_failures)
    except LoginThrottled:
        verify_password(_DUMMY_HASH, password)
        await _audit_failure(session, user, client, "throttled")
        raise blocked from None
    await session.refresh(user)
    if user.locked_until is not None and user.locked_until > utcnow():
        verify_password(_DUMMY_HASH, password)
        await _audit_failure(session, user, client, "locked")
        raise blocked
    if not verify_password(user.password_hash, password):
        await _audit_failure(session, user, client, "password")
        raise blocked
    await _succeed(session, user, password, blocked)
    log.info("sign-in of a known user from throttled %s allowed", client, extra={"client": client})
    await refund(session, pair)
    await remember(session, settings, user.id, client)
    await session.flush()
    return user


async def confirm_password(
    session: AsyncSession, settings: Settings, user: User, password: str | None, actor: str, client: str
) -> None:
    """Check the current password of a user changing their own; a wrong one counts like a failed sign-in.

    Runs before any other change of the request, because a failure is committed (the
    account's failure counter, a lockout, the ``user.password_change`` failure in the audit
    trail) before the error is raised. A missing password is refused without counting.
    """

    async def refuse(reason: str, error: CurrentPasswordRequired | CurrentPasswordInvalid) -> NoReturn:
        await audit(
            session,
            user.tenant_id,
            actor,
            "user.password_change",
            user.username,
            "failure",
            reason=reason,
            client=client,
        )
        await session.commit()
        raise error

    if not password:
        await refuse("missing", CurrentPasswordRequired("give your current password to change it"))
    wrong = CurrentPasswordInvalid("the current password is wrong")
    count = await _claim_attempt(session, settings, user, client)
    if count is None:
        verify_password(_DUMMY_HASH, password)
        await refuse("locked", CurrentPasswordInvalid("too many wrong passwords: try again later"))
    await session.refresh(user)
    if not verify_password(user.password_hash, password):
        if count >= settings.lockout_threshold:
            await _lock(session, settings, user, client)
        await refuse("password", wrong)


async def _audit_failure(session: AsyncSession, user: User, client: str, reason: str) -> None:
    """Record a failed sign-in in the account's tenant and commit."""
    username = user.username
    await audit(
        session, user.tenant_id, username, "auth.login", username, "failure", reason=reason, client=client
    )
    await session.commit()


async def _succeed(
    session: AsyncSession, user: User, password: str, failed: InvalidCredentials | LoginThrottled
) -> None:
    """The right password: check the account is active, reset its failures, upgrade its hash."""
    await session.refresh(user)
    try:
        await _active_user(session, user)
    except InvalidCredentials:
        raise failed from None
    user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)


async def login(
    session: AsyncSession, settings: Settings, username: str, password: str, client: str = UNKNOWN_CLIENT
) -> TokenPair:
    """Check a password (throttle, lockout) and start a session: an access and a refresh token."""
    user = await check_password(session, settings, username, password, client)
    await audit(session, user.tenant_id, username, "auth.login", username, client=client)
    pair = await _issue_pair(session, settings, user, family=new_id())
    await _maybe_prune(session, settings)
    return pair


def _split_refresh(token: str) -> tuple[str, str]:
    token_id, sep, secret = token.partition(".")
    if not sep or not token_id or not secret or len(token_id) != 32:
        raise TokenInvalid("refresh token malformed")
    return token_id, secret


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Rotate a refresh token; reuse of a spent token revokes its whole family."""
    token_id, secret = _split_refresh(token)
    row = await session.get(RefreshToken, token_id)
    now = utcnow()
    if row is None or not hmac.compare_digest(row.token_hash, _sha256(secret)):
        raise TokenInvalid("refresh token invalid")
    if row.expires_at <= now and row.used_at is None and row.revoked_at is None:
        raise TokenInvalid("refresh token expired")
    # Claim the token atomically: of several concurrent uses exactly one wins; the others
    # are treated as reuse, which revokes the family (and so the winner's new token too).
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await revoke_family(session, row.family_id)
        owner = await session.get(User, row.user_id)
        if owner is not None:
            await audit(
                session, owner.tenant_id, owner.username, "auth.refresh_reuse", owner.username, "failure"
            )
        await session.commit()
        raise TokenInvalid("refresh token already used or revoked")
    user = await _active_user(session, await session.get(User, row.user_id))
    pair = await _issue_pair(session, settings, user, family=row.family_id)
    await _maybe_prune(session, settings)
    return pair


def _live(token: type[RefreshToken], now: datetime) -> tuple[ColumnElement[bool], ...]:
    """The condition of a live refresh token: unused, unrevoked, unexpired."""
    return (token.used_at.is_(None), token.revoked_at.is_(None), token.expires_at > now)


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    """Revoke the live token of a refresh family (spent ones stay as they are)."""
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.family_id == family_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def revoke_user_tokens(session: AsyncSession, user_id: str) -> None:
    """End every session of a user: its refresh tokens and, through ``sid``, its access tokens."""
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == user_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None)
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def logout(session: AsyncSession, token: str) -> None:
    """End the refresh token's session: its family and every access token issued in it."""
    token_id, secret = _split_refresh(token)
    row = await session.get(RefreshToken, token_id)
    if row is None or not hmac.compare_digest(row.token_hash, _sha256(secret)):
        raise TokenInvalid("refresh token invalid")
    await revoke_family(session, row.family_id)
    owner = await session.get(User, row.user_id)
    if owner is not None:
        await audit(session, owner.tenant_id, owner.username, "auth.logout", owner.username)


def new_api_key_secret() -> tuple[str, str, str]:
    """A new API key: (full key shown once, public prefix, sha256 of the secret)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{API_KEY_PREFIX}{prefix}_{secret}", prefix, _sha256(secret)


async def authenticate_api_key(session: AsyncSession, key: str) -> Principal:
    """Look up an API key by its prefix and check its secret, expiry and revocation.

    The key acts with its own role capped at its creator's current role (``cap_role``).
    """
    body = key.removeprefix(API_KEY_PREFIX)
    prefix, sep, secret = body.partition("_")
    if not key.startswith(API_KEY_PREFIX) or not sep or len(prefix) != 12 or not secret:
        raise InvalidCredentials("API key malformed")
    found = (
        await session.execute(
            select(ApiKey, Tenant.disabled, User.id, User.disabled, User.role)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .outerjoin(User, User.id == ApiKey.creator_user_id)
            .where(ApiKey.prefix == prefix)
        )
    ).one_or_none()
    if found is None or not hmac.compare_digest(found[0].secret_hash, _sha256(secret)):
        raise InvalidCredentials("API key invalid")
    row, tenant_disabled, creator_id, creator_disabled, creator_role = found
    now = utcnow()
    if row.revoked_at is not None:
        raise InvalidCredentials("API key revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise InvalidCredentials("API key expired")
    if tenant_disabled:
        raise InvalidCredentials("API key invalid")
    if row.creator_user_id is not None and (creator_id is None or creator_disabled):
        raise InvalidCredentials("API key invalid: the user who created it is disabled or deleted")
    role: Role | None = Role(row.role)
    if creator_role is not None:
        # Checked at every use: a demoted creator's keys shrink with them at once.
        role = cap_role(Role(row.role), Role(creator_role))
    if role is None:
        raise InvalidCredentials("API key invalid: its role exceeds its creator's current role")
    if row.last_used_at is None or (now - row.last_used_at) > timedelta(minutes=1):
        row.last_used_at = now  # throttled so that reads do not turn into writes
    return Principal("apikey", row.id, row.name, row.tenant_id, role)


def caller_query(user_id: str, sid: str, now: datetime) -> Select[User, bool, bool]:
    """The one query of every token-authenticated request: user, tenant state, session live."""
    live = exists().where(
        RefreshToken.family_id == sid, RefreshToken.user_id == User.id, *_live(RefreshToken, now)
    )
    return (
        select(User, Tenant.disabled, live)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(User.id == user_id)
    )


async def authenticate_access_token(session: AsyncSession, settings: Settings, token: str) -> Principal:
    """Verify an access token, that its session is live and its user and tenant active."""
    claims = decode_access_token(settings, token)
    query = caller_query(str(claims["sub"]), str(claims["sid"]), utcnow())
    found = (await session.execute(query)).one_or_none()
    if found is None:
        raise TokenInvalid("user no longer active")
    user, tenant_disabled, session_live = found
    if user.disabled or user.tenant_id != claims["tid"]:
        raise TokenInvalid("user no longer active")
    if claims.get("pwv") != password_version(user):
        raise TokenInvalid("password changed since the token was issued")
    if tenant_disabled:
        raise TokenInvalid("tenant disabled")
    if not session_live:
        raise TokenInvalid("session ended (logged out or revoked)")
    return Principal("user", user.id, user.username, user.tenant_id, Role(user.role))


async def authenticate_basic(
    session: AsyncSession, settings: Settings, username: str, password: str, client: str = UNKNOWN_CLIENT
) -> Principal:
    """Check a username and password for Basic-auth callers (same throttle and lockout as login)."""
    user = await check_password(session, settings, username, password, client)
    return Principal("user", user.id, user.username, user.tenant_id, Role(user.role))


_logins_and_refreshes = itertools.count(1)


async def _maybe_prune(session: AsyncSession, settings: Settings) -> None:
    if next(_logins_and_refreshes) % settings.session_prune_every == 0:
        await prune(session, settings, settings.session_prune_batch)


async def prune(session: AsyncSession, settings: Settings, batch: int) -> int:
    """Delete refresh tokens that no longer serve (at most ``batch`` of each kind); return how many.

    Gone: tokens whose expiry is ``refresh_token_ttl_s`` past (spent ones of live sessions are
    kept until then, for reuse detection), and every token of an ended session (its last token
    revoked or expired). A family with a live token loses nothing else. Also forgets stale
    known sign-in addresses. Runs in the caller's transaction.
    """
    now = utcnow()
    old = aliased(RefreshToken)
    long_expired = select(old.id).where(
        old.expires_at < now - timedelta(seconds=settings.refresh_token_ttl_s)
    )
    gone = await session.execute(
        delete(RefreshToken)
        .where(RefreshToken.id.in_(long_expired.limit(batch)))
        .execution_options(synchronize_session=False)
    )
    last, row, other = aliased(RefreshToken), aliased(RefreshToken), aliased(RefreshToken)
    # A family's last token is its only unused one: revoked or expired, the session is over.
    ended = select(last.family_id).where(
        last.used_at.is_(None), or_(last.revoked_at.is_not(None), last.expires_at <= now)
    )
    alive = exists().where(other.family_id == row.family_id, *_live(other, now))
    dead_rows = select(row.id).where(row.family_id.in_(ended.limit(batch)), ~alive)
    dead = await session.execute(
        delete(RefreshToken)
        .where(RefreshToken.id.in_(dead_rows.limit(batch)))
        .execution_options(synchronize_session=False)
    )
    count = int(gone.rowcount) + int(dead.rowcount)  # type: ignore[attr-defined]
    return count + await prune_known(session, settings, batch)
