"""Tenants, users and API keys: the operations the API and the CLI share."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.db.base import utcnow
from gongyun.errors import Conflict, LastPlatformAdmin, NotFound, ValidationFailed
from gongyun.security.audit import record as audit
from gongyun.security.auth import hash_password, new_api_key_secret, revoke_user_tokens
from gongyun.security.models import ApiKey, RefreshToken, Tenant, User
from gongyun.security.rbac import Role, cap_role, permissions

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
MIN_PASSWORD = 10
DEFAULT_TENANT = "default"


# Usernames are global (login needs no tenant), so the message must not reveal which
# tenant holds a name.
USERNAME_TAKEN = "this username is not available"


async def _insert(session: AsyncSession, obj: object, conflict: str) -> None:
    """Insert in a savepoint so that a lost race on a unique key becomes ``Conflict``."""
    try:
        async with session.begin_nested():
            session.add(obj)
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


def check_password_policy(password: str) -> None:
    """Reject passwords that are too short or trivially weak."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must have at least {MIN_PASSWORD} characters", field="password")
    if len(set(password)) < 4:
        raise ValidationFailed("password is too repetitive", field="password")


def generate_password() -> str:
    """A strong random password for a first admin."""
    return secrets.token_urlsafe(15)


async def create_tenant(session: AsyncSession, name: str, display_name: str = "") -> Tenant:
    """Create a tenant with a unique lowercase name."""
    if not NAME_RE.match(name):
        raise ValidationFailed("tenant name must be 2-63 of a-z 0-9 . _ - and start alphanumeric")
    exists = await session.execute(select(Tenant.id).where(Tenant.name == name))
    if exists.first() is not None:
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, display_name=display_name or name)
    await _insert(session, tenant, f"tenant {name!r} already exists")
    return tenant


async def get_tenant_by_name(session: AsyncSession, name: str) -> Tenant:
    """The tenant called ``name``."""
    row = (await session.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"tenant {name!r} not found")
    return row


async def create_user(
    session: AsyncSession,
    tenant_id: str,
    username: str,
    password: str,
    role: Role,
    display_name: str = "",
) -> User:
    """Create a user after checking the name and the password policy."""
    if not USERNAME_RE.match(username):
        raise ValidationFailed("username must be 2-64 of A-Z a-z 0-9 . _ @ -", field="username")
    check_password_policy(password)
    taken = await session.execute(
        select(User.id).where(User.username == username).execution_options(all_tenants=True)
    )
    if taken.first() is not None:
        raise Conflict(USERNAME_TAKEN)
    user = User(
        tenant_id=tenant_id,
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        display_name=display_name,
    )
    await _insert(session, user, USERNAME_TAKEN)
    return user


