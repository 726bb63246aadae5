"""The live rescheduling worker: a watched machine going down proposes a repair.

A machine with a ``watch_tag`` is down while the tag reads below its ``down_below`` (0.5 for a
running flag; e.g. 100 rpm for a spindle speed). On the transition to down (and only on the leader, once per
deployment) the worker records ``down_since`` and, when the tenant's settings allow it, proposes
a repair of the published schedule; the planner accepts or rejects it. Back up clears ``down_since``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from gongyun.apps import WorkerContext
from gongyun.apps.scheduling import store
from gongyun.apps.scheduling.settings import Settings
from gongyun.apps.scheduling.tables import machines
from gongyun.errors import GongyunError

log = logging.getLogger("gongyun.apps.scheduling")
REFRESH_S = 3.0


async def watch_machines(ctx: WorkerContext) -> None:
    """Follow the watched tags of every tenant's machines; propose repairs on breakdowns."""
    await ctx.services.wait_leader()
    watched: dict[tuple[str, str], tuple[str, float]] = {}  # (tenant, tag) -> (machine, down below)
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
            down = p.value < below
            if state.get((tenant_id, machine)) == down:
                continue
            state[(tenant_id, machine)] = down
            try:
                await _changed(ctx, tenant_id, machine, down)
            except GongyunError as exc:  # no published schedule, nothing to repair: note it and go on
                log.info("scheduling: %s in %s: %s", machine, tenant_id, exc.message)


async def _watched(ctx: WorkerContext) -> dict[tuple[str, str], tuple[str, float]]:
    out: dict[tuple[str, str], tuple[str, float]] = {}
    for tenant_id in await ctx.tenants():
        async with ctx.acting_in(tenant_id) as app:
            q = select(machines.c.id, machines.c.watch_tag, machines.c.down_below).where(
                machines.c.tenant_id == tenant_id, machines.c.watch_tag.is_not(None)
            )
            for mid, tag, below in (await app.session.execute(q)).all():
                out[(tenant_id, tag)] = (mid, float(below))
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
