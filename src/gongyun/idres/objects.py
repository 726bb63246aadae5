"""Identifiers of the platform's own objects: every asset, device and tag is a registered record.

Each tenant gets an enterprise prefix under the platform's secondary prefix (the
``id_prefix`` setting, ``88.100`` by default): ``88.100.1``, ``88.100.2``, ... allocated
(filed active) when the tenant's first object is made, together with the referral record
``0.NA/88.100.<n>`` the node hierarchy expects. An object's identifier is
``<tenant prefix>/gy.<kind>.<object id>``; its record is written through the registry in
the caller's session, so it commits or rolls back with the object.

Values (fixed indexes): 1 ``GY_KIND``, 2 ``GY_NAME``, 3 ``GY_PARENT`` (the parent's
identifier), 4 ``URL`` (console page), 5 ``GY_API_URL`` (API resource), 6
``GY_CLASSIFICATION``, 100 ``HS_ADMIN``. Visibility follows the object's data
classification: for a ``general`` object the kind and name are public and everything else
is private; for ``important`` and ``core`` objects every value is private (only the
administrative ``HS_ADMIN`` value stays public, as on every Handle record). A ``core`` object's
name and parent are core values: the registry stores them sealed (``gongyun.idres.sealing``).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.config import Settings
from gongyun.core.objects import ObjectInfo, ObjectKind
from gongyun.db import Database
from gongyun.idres import prefixes as pfx
from gongyun.idres.errors import HandleExists, HandleNotFound, PrefixNotServed
from gongyun.idres.models import IdPrefix
from gongyun.idres.registry import Registry
from gongyun.idres.syntax import NA_PREFIX, fold, parent_prefix, prefix_record
from gongyun.idres.values import ADMIN_ONLY, CORE, PUBLIC, HandleValue, admin_value
from gongyun.security.classify.keyring import Keyring, shared_keyring

log = logging.getLogger(__name__)

# The owner (registry tenant) of the platform's secondary prefix and of its referral records.
PLATFORM_OWNER = "platform"
ALLOCATED_NOTE = "allocated for the tenant's objects"
SECONDARY_NOTE = "the platform's secondary prefix"
_ATTEMPTS = 8
_ALLOCATION_LOCK = 0x67_79_69_64  # "gyid": PostgreSQL advisory lock serialising prefix allocation

_CONSOLE = {"asset": "/assets?node={id}", "device": "/devices?device={id}", "tag": "/assets?tag={id}"}
_API = {
    "asset": "/api/v1/assets/{id}",
    "device": "/api/v1/assets/devices/{id}",
    "tag": "/api/v1/assets/tags/{id}",
}


def object_handle(prefix: str, kind: ObjectKind | str, object_id: str) -> str:
    """``<prefix>/gy.<kind>.<object id>``."""
    return f"{prefix}/gy.{kind}.{object_id}"


def object_values(
    prefix: str,
    kind: str,
    object_id: str,
    name: str,
    classification: str,
    parent: str | None,
    base_url: str,
) -> list[HandleValue]:
    """The typed values of an object's record, public or private by its classification."""
    shown = PUBLIC if classification == "general" else ADMIN_ONLY
    level = CORE if classification == "core" else 1
    values = [
        HandleValue(1, "GY_KIND", "string", kind, permissions=shown),
        HandleValue(2, "GY_NAME", "string", name, permissions=shown, level=level),
    ]
    if parent:
        values.append(HandleValue(3, "GY_PARENT", "string", parent, permissions=ADMIN_ONLY, level=level))
    values += [
        HandleValue(
            4, "URL", "string", base_url + _CONSOLE[kind].format(id=object_id), permissions=ADMIN_ONLY
        ),
        HandleValue(
            5, "GY_API_URL", "string", base_url + _API[kind].format(id=object_id), permissions=ADMIN_ONLY
        ),
        HandleValue(6, "GY_CLASSIFICATION", "string", classification, permissions=ADMIN_ONLY),
        admin_value(f"{NA_PREFIX}/{prefix}", 200, 100),
    ]
    return values


def next_child(id_prefix: str, children: list[str]) -> str:
    """The next free numbered prefix under ``id_prefix`` (``88.100.<highest + 1>``)."""
    numbers = [int(c.rsplit(".", 1)[1]) for c in children if c.rsplit(".", 1)[1].isdigit()]
    return f"{id_prefix}.{max(numbers, default=0) + 1}"


def referral_values(id_prefix: str) -> list[HandleValue]:
    """Values of the ``0.NA/<tenant prefix>`` record the platform's secondary node holds."""
    return [admin_value(f"{NA_PREFIX}/{id_prefix}", 200, 100)]


def own_prefix(tenant_id: str, id_prefix: str, children: list[tuple[str, str, str]]) -> str | None:
    """The tenant's active prefix among ``(prefix, tenant, status)`` children of ``id_prefix``.

    None means one must be allocated; a suspended prefix of the tenant refuses registration.
    """
    own = [(p, st) for p, t, st in children if t == tenant_id]
    active = sorted((p for p, st in own if st == pfx.FilingStatus.active.value), key=_number)
    if active:
        return active[0]
    if any(st == pfx.FilingStatus.suspended.value for _, st in own):
        raise PrefixNotServed(
            f"the tenant's identifier prefix under {id_prefix} is suspended", prefix=id_prefix
        )
    return None


