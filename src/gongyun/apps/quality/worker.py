"""The quality worker: evaluates run rules as points arrive and raises alarms on violations.

It runs once per deployment (it waits for the alarm leadership). For every stored batch that
touches a tag a chart watches, the chart is evaluated against its frozen limits from the UTC
midnight of the day the batch's earliest point belongs to (today's at the latest, yesterday's
during the first hour of a day, never more than two days back); a violation in one of the
newest subgroups is recorded once and sets the chart's violation tag ``quality/<chart>`` to 1,
which an alarm rule the app owns watches (ISA-18.2 lifecycle, acknowledged from the chart); the
next subgroup in control sets it back to 0.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from gongyun.apps import WorkerContext
from gongyun.apps.quality import service
from gongyun.apps.quality.tables import charts

_STALE = {"now": False}


def changed() -> None:
    """Definitions changed in this process: the worker re-reads them before the next batch
    (other processes' changes are seen within REFRESH_S)."""
    _STALE["now"] = True


REFRESH_S = 1.0
RECENT = 3  # violations are taken from the newest few subgroups only
# the window reaches back to yesterday's midnight for the first hour of a day, so the newest
# subgroups keep the history their run rules read across midnight
HISTORY = timedelta(hours=1)
MAX_LOOKBACK = timedelta(days=2)  # a backlog older than this is stored, not judged live


def window_start(now: datetime, earliest: datetime) -> datetime:
    """Where a live evaluation's window starts: the UTC midnight of the day of the batch's
    earliest point (late or forwarded data is judged in its own day) or of ``now - HISTORY``,
    whichever is earlier, but not more than ``MAX_LOOKBACK`` back."""
    anchor = max(now - MAX_LOOKBACK, min(now - HISTORY, earliest))
    return anchor.replace(hour=0, minute=0, second=0, microsecond=0)


def alarm_tag(chart_id: str) -> tuple[str, str]:
    """The device and tag a chart's violations are written to."""
    return "quality", f"c{chart_id[:12]}"


class _Charts:
    """The tag charts of each enabled tenant, re-read every few seconds."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.at = 0.0
        self.by_tenant: dict[str, dict[str, list[dict[str, Any]]]] = {}

    async def get(self, tenant: str) -> dict[str, list[dict[str, Any]]]:
        if _STALE["now"] or time.monotonic() - self.at > REFRESH_S:
            _STALE["now"] = False
            self.by_tenant = {}
            for t in await self.ctx.tenants():
                async with self.ctx.acting_in(t) as app:
                    rows = (
                        await app.session.execute(
                            select(charts).where(charts.c.tenant_id == t, charts.c.source == "tag")
                        )
                    ).mappings()
                    by_tag: dict[str, list[dict[str, Any]]] = {}
                    for r in rows:
                        by_tag.setdefault(str(r["tag"]), []).append(dict(r))
                    self.by_tenant[t] = by_tag
            self.at = time.monotonic()
        return self.by_tenant.get(tenant, {})


async def _ensure_alarm(ctx: WorkerContext, tenant: str, chart: dict[str, Any]) -> str:
    device, tag = alarm_tag(chart["id"])
    ref = f"{device}/{tag}"
    if chart.get("alarm_tag") == ref:
        return ref
    await ctx.services.ensure_device(tenant, device)
    await ctx.services.ensure_tag(tenant, device, tag, description=f"run-rule violation on {chart['name']}")
    await ctx.services.ensure_rule(
        tenant,
        {
            "name": f"SPC {chart['name']}",
            "kind": "threshold",
            "tag": ref,
            "direction": "high",
            "limit": 0.5,
            "priority": "high",
            "message": f"run rule violated on control chart {chart['name']}",
        },
    )
    async with ctx.acting_in(tenant) as app:
        await app.session.execute(update(charts).where(charts.c.id == chart["id"]).values(alarm_tag=ref))
    chart["alarm_tag"] = ref
    return ref


async def check_chart(
    ctx: WorkerContext, tenant: str, chart: dict[str, Any], state: dict[str, float], earliest: datetime
) -> int:
    """Evaluate one chart now (after a batch whose earliest point is at ``earliest``); record new
    violations and set its alarm tag. Returns new violations."""
    now = datetime.now(UTC)
    start = window_start(now, earliest)
    async with ctx.acting_in(tenant) as app:
        lim = await service.current_limits(app.session, tenant, chart["id"])
        if lim is None:
            return 0  # phase I not done: nothing to judge against yet
        res = await service.evaluate_chart(
            app.session, ctx.services, tenant, chart["id"], start, now + timedelta(seconds=1)
        )
        if res["empty"]:
            return 0
        n = len(res["primary"]["points"])
        new = 0
        for mark in res["violations"]:
            if mark["index"] >= n - RECENT:
                ts = service.us(datetime.fromisoformat(res["times"][mark["index"]]))
                value = res["primary"]["points"][mark["index"]] or 0.0
                if await service.record_violation(
                    app.session, tenant, chart["id"], res["times"][mark["index"]], ts, mark["rules"], value
                ):
                    new += 1
        last_bad = any(m["index"] == n - 1 for m in res["violations"])
    ref = await _ensure_alarm(ctx, tenant, chart)
    level = 1.0 if new or last_bad else 0.0
    if state.get(chart["id"]) != level:
        await ctx.services.write(tenant, [(ref, now, level)])
        state[chart["id"]] = level
    return new


async def evaluate_live(ctx: WorkerContext) -> None:
    """Evaluate tag charts as their points are stored (once per deployment)."""
    await ctx.services.wait_leader()
    known = _Charts(ctx)
    state: dict[str, float] = {}
    async for tenant, points in ctx.services.listen():
        try:
            by_tag = await known.get(tenant)
            earliest: dict[str, int] = {}
            for p in points:
                if p.tag in by_tag and p.ts < earliest.get(p.tag, p.ts + 1):
                    earliest[p.tag] = p.ts
            for tag, first_us in earliest.items():
                first = datetime.fromtimestamp(first_us / 1_000_000, UTC)
                for chart in by_tag[tag]:
                    await check_chart(ctx, tenant, chart, state, first)
        except Exception:
            ctx.log.exception("quality: evaluating charts of tenant %s failed", tenant)
