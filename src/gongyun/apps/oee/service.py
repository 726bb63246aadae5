"""Between the OEE routes and worker and the domain: machines, calendars, computation from rollups."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.apps.oee.domain.calendar import ShiftCalendar
from gongyun.apps.oee.domain.machine import (
    Counter,
    Grouping,
    MachineSpec,
    PeriodResult,
    line_periods,
    machine_periods,
    site_summary,
)
from gongyun.apps.oee.domain.rollup import ReadStats, counter_from_rollups, timeline_from_rollups
from gongyun.apps.oee.domain.states import StateMapping, Timeline
from gongyun.apps.oee.errors import OeeInputInvalid
from gongyun.apps.oee.storeio import StoreReader
from gongyun.apps.oee.tables import calendars, machines
from gongyun.errors import NotFound
from gongyun.telemetry.store.base import TimeSeriesStore

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TagRef = str


class MachineIn(BaseModel):
    """A machine: how its state is read, its counters, ideal cycle time and micro-stop threshold."""

    name: str = Field(min_length=1, max_length=200)
    line: str = Field(min_length=1, max_length=200)
    mapping: dict[str, Any]
    good_tag: str | None = Field(default=None, pattern=r"^[^/\s]+/[^\s]+$")
    scrap_tag: str | None = Field(default=None, pattern=r"^[^/\s]+/[^\s]+$")
    total_tag: str | None = Field(default=None, pattern=r"^[^/\s]+/[^\s]+$")
    ideal_cycle_s: float = Field(gt=0)
    micro_stop_s: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _one_good_count(self) -> MachineIn:
        if self.good_tag and self.total_tag:
            raise OeeInputInvalid(
                "give good_tag or total_tag (good = total - scrap), not both", reason="counts"
            )
        return self

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, v: dict[str, Any]) -> dict[str, Any]:
        return StateMapping.parse(v).to_dict()


def new_id() -> str:
    """A fresh row id."""
    return uuid.uuid4().hex


def us(dt: datetime) -> int:
    """An aware datetime as µs since the epoch."""
    if dt.tzinfo is None:
        raise OeeInputInvalid("times need a time zone", reason="window")
    return (dt - _EPOCH) // timedelta(microseconds=1)


def iso(ts: int) -> str:
    """µs since the epoch as ISO 8601."""
    return (_EPOCH + timedelta(microseconds=int(ts))).isoformat()


def plain(row: Any) -> dict[str, Any]:
    """A row as the API shows it."""
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items() if k != "tenant_id"
    }


async def machine_rows(
    session: AsyncSession,
    tenant: str,
    line: str | None = None,
    *,
    retired: bool = False,
    active_after: int | None = None,
) -> list[dict[str, Any]]:
    """The tenant's machines (of one line): those in service, with ``retired`` also the retired
    ones, with ``active_after`` (µs) also those retired after that time."""
    q = select(machines).where(machines.c.tenant_id == tenant)
    if line is not None:
        q = q.where(machines.c.line == line)
    if active_after is not None:
        q = q.where(machines.c.retired_at.is_(None) | (machines.c.retired_at > at(active_after)))
    elif not retired:
        q = q.where(machines.c.retired_at.is_(None))
    return [dict(r) for r in (await session.execute(q.order_by(machines.c.name))).mappings()]


def at(ts: int) -> datetime:
    """µs since the epoch as an aware datetime."""
    return _EPOCH + timedelta(microseconds=int(ts))


def retired_us(m: Mapping[str, Any]) -> int | None:
    """When the machine was retired (µs), None while in service."""
    r = m.get("retired_at")
    if r is None:
        return None
    return us(r if r.tzinfo else r.replace(tzinfo=UTC))


async def machine_row(session: AsyncSession, tenant: str, machine_id: str) -> dict[str, Any]:
    """One machine of the tenant (NotFound for another tenant's)."""
    row = (
        (
            await session.execute(
                select(machines).where(machines.c.id == machine_id, machines.c.tenant_id == tenant)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no machine {machine_id}")
    return dict(row)


async def calendar_for(session: AsyncSession, tenant: str, line: str) -> ShiftCalendar:
    """The line's calendar, else the tenant's default (``*``); without either, one 24 h shift."""
    rows = {
        r["line"]: r["spec"]
        for r in (
            await session.execute(
                select(calendars.c.line, calendars.c.spec).where(
                    calendars.c.tenant_id == tenant, calendars.c.line.in_([line, "*"])
                )
            )
        ).mappings()
    }
    spec = rows.get(line) or rows.get("*") or {"shifts": [{"name": "day", "start": "00:00", "end": "00:00"}]}
    return ShiftCalendar.parse(spec)


def _spec(m: Mapping[str, Any]) -> MachineSpec:
    return MachineSpec(str(m["name"]), float(m["ideal_cycle_s"]), float(m["micro_stop_s"]))


async def machine_data(
    store: TimeSeriesStore,
    tenant: str,
    m: Mapping[str, Any],
    start: int,
    end: int,
    edges: list[int],
    stats: ReadStats,
) -> tuple[Timeline, Counter, Counter]:
    """A machine's timeline and counters over [start, end), from rollups."""
    reader = StoreReader(store, tenant)
    mapping = StateMapping.parse(m["mapping"])
    timeline = await timeline_from_rollups(reader, mapping, start, end, stats, edges)
    good = (
        await counter_from_rollups(reader, m["good_tag"], start, end, edges, stats)
        if m["good_tag"]
        else Counter.empty()
    )
    scrap = (
        await counter_from_rollups(reader, m["scrap_tag"], start, end, edges, stats)
        if m["scrap_tag"]
        else Counter.empty()
    )
    if m.get("total_tag"):
        total = await counter_from_rollups(reader, m["total_tag"], start, end, edges, stats)
        good = total.minus(scrap)
    return timeline, good, scrap


async def line_oee(
    session: AsyncSession,
    store: TimeSeriesStore,
    tenant: str,
    line: str,
    start: int,
    end: int,
    grouping: Grouping,
) -> dict[str, Any]:
    """Every machine of a line per period, and the line (its bottleneck) per period."""
    rows = await machine_rows(session, tenant, line, active_after=start)
    if not rows:
        raise NotFound(f"no line {line!r}")
    cal = await calendar_for(session, tenant, line)
    stats = ReadStats()
    per: dict[str, list[PeriodResult]] = {}
    for m in rows:
        insts = cal.instances(start, end, machine=m["name"])
        gone = retired_us(m)
        if gone is not None:  # a retired machine counts in the shifts begun before its retirement
            insts = [i for i in insts if i.start < gone]
        edges = [x for i in insts for w in i.busy_windows() for x in w]
        timeline, good, scrap = await machine_data(store, tenant, m, start, end, edges, stats)
        per[m["name"]] = machine_periods(_spec(m), timeline, good, scrap, insts, grouping)
    lines = line_periods([_spec(m) for m in rows], per)
    return {
        "line": line,
        "grouping": grouping,
        "machines": {name: [p.as_dict() for p in ps] for name, ps in per.items()},
        "periods": [x.as_dict() for x in lines],
        "summary": site_summary({x.key: x for x in lines}),
        "reads": vars(stats),
    }


async def site_oee(
    session: AsyncSession, store: TimeSeriesStore, tenant: str, start: int, end: int, grouping: Grouping
) -> dict[str, Any]:
    """Every line of the tenant (at its bottleneck) and the site: lines weighted by planned busy time."""
    names = sorted({str(m["line"]) for m in await machine_rows(session, tenant, active_after=start)})
    lines = {n: await line_oee(session, store, tenant, n, start, end, grouping) for n in names}
    keys = sorted({p["key"] for r in lines.values() for p in r["periods"]})
    periods = []
    for key in keys:
        per = {n: p for n, r in lines.items() for p in r["periods"] if p["key"] == key}
        periods.append({"key": key, **_weighted_lines(per)})
    return {
        "grouping": grouping,
        "lines": {n: {"periods": r["periods"], "summary": r["summary"]} for n, r in lines.items()},
        "periods": periods,
    }


def _weighted_lines(per: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k in ("availability", "performance", "quality", "oee"):
        num = den = 0.0
        for p in per.values():
            v, w = p.get(k), float(p.get("pbt_s") or 0.0)
            if v is not None and w > 0:
                num, den = num + float(v) * w, den + w
        out[k] = num / den if den else None
    return out


def window(
    start: datetime | None, end: datetime | None, default: timedelta = timedelta(hours=24)
) -> tuple[int, int]:
    """[start, end) in µs (default: the last ``default`` up to now)."""
    e = us(end) if end else us(datetime.now(UTC))
    s = us(start) if start else e - int(default.total_seconds() * US)
    if s >= e:
        raise OeeInputInvalid("start must be before end", reason="window")
    if e - s > 400 * 86400 * US:
        raise OeeInputInvalid("a window is at most 400 days", reason="window")
    return s, e


Group = Literal["shift", "day", "week"]