def _number(prefix: str) -> tuple[int, str]:
    last = prefix.rsplit(".", 1)[-1]
    return (int(last), prefix) if last.isdigit() else (1 << 62, prefix)


def is_child(prefix: str, id_prefix: str) -> bool:
    """True when ``prefix`` sits directly under ``id_prefix``."""
    return fold(parent_prefix(prefix) or "") == fold(id_prefix)


async def _children(session: AsyncSession, id_prefix: str) -> list[tuple[str, str, str]]:
    q = select(IdPrefix.prefix, IdPrefix.tenant_id, IdPrefix.status).where(
        IdPrefix.prefix_norm.like(fold(id_prefix) + ".%")
    )
    return [(p, t, st) for p, t, st in (await session.execute(q)).all() if is_child(p, id_prefix)]


async def tenant_prefix(session: AsyncSession, registry: Registry, tenant_id: str, id_prefix: str) -> str:
    """The tenant's object prefix under ``id_prefix``, allocated and filed on first need.

    On PostgreSQL allocations are serialised by a transaction-scoped advisory lock taken only when
    the tenant has no prefix yet: many tenants' first objects at once then each get the next
    number instead of racing for it (the retries remain for SQLite, which writes one at a time).
    """
    locked = False
    for _ in range(_ATTEMPTS):
        children = await _children(session, id_prefix)
        found = own_prefix(tenant_id, id_prefix, children)
        if found is not None:
            return found
        if not locked and session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ALLOCATION_LOCK})
            locked = True
            continue  # read again: every allocation made before the lock was taken is committed
        prefix = next_child(id_prefix, [c[0] for c in children])
        try:
            # a savepoint: a concurrent allocation of the same number only costs this attempt
            async with session.begin_nested():
                if not (
                    await session.execute(select(IdPrefix.id).where(IdPrefix.prefix_norm == fold(id_prefix)))
                ).first():
                    await pfx.submit(
                        session,
                        PLATFORM_OWNER,
                        id_prefix,
                        pfx.PrefixKind.secondary,
                        status=pfx.FilingStatus.active,
                        note=SECONDARY_NOTE,
                    )
                await pfx.submit(
                    session,
                    tenant_id,
                    prefix,
                    pfx.PrefixKind.enterprise,
                    status=pfx.FilingStatus.active,
                    note=ALLOCATED_NOTE,
                )
                await registry.put(
                    PLATFORM_OWNER, str(prefix_record(prefix)), referral_values(id_prefix), session=session
                )
        except (IntegrityError, HandleExists):
            log.info("prefix %s was taken concurrently; trying the next one", prefix)
            continue
        return prefix
    raise PrefixNotServed(f"could not allocate an identifier prefix under {id_prefix}", prefix=id_prefix)


class ObjectRegistrar:
    """Registers, updates and deletes object identifiers (implements ``IdentifierMinter``)."""

    def __init__(self, db: Database, id_prefix: str, base_url: str, keyring: Keyring | None = None) -> None:
        self.registry = Registry(db, keyring=keyring)
        self.id_prefix = id_prefix
        self.base_url = base_url.rstrip("/")

    def _values(self, prefix: str, obj: ObjectInfo) -> list[HandleValue]:
        return object_values(
            prefix, obj.kind, obj.object_id, obj.name, obj.classification, obj.parent, self.base_url
        )

    async def register(self, session: AsyncSession, obj: ObjectInfo) -> str:
        """Register a new object's identifier in its tenant's prefix; returns the identifier."""
        prefix = await tenant_prefix(session, self.registry, obj.tenant_id, self.id_prefix)
        handle = object_handle(prefix, obj.kind, obj.object_id)
        await self.registry.put(obj.tenant_id, handle, self._values(prefix, obj), session=session)
        return handle

    async def update(self, session: AsyncSession, identifier: str, obj: ObjectInfo) -> None:
        """Rewrite an object's record (registering it again if it was missing)."""
        prefix = identifier.partition("/")[0]
        await self.registry.put(
            obj.tenant_id, identifier, self._values(prefix, obj), overwrite=True, session=session
        )

    async def delete(self, session: AsyncSession, tenant_id: str, identifier: str) -> None:
        """Remove an object's record; an absent one is fine."""
        if not identifier:
            return
        try:
            await self.registry.delete(tenant_id, identifier, session=session)
        except HandleNotFound:
            log.info("identifier %s had no record to delete", identifier)


def object_registrar(settings: Settings, db: Database) -> ObjectRegistrar:
    """The object identifier registrar for a platform's settings and metadata database."""
    return ObjectRegistrar(db, settings.id_prefix, settings.effective_public_url, shared_keyring(settings))
