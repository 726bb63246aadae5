"""The internal API other rooms use: mint and resolve identifiers for their objects.

``await mint(db, tenant_id, "device", url=..., attributes={"GY_MODEL": "X1"})`` registers
``<prefix>/DEV-<random>`` under the tenant's active prefix (or the one given) with values
``GY_KIND``, optional ``URL``, the object's own id and any attributes; it returns the
identifier. ``await resolve(db, tenant_id, handle)`` returns the record.
"""

from __future__ import annotations

import base64
import secrets
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.db import Database
from gongyun.errors import InvalidInput
from gongyun.idres.errors import PrefixNotServed
from gongyun.idres.models import IdPrefix
from gongyun.idres.prefixes import FilingStatus
from gongyun.idres.registry import Record, Registry
from gongyun.idres.syntax import check_prefix
from gongyun.idres.values import HandleValue, string_value


class Kind(StrEnum):
    """What an identifier names, and the suffix code minted for it."""

    asset = "asset"
    device = "device"
    tag = "tag"
    lot = "lot"
    serial = "serial"
    product = "product"


CODES = {
    Kind.asset: "AST",
    Kind.device: "DEV",
    Kind.tag: "TAG",
    Kind.lot: "LOT",
    Kind.serial: "SN",
    Kind.product: "PRD",
}
OBJECT_TYPES = {
    Kind.asset: "GY_ASSET",
    Kind.device: "GY_DEVICE",
    Kind.tag: "GY_TAG",
    Kind.lot: "GY_LOT",
    Kind.serial: "GY_SERIAL",
    Kind.product: "GY_PRODUCT",
}


def new_suffix(kind: Kind) -> str:
    """``DEV-`` plus 16 random base32 characters (80 bits)."""
    token = base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")
    return f"{CODES[kind]}-{token}"


async def default_prefix(session: AsyncSession, tenant_id: str) -> str:
    """The tenant's longest active prefix (its enterprise prefix); ``PrefixNotServed`` if none."""
    rows = (
        await session.execute(
            select(IdPrefix.prefix).where(
                IdPrefix.tenant_id == tenant_id, IdPrefix.status == FilingStatus.active.value
            )
        )
    ).scalars()
    prefixes = sorted(rows, key=lambda p: (-p.count("."), p))
    if not prefixes:
        raise PrefixNotServed("the tenant has no active identifier prefix to mint under")
    return prefixes[0]


async def mint(
    db: Database,
    tenant_id: str,
    kind: Kind | str,
    *,
    object_id: str | None = None,
    url: str | None = None,
    attributes: dict[str, str] | None = None,
    prefix: str | None = None,
    suffix: str | None = None,
    session: AsyncSession | None = None,
) -> str:
    """Register a new identifier for an object and return it."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise InvalidInput(f"kind must be one of {[k.value for k in Kind]}") from None
    registry = Registry(db)
    if prefix is None:
        if session is not None:
            prefix = await default_prefix(session, tenant_id)
        else:
            async with db.session() as s:
                prefix = await default_prefix(s, tenant_id)
    check_prefix(prefix)
    values: list[HandleValue] = [string_value(1, "GY_KIND", kind.value)]
    if url:
        values.append(string_value(2, "URL", url))
    if object_id:
        values.append(string_value(3, OBJECT_TYPES[kind], object_id))
    for n, (vtype, text) in enumerate(sorted((attributes or {}).items())):
        values.append(string_value(10 + n, vtype, text))
    handle = f"{prefix}/{suffix or new_suffix(kind)}"
    rec, _ = await registry.put(tenant_id, handle, values, session=session)
    return rec.handle


async def resolve(db: Database, tenant_id: str, handle: str, session: AsyncSession | None = None) -> Record:
    """The record of an identifier of the tenant (``HandleNotFound`` otherwise)."""
    return await Registry(db).get(tenant_id, handle, session=session)
