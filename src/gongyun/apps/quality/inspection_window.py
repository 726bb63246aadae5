"""Bounded reads of inspection data for live charts: the newest rows of a window, the rest summarised.

Like a tag chart (``window``), a chart on inspections reads at most ``max_rows`` of the newest
inspections of its characteristic in the window; what lies before the cut is summarised exactly
in one aggregate query (rows, mean, min, max of the values or defect counts, lots). The cut is
the time of the newest ``max_rows``-th row; for subgroups by time it moves to the next window
boundary (so no window is read in part), and for lots and attribute charts a lot with rows
before the cut is left out whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.quality.tables import inspections
from gongyun.apps.quality.window import LeftOut

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def aware(dt: datetime) -> datetime:
    """A datetime with its time zone (SQLite hands back naive UTC)."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _us(dt: datetime) -> int:
    return (aware(dt) - _EPOCH) // timedelta(microseconds=1)


def _at(ts_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_us)


async def read_inspections(
    session: AsyncSession,
    tenant: str,
    characteristic: str,
    start: datetime,
    end: datetime,
    *,
    attribute: bool,
    by: str,
    window_us: int,
    max_rows: int | None,
) -> tuple[Sequence[Mapping[str, Any]], LeftOut | None]:
    """The characteristic's inspections in [start, end) that the chart uses (values, or defect
    counts for an attribute chart), oldest first, and what a bounded read left out."""
    col = inspections.c.defects if attribute else inspections.c.value
    where = [
        inspections.c.tenant_id == tenant,
        inspections.c.characteristic == characteristic,
        col.is_not(None),
        inspections.c.recorded_at >= start,
        inspections.c.recorded_at < end,
    ]
    left, read_from = None, start
    if max_rows is not None:
        nth = await session.scalar(
            select(inspections.c.recorded_at)
            .where(*where)
            .order_by(inspections.c.recorded_at.desc(), inspections.c.id.desc())
            .offset(max_rows - 1)
            .limit(1)
        )
        if nth is not None:
            cut = await _cut(session, where, _us(nth), by, window_us)
            left = await _summary(session, where, col, cut, lots=attribute or by == "lot")
            if left is not None:
                read_from = _at(cut)
    found = (
        (
            await session.execute(
                select(inspections)
                .where(*where, inspections.c.recorded_at >= read_from)
                .order_by(inspections.c.recorded_at, inspections.c.id)
            )
        )
        .mappings()
        .all()
    )
    rows: list[Mapping[str, Any]] = [dict(r) for r in found]
    if left is not None and (attribute or by == "lot"):
        begun = set(
            (
                await session.scalars(
                    select(inspections.c.lot)
                    .distinct()
                    .where(
                        *where,
                        inspections.c.recorded_at < read_from,
                        inspections.c.lot.in_({r["lot"] for r in rows}),
                    )
                )
            ).all()
        )
        rows = [r for r in rows if r["lot"] not in begun]  # a lot begun before the cut: out whole
    return rows, left


async def _cut(session: AsyncSession, where: list[Any], nth: int, by: str, window_us: int) -> int:
    """Where the read begins: the newest rows' oldest time, or for time windows the next window
    boundary (the window holding that row when nothing lies after the boundary)."""
    if by != "time":
        return nth
    up = -(-nth // window_us) * window_us
    later = await session.scalar(
        select(func.count()).select_from(inspections).where(*where, inspections.c.recorded_at >= _at(up))
    )
    return up if later else nth // window_us * window_us


async def _summary(
    session: AsyncSession, where: list[Any], col: Any, cut: int, *, lots: bool
) -> LeftOut | None:
    """The rows before the cut in one aggregate; None when there are none."""
    n, mean, lo, hi, nlots = (
        await session.execute(
            select(
                func.count(),
                func.avg(col),
                func.min(col),
                func.max(col),
                func.count(distinct(inspections.c.lot)),
            ).where(*where, inspections.c.recorded_at < _at(cut))
        )
    ).one()
    if not n:
        return None
    return LeftOut(
        cut,
        int(n),
        float(mean),
        float(lo),
        float(hi),
        lots=int(nlots) if lots else None,
    )
