"""The OEE app's API, mounted under ``/api/v1/apps/oee/``.

Reading needs ``telemetry:read``; machines, calendars and reason trees ``alarms:write``
(engineers); coding a stop ``alarms:ack`` (operators, who acknowledge alarms on the line too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, insert, select, update

from gongyun.apps import AppCtx, IsoTime, needs
from gongyun.apps.oee import service, worker
from gongyun.apps.oee.domain.calendar import ShiftCalendar
from gongyun.apps.oee.domain.losses import UNCODED, pareto, reason_tree
from gongyun.apps.oee.domain.rollup import timeline_from_rollups
from gongyun.apps.oee.domain.states import MachineState, StateMapping
from gongyun.apps.oee.errors import OeeInputInvalid
from gongyun.apps.oee.service import MachineIn
from gongyun.apps.oee.storeio import StoreReader
from gongyun.apps.oee.tables import calendars, machines, reasons, stops
from gongyun.errors import Conflict, NotFound
from gongyun.security.rbac import Perm

router = APIRouter()
Read = Annotated[AppCtx, Depends(needs(Perm.telemetry_read))]
Engineer = Annotated[AppCtx, Depends(needs(Perm.alarms_write))]
Operator = Annotated[AppCtx, Depends(needs(Perm.alarms_ack))]


@router.get("/machines")
async def list_machines(ctx: Read, line: str | None = None, retired: bool = False) -> list[dict[str, Any]]:
    """The tenant's machines in service (of one line); with ``retired`` the retired ones too."""
    rows = await service.machine_rows(ctx.session, ctx.tenant_id, line, retired=retired)
    return [service.plain(m) for m in rows]


@router.post("/machines", status_code=201)
async def add_machine(body: MachineIn, ctx: Engineer) -> dict[str, Any]:
    """Map a machine's tags (a mapping that leaves a state undefined is refused)."""
    values = {
        "id": service.new_id(),
        "tenant_id": ctx.tenant_id,
        **body.model_dump(),
        "created_at": datetime.now(UTC),
    }
    await ctx.session.execute(insert(machines).values(**values))
    worker.changed()
    await ctx.audit("machine.add", values["id"], name=body.name, line=body.line)
    return service.plain(values)


@router.put("/machines/{machine_id}")
async def edit_machine(machine_id: str, body: MachineIn, ctx: Engineer) -> dict[str, Any]:
    """Replace a machine's mapping, counters and times (checked as when adding it); its stops stay."""
    m = await service.machine_row(ctx.session, ctx.tenant_id, machine_id)
    if m["retired_at"] is not None:
        raise Conflict(f"machine {m['name']!r} is retired; it is kept as it was", reason="machine_retired")
    clash = await ctx.session.scalar(
        select(machines.c.id).where(
            machines.c.tenant_id == ctx.tenant_id, machines.c.name == body.name, machines.c.id != machine_id
        )
    )
    if clash is not None:
        raise Conflict(f"another machine is already named {body.name!r}")
    await ctx.session.execute(
        update(machines)
        .where(machines.c.id == machine_id, machines.c.tenant_id == ctx.tenant_id)
        .values(**body.model_dump())
    )
    worker.changed()
    await ctx.audit("machine.edit", machine_id, name=body.name, line=body.line)
    return service.plain(await service.machine_row(ctx.session, ctx.tenant_id, machine_id))


@router.delete("/machines/{machine_id}", status_code=204)
async def remove_machine(machine_id: str, ctx: Engineer) -> None:
    """Remove a machine that has no recorded stops (one with stops is refused: its history stays)."""
    m = await service.machine_row(ctx.session, ctx.tenant_id, machine_id)
    kept = await ctx.session.scalar(
        select(func.count())
        .select_from(stops)
        .where(stops.c.tenant_id == ctx.tenant_id, stops.c.machine_id == machine_id)
    )
    if kept:
        raise Conflict(
            f"machine {m['name']!r} has {kept} recorded stops; it is kept so that its history stays "
            "(retire it instead: POST .../retire)",
            reason="machine_has_stops",
            stops=int(kept),
        )
    await ctx.session.execute(
        delete(machines).where(machines.c.id == machine_id, machines.c.tenant_id == ctx.tenant_id)
    )
    worker.changed()
    await ctx.audit("machine.remove", machine_id, name=m["name"], line=m["line"])


