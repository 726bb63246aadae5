"""The quality app's API, mounted under ``/api/v1/apps/quality/``.

Reading needs ``telemetry:read``; defining charts and freezing limits ``alarms:write`` (engineers);
recording inspections ``alarms:ack`` (operators act on the line as they acknowledge alarms).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update

from gongyun.apps import AppCtx, IsoTime, needs
from gongyun.apps.quality import service, worker
from gongyun.apps.quality.errors import SpcInputInvalid
from gongyun.apps.quality.service import ChartIn, InspectionIn, SpecLimits
from gongyun.apps.quality.spc import ChartKind, capability
from gongyun.apps.quality.spc.subgroups import Subgroups
from gongyun.apps.quality.tables import charts, inspections, limits, violations
from gongyun.errors import NotFound
from gongyun.security.rbac import Perm

router = APIRouter()
Read = Annotated[AppCtx, Depends(needs(Perm.telemetry_read))]
Engineer = Annotated[AppCtx, Depends(needs(Perm.alarms_write))]
Operator = Annotated[AppCtx, Depends(needs(Perm.alarms_ack))]


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start.tzinfo is None or end.tzinfo is None:
        raise SpcInputInvalid("start and end need a time zone", reason="window")
    if not start < end:
        raise SpcInputInvalid("start must be before end", reason="window")
    return start, end


@router.get("/charts")
async def list_charts(ctx: Read) -> list[dict[str, Any]]:
    """The tenant's control charts."""
    rows = (
        await ctx.session.execute(
            select(charts).where(charts.c.tenant_id == ctx.tenant_id).order_by(charts.c.name)
        )
    ).mappings()
    return [service.chart_json(r) for r in rows]


@router.post("/charts", status_code=201)
async def create_chart(body: ChartIn, ctx: Engineer) -> dict[str, Any]:
    """Define a control chart (the worker evaluates tag charts as points arrive)."""
    chart_id = service.new_id()
    values = {
        "id": chart_id,
        "tenant_id": ctx.tenant_id,
        "name": body.name,
        "kind": body.kind.value,
        "source": body.source,
        "tag": body.tag,
        "characteristic": body.characteristic,
        "subgroup": body.subgroup.model_dump(),
        "rules": body.rules,
        "params": body.params,
        "spec": body.spec.model_dump(),
        "alarm_tag": None,
        "created_at": datetime.now(UTC),
    }
    await ctx.session.execute(insert(charts).values(**values))
    worker.changed()
    await ctx.audit("chart.create", chart_id, name=body.name, kind=body.kind.value)
    return service.chart_json(values)


@router.get("/charts/{chart_id}")
async def get_chart(chart_id: str, ctx: Read) -> dict[str, Any]:
    """One chart."""
    return service.chart_json(await service.chart_row(ctx.session, ctx.tenant_id, chart_id))


@router.get("/charts/{chart_id}/data")
async def chart_data(
    chart_id: str, ctx: Read, start: IsoTime | None = None, end: IsoTime | None = None
) -> dict[str, Any]:
    """The chart over a window (default the last 24 h): points, limits, σ for the zones, violations."""
    a, b = _window(start, end)
    return await service.evaluate_chart(ctx.session, ctx.services, ctx.tenant_id, chart_id, a, b)


class LimitsIn(BaseModel):
    """Phase I: the baseline window, points to leave out, and why."""

    start: IsoTime
    end: IsoTime
    exclude: list[int] = Field(default_factory=list)
    drop_out_of_control: bool = False
    note: str = Field(default="", max_length=500)


@router.post("/charts/{chart_id}/limits", status_code=201)
async def freeze(chart_id: str, body: LimitsIn, ctx: Engineer) -> dict[str, Any]:
    """Compute limits from the baseline and freeze them as the next version (audited)."""
    a, b = _window(body.start, body.end)
    lim = await service.freeze_limits(
        ctx.session,
        ctx.services,
        ctx.tenant_id,
        chart_id,
        a,
        b,
        body.exclude,
        body.drop_out_of_control,
        ctx.actor,
        body.note,
    )
    await ctx.audit(
        "limits.freeze",
        chart_id,
        version=lim.version,
        excluded=list(lim.excluded),
        note=body.note,
        baseline=[a.isoformat(), b.isoformat()],
    )
    return lim.to_dict()


@router.get("/charts/{chart_id}/limits")
async def limit_versions(chart_id: str, ctx: Read) -> list[dict[str, Any]]:
    """Every frozen version of the chart's limits, newest first."""
    await service.chart_row(ctx.session, ctx.tenant_id, chart_id)
    rows = (
        await ctx.session.execute(
            select(limits)
            .where(limits.c.chart_id == chart_id, limits.c.tenant_id == ctx.tenant_id)
            .order_by(limits.c.version.desc())
        )
    ).mappings()
    return [service.chart_json(r) for r in rows]


