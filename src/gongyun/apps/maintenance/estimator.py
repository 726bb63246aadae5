"""Live RUL of equipment whose model was trained from stored telemetry (once per deployment).

Every minute, for each tenant's active RUL model of an equipment (``POST /rul/telemetry-models``),
the estimate since the equipment's last recorded failure is kept on the equipment, written as the
tags ``<equipment>-maintenance/rul``, ``rul_low`` and ``rul_high`` (so it trends and exports like any
tag), and a work order (reason ``rul``) is opened when it falls under ``rul_lead_time``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from gongyun.apps import WorkerContext
from gongyun.apps.maintenance import service, store
from gongyun.apps.maintenance.settings import Settings
from gongyun.apps.maintenance.worker import output_device
from gongyun.errors import GongyunError

EVERY_S = 60.0


async def _prepare(ctx: WorkerContext, tenant: str, equipment: str) -> str:
    dev = output_device(equipment)
    await ctx.services.ensure_device(tenant, dev)
    await ctx.services.ensure_tag(tenant, dev, "rul", unit="s", description="remaining useful life")
    for tag, what in (("rul_low", "10 %"), ("rul_high", "90 %")):
        await ctx.services.ensure_tag(tenant, dev, tag, unit="s", description=f"RUL {what} quantile")
    return dev


async def estimate_tenant(
    ctx: WorkerContext, tenant: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Estimate, store and act on the RUL of each equipment with an active telemetry model; the estimates."""
    now = now or datetime.now(UTC)
    async with ctx.acting_in(tenant) as app:
        active = await store.active_models(app.session, tenant, "rul")
    names = [m["equipment"] for m in active if m["equipment"] and "telemetry" in (m["meta"] or {})]
    out = []
    for name in names:
        try:
            async with ctx.acting_in(tenant) as app:
                est = await service.predict_rul_from_telemetry(app, name, now)
                settings = app.settings_as(Settings)
                if est["rul"] < settings.rul_lead_time and not await store.has_open_order(
                    app.session, tenant, name, "rul"
                ):
                    await store.open_order(
                        app.session,
                        tenant,
                        equipment_name=name,
                        title=f"{name}: about {est['rul']:.0f} s to failure",
                        reason="rul",
                        evidence={
                            "window": {"start": est["since"], "end": est["at"]},
                            "rul": {"rul": est["rul"], "low": est["low"], "high": est["high"]},
                            "model": est["model"]["id"],
                        },
                        who=app.actor,
                    )
                    await app.audit("work_order.open", name, reason="rul")
        except GongyunError as exc:  # no telemetry since the failure yet, ...: the others go on
            ctx.log.warning("maintenance RUL of %s in tenant %s: %s", name, tenant, exc.message)
            continue
        dev = await _prepare(ctx, tenant, name)
        await ctx.services.write(
            tenant,
            [
                (f"{dev}/rul", now, est["rul"]),
                (f"{dev}/rul_low", now, est["low"]),
                (f"{dev}/rul_high", now, est["high"]),
            ],
        )
        out.append({"equipment": name, **est})
    return out


async def estimator(ctx: WorkerContext) -> None:
    """The worker: wait for the leadership, then estimate every minute in every enabled tenant."""
    await ctx.services.wait_leader()
    while True:
        for tenant in await ctx.tenants():
            try:
                await estimate_tenant(ctx, tenant)
            except GongyunError as exc:
                ctx.log.warning("maintenance RUL estimates in tenant %s: %s", tenant, exc.message)
        await asyncio.sleep(EVERY_S)