@router.post("/machines/{machine_id}/retire")
async def retire_machine(machine_id: str, ctx: Engineer) -> dict[str, Any]:
    """Retire a machine: it leaves the live views, stop detection and the OEE of shifts begun after
    now, and keeps its stops, their reasons and its OEE before (a retired machine stays retired)."""
    m = await service.machine_row(ctx.session, ctx.tenant_id, machine_id)
    if m["retired_at"] is not None:
        raise Conflict(f"machine {m['name']!r} is already retired", reason="machine_retired")
    now = datetime.now(UTC)
    await ctx.session.execute(
        update(machines)
        .where(machines.c.id == machine_id, machines.c.tenant_id == ctx.tenant_id)
        .values(retired_at=now)
    )
    await ctx.session.execute(  # a stop still open ends with the machine's service
        update(stops)
        .where(stops.c.tenant_id == ctx.tenant_id, stops.c.machine_id == machine_id, stops.c.end.is_(None))
        .values(end=now)
    )
    worker.changed()
    await ctx.audit("machine.retire", machine_id, name=m["name"], line=m["line"])
    return service.plain(await service.machine_row(ctx.session, ctx.tenant_id, machine_id))


@router.get("/calendars/{line}")
async def get_calendar(line: str, ctx: Read) -> dict[str, Any]:
    """A line's shift calendar (``*``: the default of lines without one)."""
    row = (
        await ctx.session.execute(
            select(calendars.c.spec).where(calendars.c.tenant_id == ctx.tenant_id, calendars.c.line == line)
        )
    ).first()
    if row is None:
        raise NotFound(f"no calendar for line {line!r}")
    return dict(row[0])


@router.put("/calendars/{line}")
async def put_calendar(line: str, spec: Annotated[dict[str, Any], Body()], ctx: Engineer) -> dict[str, Any]:
    """Replace a line's shift calendar (overlapping shifts are refused)."""
    ShiftCalendar.parse(spec)
    await ctx.session.execute(
        delete(calendars).where(calendars.c.tenant_id == ctx.tenant_id, calendars.c.line == line)
    )
    await ctx.session.execute(
        insert(calendars).values(
            id=service.new_id(), tenant_id=ctx.tenant_id, line=line, spec=spec, updated_at=datetime.now(UTC)
        )
    )
    await ctx.audit("calendar.set", line)
    return spec


@router.get("/reasons")
async def get_reasons(ctx: Read) -> list[dict[str, Any]]:
    """The tenant's reason tree (codes with English and Chinese names)."""
    rows = (
        await ctx.session.execute(
            select(reasons).where(reasons.c.tenant_id == ctx.tenant_id).order_by(reasons.c.code)
        )
    ).mappings()
    return [{k: v for k, v in dict(r).items() if k not in ("id", "tenant_id")} for r in rows]


@router.put("/reasons")
async def put_reasons(
    nodes: Annotated[list[dict[str, Any]], Body(max_length=2000)], ctx: Engineer
) -> list[dict[str, Any]]:
    """Replace the tenant's reason tree (checked whole: codes, names in both languages, parents)."""
    tree = reason_tree(nodes)
    await ctx.session.execute(delete(reasons).where(reasons.c.tenant_id == ctx.tenant_id))
    if tree:
        await ctx.session.execute(
            insert(reasons),
            [
                {
                    "id": service.new_id(),
                    "tenant_id": ctx.tenant_id,
                    "code": r.code,
                    "parent": r.parent,
                    "name_en": r.name_en,
                    "name_zh": r.name_zh,
                    "loss": r.loss,
                }
                for r in tree.values()
            ],
        )
    await ctx.audit("reasons.set", "", count=len(tree))
    return await get_reasons(ctx)


@router.get("/lines/{line}/oee")
async def line_oee(
    line: str,
    ctx: Read,
    start: IsoTime | None = None,
    end: IsoTime | None = None,
    group: service.Group = "shift",
) -> dict[str, Any]:
    """A/P/Q/OEE and the ISO 22400-2 KPIs per machine and period, and the line at its bottleneck."""
    a, b = service.window(start, end)
    return await service.line_oee(ctx.session, ctx.services.store, ctx.tenant_id, line, a, b, group)


@router.get("/site/oee")
async def site_oee(
    ctx: Read, start: IsoTime | None = None, end: IsoTime | None = None, group: service.Group = "day"
) -> dict[str, Any]:
    """Every line per period (at its bottleneck) and the site: its lines weighted by planned busy time."""
    a, b = service.window(start, end)
    return await service.site_oee(ctx.session, ctx.services.store, ctx.tenant_id, a, b, group)