@router.get("/charts/{chart_id}/capability")
async def chart_capability(
    chart_id: str,
    ctx: Read,
    start: IsoTime | None = None,
    end: IsoTime | None = None,
    lsl: float | None = None,
    usl: float | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """Cp, Cpk, Pp, Ppk, Cpm with intervals, ppm out of spec, histogram and normality check."""
    a, b = _window(start, end)
    chart = await service.chart_row(ctx.session, ctx.tenant_id, chart_id)
    if ChartKind(chart["kind"]).attribute:
        raise SpcInputInvalid("capability needs measurements, not counts", reason="data_kind")
    spec = SpecLimits.model_validate(
        {
            **chart["spec"],
            **{k: v for k, v in {"lsl": lsl, "usl": usl, "target": target}.items() if v is not None},
        }
    )
    data, _, _ = await service.chart_data(
        ctx.session, ctx.services, ctx.tenant_id, chart, a, b, rollups=False
    )
    assert isinstance(data, Subgroups)
    values = data.values[~np.isnan(data.values)] if len(data) else np.empty(0)
    lim = await service.current_limits(ctx.session, ctx.tenant_id, chart_id)
    sw = lim.sigma if lim is not None and lim.sigma > 0 else None
    if values.size == 0:
        return {"empty": True, "message": "no data in the window"}
    return {
        "empty": False,
        **capability(values, lsl=spec.lsl, usl=spec.usl, target=spec.target, sigma_within=sw).as_dict(),
    }


@router.post("/inspections", status_code=201)
async def record(
    body: Annotated[list[InspectionIn], Body(min_length=1, max_length=10_000)], ctx: Operator
) -> dict[str, int]:
    """Record measurements or defect counts, each attached to its lot."""
    return {"recorded": await _store(ctx, body)}


CSV_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.post("/inspections/csv", status_code=201, openapi_extra=CSV_BODY)
async def upload(request: Request, ctx: Operator) -> dict[str, int]:
    """Record inspections from a CSV body (text/csv): lot, characteristic, value | defects, sample_size."""
    raw = await request.body()
    if len(raw) > 5_000_000:
        raise SpcInputInvalid("the CSV is larger than 5 MB", reason="csv")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpcInputInvalid(f"the CSV is not UTF-8 text (byte {exc.start})", reason="csv") from None
    return {"recorded": await _store(ctx, service.parse_csv(text))}


async def _store(ctx: AppCtx, items: list[InspectionIn]) -> int:
    now = datetime.now(UTC)
    await ctx.session.execute(
        insert(inspections),
        [
            {
                "id": service.new_id(),
                "tenant_id": ctx.tenant_id,
                "lot": i.lot,
                "characteristic": i.characteristic,
                "value": i.value,
                "sample_size": i.sample_size,
                "defects": i.defects,
                "operator": ctx.actor,
                # rows of one upload keep their order: a microsecond apart
                "recorded_at": i.recorded_at or now + timedelta(microseconds=n),
            }
            for n, i in enumerate(items)
        ],
    )
    await ctx.audit("inspection.record", items[0].lot, count=len(items))
    return len(items)


@router.get("/inspections")
async def list_inspections(
    ctx: Read, lot: str | None = None, limit: int = Query(500, ge=1, le=5000)
) -> list[dict[str, Any]]:
    """Inspections, newest first (of one lot when given)."""
    q = select(inspections).where(inspections.c.tenant_id == ctx.tenant_id)
    if lot is not None:
        q = q.where(inspections.c.lot == lot)
    rows = (await ctx.session.execute(q.order_by(inspections.c.recorded_at.desc()).limit(limit))).mappings()
    return [service.chart_json(r) for r in rows]


@router.get("/violations")
async def list_violations(
    ctx: Read, state: str | None = "open", chart_id: str | None = None
) -> list[dict[str, Any]]:
    """Run-rule violations (open ones by default), newest first."""
    q = select(violations).where(violations.c.tenant_id == ctx.tenant_id)
    if state:
        q = q.where(violations.c.state == state)
    if chart_id:
        q = q.where(violations.c.chart_id == chart_id)
    rows = (await ctx.session.execute(q.order_by(violations.c.ts.desc()).limit(1000))).mappings()
    return [service.chart_json(r) for r in rows]


@router.post("/violations/{violation_id}/ack")
async def ack_violation(violation_id: str, ctx: Operator) -> dict[str, str]:
    """Mark a violation acknowledged (the chart's alarm is acknowledged through the alarms API)."""
    done = await ctx.session.execute(
        update(violations)
        .where(violations.c.id == violation_id, violations.c.tenant_id == ctx.tenant_id)
        .values(state="acknowledged")
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no violation {violation_id}")
    await ctx.audit("violation.ack", violation_id)
    return {"id": violation_id, "state": "acknowledged"}
