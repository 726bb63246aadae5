"""What an item's record adds to its genealogy: the process data of its production windows and the
quality app's inspections of its lots (when that app has recorded any)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.services import AppServices
from gongyun.apps.trace.store import aware
from gongyun.apps.trace.tables import links
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.store.base import to_us

MAX_WINDOWS = 10
MAX_TAGS = 30


async def windows(s: AsyncSession, tenant_id: str, item_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The distinct (machine, start, end) windows of the links into these items, newest first."""
    ids = list(dict.fromkeys(item_ids))[:5000]
    q = (
        select(links.c.machine, links.c.start_at, links.c.end_at)
        .distinct()
        .where(
            links.c.tenant_id == tenant_id,
            links.c.child_id.in_(ids),
            links.c.machine.is_not(None),
            links.c.start_at.is_not(None),
            links.c.end_at.is_not(None),
        )
        .order_by(links.c.start_at.desc())
        .limit(MAX_WINDOWS)
    )
    return [
        {"machine": r.machine, "start": aware(r.start_at), "end": aware(r.end_at)} for r in await s.execute(q)
    ]


async def window_telemetry(
    services: AppServices, tenant_id: str, machine: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Each of the machine's tags in [start, end): count, min, average, max, first and last value."""
    names = sorted(t for t in await services.store.tags(tenant_id) if t.startswith(machine + "/"))
    out = []
    for tag in names[:MAX_TAGS]:
        ds = await services.store.downsample(tenant_id, tag, to_us(start), to_us(end), 1)
        full = [b for b in ds.buckets if b.count and b.avg is not None]
        if not full:
            continue
        n = sum(b.count for b in full)
        out.append(
            {
                "tag": tag,
                "count": n,
                "min": min(b.min for b in full if b.min is not None),
                "avg": sum((b.avg or 0.0) * b.count for b in full) / n,
                "max": max(b.max for b in full if b.max is not None),
                "first": full[0].first,
                "last": full[-1].last,
            }
        )
    return out


async def process_data(
    s: AsyncSession, services: AppServices, tenant_id: str, item_ids: Iterable[int]
) -> list[dict[str, Any]] | None:
    """The production windows of an item and its components with their telemetry (None where this
    process runs no platform data)."""
    out = []
    for w in await windows(s, tenant_id, item_ids):
        try:
            tags = await window_telemetry(services, tenant_id, w["machine"], w["start"], w["end"])
        except ServiceUnavailable:
            return None
        out.append(
            {
                "machine": w["machine"],
                "start_at": w["start"].isoformat(),
                "end_at": w["end"].isoformat(),
                "tags": tags,
            }
        )
    return out


async def inspections(s: AsyncSession, tenant_id: str, lots: Iterable[str]) -> list[dict[str, Any]] | None:
    """The quality app's inspections recorded for these lot codes or keys (None without that app)."""
    wanted = sorted({x for x in lots if x})
    if not wanted:
        return []
    sql = text(
        "SELECT lot, characteristic, value, sample_size, defects, operator, recorded_at "
        "FROM quality_inspections WHERE tenant_id = :tenant AND lot IN :lots "
        "ORDER BY recorded_at LIMIT 1000"
    ).bindparams(bindparam("lots", expanding=True))
    try:
        async with s.begin_nested():
            rows = list(await s.execute(sql, {"tenant": tenant_id, "lots": wanted}))
    except DBAPIError:  # the quality app's table is not there
        return None
    return [
        {
            "lot": r.lot,
            "characteristic": r.characteristic,
            "value": r.value,
            "sample_size": r.sample_size,
            "defects": r.defects,
            "operator": r.operator,
            "recorded_at": r.recorded_at.isoformat()
            if isinstance(r.recorded_at, datetime)
            else str(r.recorded_at),
        }
        for r in rows
    ]