@router.get("/machines/{machine_id}/timeline")
async def timeline(
    machine_id: str, ctx: Read, start: IsoTime | None = None, end: IsoTime | None = None
) -> dict[str, Any]:
    """The machine's state timeline (gaps in the data shown as unknown)."""
    a, b = service.window(start, end)
    m = await service.machine_row(ctx.session, ctx.tenant_id, machine_id)
    t = await timeline_from_rollups(
        StoreReader(ctx.services.store, ctx.tenant_id), StateMapping.parse(m["mapping"]), a, b
    )
    f = t.filled(a, b)
    return {
        "machine": m["name"],
        "segments": [
            {"start": service.iso(s), "end": service.iso(e), "state": MachineState(int(st)).name}
            for s, e, st in zip(f.starts, f.ends, f.states, strict=True)
        ],
    }


@router.get("/stops")
async def list_stops(
    ctx: Read, uncoded: bool = False, machine_id: str | None = None, limit: int = Query(500, ge=1, le=5000)
) -> list[dict[str, Any]]:
    """Stops the worker detected, newest first (only those without a reason when ``uncoded``)."""
    q = select(stops).where(stops.c.tenant_id == ctx.tenant_id)
    if uncoded:
        q = q.where(stops.c.reason.is_(None))
    if machine_id:
        q = q.where(stops.c.machine_id == machine_id)
    rows = (await ctx.session.execute(q.order_by(stops.c.start.desc()).limit(limit))).mappings()
    return [_stop(r) for r in rows]


def _stop(r: Any) -> dict[str, Any]:
    d = service.plain(r)
    if r["end"] is not None:
        d["duration_s"] = (_aware(r["end"]) - _aware(r["start"])).total_seconds()
    return d


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class CodeIn(BaseModel):
    """The reason an operator gives a stop."""

    reason: str = Field(min_length=1, max_length=64)


@router.post("/stops/{stop_id}/code")
async def code_stop(stop_id: str, body: CodeIn, ctx: Operator) -> dict[str, Any]:
    """Give a stop its reason code (a code of this tenant's tree; any other is refused)."""
    known = await ctx.session.scalar(
        select(reasons.c.code).where(reasons.c.tenant_id == ctx.tenant_id, reasons.c.code == body.reason)
    )
    if known is None:
        raise OeeInputInvalid(
            f"reason code {body.reason!r} is not in this tenant's reason tree", reason="reason_code"
        )
    done = await ctx.session.execute(
        update(stops)
        .where(stops.c.id == stop_id, stops.c.tenant_id == ctx.tenant_id)
        .values(reason=body.reason, coded_by=ctx.actor, coded_at=datetime.now(UTC))
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no stop {stop_id}")
    await ctx.audit("stop.code", stop_id, reason=body.reason)
    row = (await ctx.session.execute(select(stops).where(stops.c.id == stop_id))).mappings().one()
    return _stop(row)


@router.get("/pareto")
async def loss_pareto(
    ctx: Read,
    by: str = Query("reason", pattern="^(reason|machine|shift|loss)$"),
    start: IsoTime | None = None,
    end: IsoTime | None = None,
    line: str | None = None,
    lang: str = "en",
) -> dict[str, Any]:
    """Stop time by reason (uncoded ones as ``uncoded``), machine, shift or six-big-loss category."""
    a, b = service.window(start, end, default=timedelta(days=7))
    ms = {m["id"]: m for m in await service.machine_rows(ctx.session, ctx.tenant_id, line, retired=True)}
    tree = {r["code"]: r for r in await get_reasons(ctx)}
    rows = (
        await ctx.session.execute(
            select(stops).where(
                stops.c.tenant_id == ctx.tenant_id,
                stops.c.start < datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=b),
            )
        )
    ).mappings()
    items = []
    now = datetime.now(UTC)
    cals: dict[str, Any] = {}
    for r in rows:
        if r["machine_id"] not in ms:
            continue
        s, e = service.us(_aware(r["start"])), service.us(_aware(r["end"]) if r["end"] else now)
        s, e = max(s, a), min(e, b)
        if e <= s:
            continue
        m = ms[r["machine_id"]]
        if by == "machine":
            key = m["name"]
        elif by == "shift":
            line_name = m["line"]
            if line_name not in cals:
                cals[line_name] = await service.calendar_for(ctx.session, ctx.tenant_id, line_name)
            insts = cals[line_name].instances(s, s + 1)
            key = insts[0].shift if insts else "off-shift"
        elif by == "loss":
            key = tree[r["reason"]]["loss"] if r["reason"] in tree else UNCODED
        else:
            code = r["reason"]
            key = code if code else UNCODED
        items.append((key, (e - s) / 1e6))
    out = pareto(items)
    if by == "reason":
        for x in out:
            if x["key"] in tree:
                x["name"] = tree[x["key"]]["name_zh" if lang == "zh-CN" else "name_en"]
    return {"by": by, "items": out}
