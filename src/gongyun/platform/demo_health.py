"""``gongyun demo`` watches its pump with the maintenance app: enabled, placed, baseline learned.

The app is enabled in the demo tenant (once: an administrator who disables it later is obeyed),
the pump is placed where it sits in the seeded asset tree, and once the pump has run for five
minutes from its cold start a detector is learned from that stored telemetry, exactly as an
engineer would through ``POST /api/v1/apps/maintenance/detectors``. From then on the app's worker
scores the pump live: inject bearing wear (``POST /api/v1/demo/faults``) and its score, health,
RUL, likely fault, alarm and work orders follow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gongyun.apps import AppStatus, WorkerContext
from gongyun.apps.models import AppInstallation, installation
from gongyun.errors import GongyunError
from gongyun.platform.container import Platform
from gongyun.security.audit import record as record_audit
from gongyun.security.tenancy import scope_session

log = logging.getLogger("gongyun.platform.demo")
APP = "maintenance"
ACTOR = "gongyun demo"


@dataclass(frozen=True)
class PumpWatch:
    """What the demo asks of the maintenance app for its pump."""

    equipment: str = "pump-station"
    path: str = "Virtual factory/Utilities/Pump station"
    signals: tuple[str, ...] = ("flow", "pressure", "current", "vibration", "bearing_temp")
    # From the pump's cold start, like the labelled runs the diagnosis and RUL models were trained on
    # (300 s healthy from a cold start): their features are relative to such a baseline.
    warm_up_s: float = 0.0
    baseline_s: float = 300.0
    retry_s: float = 30.0

    @property
    def tags(self) -> list[str]:
        """The detector's tags (the first one, polled without a deadband, sets the row times)."""
        return [f"{self.equipment}/{s}" for s in self.signals]


async def _enable(platform: Platform, tenant_id: str, version: str, settings: dict[str, object]) -> None:
    async with platform.db.session() as session:
        scope_session(session.sync_session, tenant_id)
        if await installation(session, APP) is not None:
            return
        session.add(
            AppInstallation(
                tenant_id=tenant_id,
                app=APP,
                version=version,
                enabled=True,
                settings=settings,
                updated_by=ACTOR,
            )
        )
        await record_audit(session, tenant_id, ACTOR, "app.enable", APP, version=version)
        await session.commit()


async def _watch(ctx: WorkerContext, tenant_id: str, watch: PumpWatch) -> None:
    try:
        await _learn(ctx, tenant_id, watch)
    except GongyunError as exc:  # e.g. an administrator disabled the app meanwhile
        log.warning("maintenance: the demo's pump is not watched: %s", exc.message)


async def _learn(ctx: WorkerContext, tenant_id: str, watch: PumpWatch) -> None:
    from gongyun.apps.maintenance import service, store

    async with ctx.acting_in(tenant_id) as app:
        active = await store.active_models(app.session, tenant_id, "anomaly")
        if any(m["equipment"] == watch.equipment for m in active):
            return  # a restart of the demo: the pump is watched already
        await store.upsert_equipment(app.session, tenant_id, watch.equipment, path=watch.path)
    first = watch.tags[0]
    while not await ctx.services.latest(tenant_id, [first]):  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(1.0)
    start = datetime.now(UTC) + timedelta(seconds=watch.warm_up_s)
    await asyncio.sleep(watch.warm_up_s + watch.baseline_s)
    while True:
        try:
            async with ctx.acting_in(tenant_id) as app:
                m = await service.learn_detector(app, watch.equipment, watch.tags, start, datetime.now(UTC))
            log.info("maintenance: the pump's detector is learned (model %s)", m["id"])
            return
        except GongyunError as exc:  # too few points yet (a slow start), or the app was disabled
            log.warning("maintenance: the pump's baseline is not ready (%s); retrying", exc.message)
        await asyncio.sleep(watch.retry_s)


async def watch_pump(platform: Platform, tenant_id: str, watch: PumpWatch | None = None) -> None:
    """Enable the maintenance app in the demo tenant and have it learn the pump's baseline."""
    host = platform.apps
    entry = host.get(APP) if host is not None else None
    if host is None or entry is None or entry.manifest is None or entry.status is AppStatus.failed:
        log.warning("the maintenance app is not available: the demo's pump is not watched")
        return
    manifest = entry.manifest
    await _enable(platform, tenant_id, manifest.version, manifest.default_settings())
    ctx = WorkerContext(manifest, platform.db, platform.bus, log, host.services)
    task = asyncio.create_task(_watch(ctx, tenant_id, watch or PumpWatch()), name="demo:maintenance")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    platform.on_close("demo-maintenance", stop)
