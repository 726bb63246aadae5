"""Identifiers for assets, devices and tags: the small interface the asset model needs.

Every asset, device and tag is a registered, resolvable identifier. The asset CRUD layer
describes the object (``ObjectInfo``) and calls an ``IdentifierMinter`` with its own session,
so the identifier record is written in the same transaction as the object. The
implementation lives in the identifier room (``gongyun.idres.objects``) and is passed in by
whoever calls the CRUD functions (API routes, seeding, CLI); this room never looks it up.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.core.objects import ObjectInfo, ObjectKind

__all__ = ["IdentifierMinter", "ObjectInfo", "ObjectKind"]


class IdentifierMinter(Protocol):
    """Registers, updates and deletes the identifier records of objects inside a session."""

    async def register(self, session: AsyncSession, obj: ObjectInfo) -> str:
        """Register the identifier of a new object and return it."""
        ...

    async def update(self, session: AsyncSession, identifier: str, obj: ObjectInfo) -> None:
        """Rewrite the record of an existing object (renamed, reclassified, moved)."""
        ...

    async def delete(self, session: AsyncSession, tenant_id: str, identifier: str) -> None:
        """Remove the record of a deleted object (nothing happens when there is none)."""
        ...
