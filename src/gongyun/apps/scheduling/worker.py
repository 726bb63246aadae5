"""The live rescheduling workers: a machine going down or an operation running late proposes a repair.

A machine with a ``watch_tag`` is down while the tag reads below its ``down_below`` (0.5 for a
running flag; e.g. 100 rpm for a spindle speed); a machine linked to an OEE machine
(``oee_machine``) is down while the OEE app's state tag for it (``oee-<id>/state``) says planned
or unplanned down. On the transition to down (and only on the leader, once per deployment) the
worker records ``down_since`` and, when the tenant's settings allow it, proposes a repair of the
published schedule; the planner accepts or rejects it. Back up clears ``down_since``.

With ``late_after_minutes`` set, a second worker looks every ``LATE_CHECK_S`` seconds for
operations of the published schedule not reported finished that long after their (expected) end
and proposes one repair for all of them, with new expected ends (see ``progress``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from gongyun.apps import WorkerContext
from gongyun.apps.scheduling import progress, store
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.tables import machines
from gongyun.errors import GongyunError

log = logging.getLogger("gongyun.apps.scheduling")
REFRESH_S = 3.0
LATE_CHECK_S = 30.0
OEE_DOWN = {3.0, 4.0}  # the OEE app's MachineState codes down_planned and down_unplanned
Watch = tuple[str, float | None]  # machine, down below (None: an OEE state tag)


def is_down(value: float, below: float | None) -> bool:
    """Whether a watched tag's value says its machine is down."""
    return value in OEE_DOWN if below is None else value < below


async def watch_machines(ctx: WorkerContext) -> None:
    """Follow the watched tags of every tenant's machines; propose repairs on breakdowns."""
    await ctx.services.wait_leader()
    watched: dict[tuple[str, str], Watch] = {}  # (tenant, tag) -> (machine, down below)
    state: dict[tuple[str, str], bool] = {}  # (tenant, machine) -> down
    loaded = 0.0
    async for tenant_id, points in ctx.services.listen():
        if time.monotonic() - loaded > REFRESH_S:
            watched = await _watched(ctx)
            loaded = time.monotonic()
        for p in points:
            found = watched.get((tenant_id, p.tag))
            if found is None:
                continue
            machine, below = found
            down = is_down(p.value, below)
            if state.get((tenant_id, machine)) == down:
                continue
            state[(tenant_id, machine)] = down
            try:
                await _changed(ctx, tenant_id, machine, down)
            except GongyunError as exc:  # no published schedule, nothing to repair: note it and go on
                log.info("scheduling: %s in %s: %s", machine, tenant_id, exc.message)


async def _watched(ctx: WorkerContext) -> dict[tuple[str, str], Watch]:
    out: dict[tuple[str, str], Watch] = {}
    for tenant_id in await ctx.tenants():
        async with ctx.acting_in(tenant_id) as app:
            q = select(
                machines.c.id, machines.c.watch_tag, machines.c.down_below, machines.c.oee_machine
            ).where(machines.c.tenant_id == tenant_id)
            for mid, tag, below, oee in (await app.session.execute(q)).all():
                if tag:
                    out[(tenant_id, tag)] = (mid, float(below))
                if oee:
                    out[(tenant_id, f"oee-{oee}/state")] = (mid, None)
    return out


async def _changed(ctx: WorkerContext, tenant_id: str, machine: str, down: bool) -> None:
    async with ctx.acting_in(tenant_id) as app:
        await app.session.execute(
            update(machines)
            .where(machines.c.tenant_id == tenant_id, machines.c.id == machine)
            .values(down_since=datetime.now(UTC) if down else None)
        )
        detail: dict[str, Any] = {"machine": machine}
        await app.audit("machine.down" if down else "machine.up", machine, **detail)
    if not down:
        return
    async with ctx.acting_in(tenant_id) as app:
        settings = app.settings_as(Settings)
        if not settings.auto_repair:
            return
        version = await store.run_repair(
            app.session, tenant_id, settings, machine, reason=f"{machine} stopped"
        )
        await app.audit("repair", str(version), machine=machine, automatic=True)
        log.info("scheduling: %s down in %s, repair proposed as version %d", machine, tenant_id, version)


async def watch_late(ctx: WorkerContext) -> None:
    """Every ``LATE_CHECK_S``: propose a repair for operations running late (tenants that ask for it)."""
    await ctx.services.wait_leader()
    while True:
        await asyncio.sleep(LATE_CHECK_S)
        for tenant_id in await ctx.tenants():
            try:
                await check_late(ctx, tenant_id)
            except GongyunError as exc:
                log.info("scheduling: late operations in %s: %s", tenant_id, exc.message)
            except Exception:
                log.exception("scheduling: checking late operations of %s failed", tenant_id)


async def check_late(ctx: WorkerContext, tenant_id: str, now: datetime | None = None) -> int | None:
    """Propose one repair for the tenant's late operations; the version proposed, if any."""
    async with ctx.acting_in(tenant_id) as app:
        settings = app.settings_as(Settings)
        if not settings.late_after_minutes or not settings.auto_repair:
            return None
        base = await store.published(app.session, tenant_id)
        if base is None:
            return None
        planned = progress.planned_ops(store.view(base))
        reported = await progress.reports(app.session, tenant_id)
        late = progress.late_operations(
            planned, reported, now or datetime.now(UTC), settings.late_after_minutes
        )
        if not late:
            return None
        await progress.mark_late(app.session, tenant_id, late, planned)
        names = ", ".join(sorted(late)[:5]) + (" ..." if len(late) > 5 else "")
        version = await store.run_repair(
            app.session, tenant_id, settings, None, reason=f"running late: {names}", late=late
        )
        await app.audit("repair", str(version), late=sorted(late), automatic=True)
        log.info(
            "scheduling: %d late operation(s) in %s, repair proposed as version %d",
            len(late),
            tenant_id,
            version,
        )
        return version