async def get_user_by_name(session: AsyncSession, username: str) -> User:
    """The user called ``username`` (within the session's tenant scope, if any)."""
    row = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"user {username!r} not found")
    return row


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """Change a password; every access and refresh token issued before stops working."""
    check_password_policy(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
    await revoke_user_tokens(session, user.id)


async def _other_platform_admins(session: AsyncSession, *, user_id: str = "", tenant_id: str = "") -> int:
    """Enabled platform admins in enabled tenants, besides ``user_id`` / outside ``tenant_id``."""
    rows = await _platform_admins(session)
    return sum(1 for uid, tid in rows if uid != user_id and tid != tenant_id)


async def _platform_admins(session: AsyncSession) -> list[tuple[str, str]]:
    """(user id, tenant id) of every enabled platform admin in an enabled tenant.

    Every such row is locked (PostgreSQL; SQLite writes one at a time anyway), so two admins
    demoting each other concurrently cannot both pass: the second waits, then sees the first
    one's change. Called before the change it guards.
    """
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: a no-op write takes the database's write lock first, so a
        # concurrent check waits for this transaction and then reads its outcome.
        touch = update(User).where(User.role == Role.platform_admin.value).values(role=User.role)
        await session.execute(touch.execution_options(all_tenants=True, synchronize_session=False))
    rows = (
        await session.execute(
            select(User.id, User.tenant_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(
                User.role == Role.platform_admin.value,
                User.disabled.is_(False),
                Tenant.disabled.is_(False),
            )
            .with_for_update(of=User)
            .execution_options(all_tenants=True)
        )
    ).all()
    return [(str(uid), str(tid)) for uid, tid in rows]


async def keep_a_platform_admin(session: AsyncSession, user: User) -> None:
    """Refuse (``LastPlatformAdmin``) to demote, disable or delete the last enabled platform admin."""
    if user.role != Role.platform_admin.value or user.disabled:
        return
    if await _other_platform_admins(session, user_id=user.id) == 0:
        raise LastPlatformAdmin(
            f"{user.username!r} is the last enabled platform administrator; "
            "make another one first, or the installation is locked out",
            username=user.username,
        )


async def set_disabled(session: AsyncSession, user: User, disabled: bool, actor: str = "cli") -> None:
    """Disable or enable a user; disabling ends its sessions and revokes the API keys it made.

    The keys stay revoked when the user is enabled again: a fresh key has to be made. Each
    revocation is audited in the user's tenant (a key may live in another tenant when a
    platform admin made it there), so the reach of the disable is on record.
    """
    if disabled:
        await keep_a_platform_admin(session, user)
    user.disabled = disabled
    if not disabled:
        return
    await revoke_user_tokens(session, user.id)
    now = utcnow()
    revoked = (
        await session.execute(
            update(ApiKey)
            .where(ApiKey.creator_user_id == user.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(ApiKey.name, ApiKey.prefix, ApiKey.tenant_id)
            .execution_options(all_tenants=True, synchronize_session=False)
        )
    ).all()
    for name, prefix, key_tenant in sorted(revoked):
        await audit(
            session,
            user.tenant_id,
            actor,
            "apikey.revoke",
            name,
            prefix=prefix,
            key_tenant_id=key_tenant,
            reason="creator_disabled",
            creator=user.username,
        )


async def set_role(session: AsyncSession, user: User, role: Role, actor: str = "cli") -> None:
    """Change a user's role; a demotion is audited with every live API key it caps.

    Keys keep their stored role and are capped when used (``auth.authenticate_api_key``), so
    a later promotion gives them back what they had; the audit trail records what each key
    can do from now on.
    """
    old = Role(user.role)
    if role is not Role.platform_admin:
        await keep_a_platform_admin(session, user)
    user.role = role.value
    if permissions(old) <= permissions(role):
        return
    await audit(
        session, user.tenant_id, actor, "user.demote", user.username, **{"from": old.value, "to": role.value}
    )
    keys = (
        await session.execute(
            select(ApiKey.name, ApiKey.prefix, ApiKey.tenant_id, ApiKey.role)
            .where(ApiKey.creator_user_id == user.id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.name, ApiKey.tenant_id)
            .execution_options(all_tenants=True)
        )
    ).all()
    for name, prefix, key_tenant, key_role in keys:
        effective = cap_role(Role(key_role), role)
        if effective is Role(key_role):
            continue
        await audit(
            session,
            user.tenant_id,
            actor,
            "apikey.cap",
            name,
            prefix=prefix,
            key_tenant_id=key_tenant,
            role=key_role,
            effective_role=effective.value if effective else None,
            reason="creator_demoted",
            creator=user.username,
        )


async def set_tenant_disabled(session: AsyncSession, tenant: Tenant, disabled: bool) -> None:
    """Disable or enable a tenant; disabling ends the sessions of all its users.

    Refused (``LastPlatformAdmin``) when the tenant holds every enabled platform admin.
    """
    admins = await _platform_admins(session) if disabled and not tenant.disabled else []
    if any(tid == tenant.id for _, tid in admins) and all(tid == tenant.id for _, tid in admins):
        raise LastPlatformAdmin(
            f"tenant {tenant.name!r} holds every enabled platform administrator; disabling it "
            "would lock the installation out"
        )
    tenant.disabled = disabled
    if not disabled:
        return
    members = select(User.id).where(User.tenant_id == tenant.id)
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id.in_(members),
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(all_tenants=True, synchronize_session=False)
    )


async def creator_of(session: AsyncSession, kind: str, principal_id: str) -> str | None:
    """The user a new API key acts for: the caller, or the creator of the calling key."""
    if kind == "user":
        return principal_id
    stmt = select(ApiKey.creator_user_id).where(ApiKey.id == principal_id)
    return (await session.execute(stmt.execution_options(all_tenants=True))).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created API key: the row and the only copy of the secret key."""

    row: ApiKey
    key: str


async def create_api_key(
    session: AsyncSession,
    tenant_id: str,
    name: str,
    role: Role,
    created_by: str,
    expires_in_days: int | None = None,
    creator_user_id: str | None = None,
) -> NewApiKey:
    """Create an API key; the full key is returned once and only its hash is kept."""
    if not name or len(name) > 100:
        raise ValidationFailed("API key name must have 1-100 characters", field="name")
    dup = await session.execute(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id, ApiKey.name == name))
    if dup.first() is not None:
        raise Conflict(f"an API key named {name!r} exists")
    key, prefix, secret_hash = new_api_key_secret()
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row = ApiKey(
        tenant_id=tenant_id,
        name=name,
        role=role.value,
        prefix=prefix,
        secret_hash=secret_hash,
        created_by=created_by,
        creator_user_id=creator_user_id,
        expires_at=expires,
    )
    await _insert(session, row, f"an API key named {name!r} exists")
    return NewApiKey(row, key)


async def count_users(session: AsyncSession) -> int:
    """How many users exist (in scope)."""
    return int((await session.execute(select(func.count(User.id)))).scalar_one())


async def ensure_bootstrap(session: AsyncSession, admin_username: str, password: str | None) -> str | None:
    """Create the default tenant and the first platform admin if no user exists.

    Returns the generated password when one had to be made (to print once), else None.
    """
    if await count_users(session) > 0:
        return None
    tenant = (
        await session.execute(select(Tenant).where(Tenant.name == DEFAULT_TENANT))
    ).scalar_one_or_none() or await create_tenant(session, DEFAULT_TENANT, "Default")
    generated = None
    if password is None:
        generated = password = generate_password()
    await create_user(session, tenant.id, admin_username, password, Role.platform_admin, "Administrator")
    return generated
