"""The OEE worker: detects stops as state points arrive, for operators to code (once per deployment).

A stop opens at the first sample of a mapped machine that is not running and closes at the next
running sample; it is kept in ``oee_stops`` with the state it started in and, once an operator
codes it, its reason. The OEE figures themselves are computed from the store on request.

Every change of a machine's state is also written as a tag, ``oee-<machine id>/state`` (the
``MachineState`` code: 1 running, 2 idle, 3 planned down, 4 unplanned down, 5 setup), so other apps
(the scheduler repairs its plan when a machine goes down), alarm rules and trends can follow it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update

from gongyun.apps import WorkerContext
from gongyun.apps.oee.domain.states import MachineState, StateMapping
from gongyun.apps.oee.service import new_id
from gongyun.apps.oee.tables import machines, stops
from gongyun.telemetry.store.base import Point

_STALE = {"now": False}


def changed() -> None:
    """Definitions changed in this process: the worker re-reads them before the next batch
    (other processes' changes are seen within REFRESH_S)."""
    _STALE["now"] = True


REFRESH_S = 1.0
STATE_TAG = "state"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Machines:
    """Each enabled tenant's machines by the tag their state is read from (re-read every second)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.at = 0.0
        self.by_tenant: dict[str, dict[str, list[dict[str, Any]]]] = {}

    async def get(self, tenant: str) -> dict[str, list[dict[str, Any]]]:
        if _STALE["now"] or time.monotonic() - self.at > REFRESH_S:
            _STALE["now"] = False
            fresh: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for t in await self.ctx.tenants():
                async with self.ctx.acting_in(t) as app:
                    rows = (
                        await app.session.execute(
                            select(machines).where(machines.c.tenant_id == t, machines.c.retired_at.is_(None))
                        )
                    ).mappings()
                    by_tag: dict[str, list[dict[str, Any]]] = {}
                    for r in rows:
                        m = dict(r)
                        m["parsed"] = StateMapping.parse(m["mapping"])
                        by_tag.setdefault(m["parsed"].tag, []).append(m)
                    fresh[t] = by_tag
            self.by_tenant, self.at = fresh, time.monotonic()
        return self.by_tenant.get(tenant, {})


def state_device(machine_id: str) -> str:
    """The device that carries an OEE machine's state tag."""
    return f"oee-{machine_id}"


class StopTracker:
    """What the worker remembers of each machine: its open stop, its counter's last value and the
    state it last published."""

    def __init__(self) -> None:
        self.open: dict[str, str | None] = {}
        self.last_value: dict[str, float] = {}
        self.state: dict[str, int] = {}
        self.published: list[tuple[str, datetime, float]] = []
        """State changes not yet written (``device/tag``, time, code); the worker drains it."""

    async def feed(self, session: Any, tenant: str, m: dict[str, Any], points: list[Point]) -> int:
        """Open and close stops for these samples of one machine; returns how many changed."""
        mapping: StateMapping = m["parsed"]
        mid = m["id"]
        if mid not in self.open:
            row = (
                await session.execute(
                    select(stops.c.id)
                    .where(stops.c.machine_id == mid, stops.c.end.is_(None))
                    .order_by(stops.c.start.desc())
                )
            ).first()
            self.open[mid] = row[0] if row else None
        vals = np.array([p.value for p in points])
        if mapping.uses_increments:
            prev = self.last_value.get(mid, vals[0])
            states = mapping.classify(np.diff(np.concatenate([[prev], vals])))
            self.last_value[mid] = float(vals[-1])
        else:
            states = mapping.classify(vals)
        changed = 0
        ref = f"{state_device(mid)}/{STATE_TAG}"
        for p, st in zip(points, states, strict=True):
            when = _EPOCH + timedelta(microseconds=p.ts)
            if int(st) != MachineState.unknown and self.state.get(mid) != int(st):
                self.state[mid] = int(st)
                self.published.append((ref, when, float(int(st))))
            running = int(st) == MachineState.running
            if not running and self.open[mid] is None and int(st) != MachineState.unknown:
                sid = new_id()
                await session.execute(
                    insert(stops).values(
                        id=sid,
                        tenant_id=tenant,
                        machine_id=mid,
                        start=when,
                        end=None,
                        state=MachineState(int(st)).name,
                    )
                )
                self.open[mid] = sid
                changed += 1
            elif running and self.open[mid] is not None:
                await session.execute(update(stops).where(stops.c.id == self.open[mid]).values(end=when))
                self.open[mid] = None
                changed += 1
        return changed


async def detect_stops(ctx: WorkerContext) -> None:
    """Track every mapped machine's stops as its state points are stored."""
    await ctx.services.wait_leader()
    known = _Machines(ctx)
    tracker = StopTracker()
    made: set[tuple[str, str]] = set()  # (tenant, device/tag) state tags known to exist
    async for tenant, points in ctx.services.listen():
        try:
            by_tag = await known.get(tenant)
            mine = sorted((p for p in points if p.tag in by_tag), key=lambda p: p.ts)
            if not mine:
                continue
            async with ctx.acting_in(tenant) as app:
                for tag in {p.tag for p in mine}:
                    for m in by_tag[tag]:
                        await tracker.feed(app.session, tenant, m, [p for p in mine if p.tag == tag])
        except Exception:
            ctx.log.exception("oee: tracking stops of tenant %s failed", tenant)
        out, tracker.published = tracker.published, []
        if out:
            try:
                await _publish_states(ctx, tenant, out, made)
            except Exception:
                ctx.log.exception("oee: publishing machine states of tenant %s failed", tenant)


async def _publish_states(
    ctx: WorkerContext, tenant: str, out: list[tuple[str, datetime, float]], made: set[tuple[str, str]]
) -> None:
    for ref in {r for r, _, _ in out}:
        if (tenant, ref) not in made:
            device = ref.split("/", 1)[0]
            await ctx.services.ensure_device(tenant, device)
            await ctx.services.ensure_tag(
                tenant,
                device,
                STATE_TAG,
                description="OEE machine state: 1 running, 2 idle, 3 planned down, 4 unplanned down, 5 setup",
            )
            made.add((tenant, ref))
    await ctx.services.write(tenant, out)
