"""Items as identifier records in the tenant's prefix (resolvable by handle and by Digital Link).

A GS1 item ``/01/{gtin}/10/{lot}`` becomes ``<tenant prefix>/gy.trace/01/{gtin}/10/{lot}``
with the values the Digital Link resolver matches (``GS1_GTIN``, ``GY_LOT``, ``GY_SERIAL``,
``GS1_SSCC``), its kind, a ``URL`` to the product page, the template's public links
(``GS1_LINK``) and, private, the item's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.trace.domain.ids import Minted
from gongyun.apps.trace.tables import items
from gongyun.db import Database
from gongyun.idres.models import IdPrefix
from gongyun.idres.objects import tenant_prefix
from gongyun.idres.registry import MAX_BATCH, Registry
from gongyun.idres.values import ADMIN_ONLY, PUBLIC, HandleValue, admin_value

PAGE = "/apps/trace/product?key={key}"


async def prefix_of(s: AsyncSession, db: Database, tenant_id: str, id_prefix: str | None) -> str:
    """The tenant's enterprise prefix: an active one it owns, or one allocated under ``id_prefix``."""
    if id_prefix is None:
        row = (
            await s.execute(
                select(IdPrefix.prefix)
                .where(IdPrefix.tenant_id == tenant_id, IdPrefix.status == "active")
                .order_by(IdPrefix.prefix)
                .limit(1)
            )
        ).first()
        if row is not None:
            return str(row[0])
        from gongyun.config import get_settings

        id_prefix = get_settings().id_prefix
    return await tenant_prefix(s, Registry(db), tenant_id, id_prefix)


def record_values(m: Minted, base_url: str, links: Sequence[str] = ()) -> list[HandleValue]:
    """The values of an item's identifier record."""
    vals = [HandleValue(1, "GY_KIND", "string", f"trace.{m.kind.value}", permissions=PUBLIC)]
    typed = [("GS1_GTIN", m.gtin), ("GY_LOT", m.lot), ("GY_SERIAL", m.serial), ("GS1_SSCC", m.sscc)]
    index = 2
    for vtype, value in typed:
        if value:
            vals.append(HandleValue(index, vtype, "string", value, permissions=PUBLIC))
        index += 1
    vals.append(HandleValue(6, "URL", "string", base_url + PAGE.format(key=m.key), permissions=PUBLIC))
    for i, link in enumerate(links[:50]):
        vals.append(HandleValue(10 + i, "GS1_LINK", "string", link, permissions=PUBLIC))
    vals.append(HandleValue(7, "GY_TRACE_STATUS", "string", "active", permissions=ADMIN_ONLY))
    return vals


async def register(
    s: AsyncSession,
    db: Database,
    tenant_id: str,
    ids: Sequence[int],
    minted: Sequence[Minted],
    *,
    base_url: str,
    id_prefix: str | None = None,
    links: Sequence[str] = (),
) -> list[str]:
    """Register the items' identifier records in the tenant's prefix (in this transaction)."""
    prefix = await prefix_of(s, db, tenant_id, id_prefix)
    registry = Registry(db)
    handles: list[str] = []
    for start in range(0, len(minted), MAX_BATCH):
        chunk = list(zip(ids[start : start + MAX_BATCH], minted[start : start + MAX_BATCH], strict=True))
        batch: list[tuple[str, Any]] = []
        for _, m in chunk:
            suffix = m.key if m.key.startswith("/") else "/" + m.key.replace(":", "/", 1)
            values = record_values(m, base_url, links)
            values.append(admin_value(f"0.NA/{prefix}", 200, 100))
            batch.append((f"{prefix}/gy.trace{suffix}", values))
        await registry.register_batch(tenant_id, batch, session=s, raise_errors=True, overwrite=True)
        made = zip(chunk, batch, strict=True)
        pairs: list[dict[str, Any]] = [{"iid": i, "h": h} for (i, _), (h, _) in made]
        stmt = update(items).where(items.c.id == bindparam("iid")).values(handle=bindparam("h"))
        await s.execute(stmt.execution_options(synchronize_session=False), pairs)
        handles.extend(str(p["h"]) for p in pairs)
    return handles
