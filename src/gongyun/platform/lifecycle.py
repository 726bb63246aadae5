"""The composition root's lifecycle: prepare the database, then build and start a :class:`Platform`.

This is the one place that builds a running platform from the configuration and hands each room
its dependencies: the bus and database, the embedded MQTT broker, platform data (store, ingest,
rollups, alarm engine with its election: :mod:`gongyun.platform.data`) and the gateways' status
and Sparkplug B receivers (:mod:`gongyun.platform.gateways`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from gongyun.bus import Bus, open_bus
from gongyun.config import Settings
from gongyun.db import Database, make_engine, upgrade
from gongyun.errors import ConfigError
from gongyun.idres.cache import open_cache
from gongyun.idres.rescache import SharedRecords, resolution_cache_namespace
from gongyun.platform.container import Platform
from gongyun.platform.health import HealthMonitor
from gongyun.security.accounts import ensure_bootstrap

if TYPE_CHECKING:
    from gongyun.apps import AppHost

log = logging.getLogger("gongyun.platform")
_PREPARE_LOCK_KEY = 0x67_6F_6E_67  # "gong": one advisory lock id for migrations + bootstrap


@asynccontextmanager
async def _prepare_lock(settings: Settings) -> AsyncIterator[None]:
    """Serialise migrations and bootstrap across processes starting at the same time."""
    url = settings.effective_database_url
    if url.startswith("postgresql"):
        engine = make_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PREPARE_LOCK_KEY})
                try:
                    yield
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PREPARE_LOCK_KEY})
        finally:
            await engine.dispose()
        return
    lock_path = settings.ensure_data_dir() / ".prepare.lock"
    with open(lock_path, "a+") as fh:  # noqa: ASYNC230 (a tiny local lock file)
        await asyncio.to_thread(fcntl.flock, fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


async def prepare_database(settings: Settings) -> str | None:
    """Run migrations and bootstrap the first admin; return a generated password, if any."""
    settings.ensure_data_dir()
    async with _prepare_lock(settings):
        await upgrade(settings.effective_database_url)
        db = Database(settings.effective_database_url)
        try:
            async with db.session() as session:
                given = settings.admin_password.get_secret_value() if settings.admin_password else None
                return await ensure_bootstrap(session, settings.admin_username, given)
        finally:
            await db.dispose()


async def _watch_health(platform: Platform) -> None:
    """Probe the database, the bus (and the resolution cache) in the background for ``/readyz``."""
    health = HealthMonitor()
    health.add("database", platform.db.ping)
    health.add("bus", platform.bus.ping)
    records = platform.records
    if records is not None:
        health.add("cache", lambda: records.cache.get("health"), required=False)
    await health.start()
    platform.health = health
    platform.on_close("health", health.stop)


async def _database_fingerprint(db: Database) -> str | None:
    """Who the database is: the id of its first tenant (made at bootstrap, kept by backup and restore)."""
    from sqlalchemy import select

    from gongyun.security.models import Tenant

    async with db.session() as session:
        first = (
            await session.execute(select(Tenant.id).order_by(Tenant.created_at, Tenant.id).limit(1))
        ).scalar()
    return None if first is None else f"tenant:{first}"


async def _claim_deployment(settings: Settings, db: Database, bus: Bus) -> None:
    """Register the deployment id with this database on a shared bus; refuse one owned by another."""
    claim = getattr(bus, "claim_namespace", None)  # only a shared (NATS) bus has other deployments
    if claim is None:
        return
    fingerprint = await _database_fingerprint(db)
    if fingerprint is None:  # not bootstrapped yet: nothing to tell two databases apart by
        log.warning("database has no tenant yet; deployment_id %s not registered", settings.deployment_id)
        return
    other = await claim(fingerprint)
    if other is not None:
        raise ConfigError(
            f"deployment_id {settings.deployment_id!r} is already used on {settings.effective_bus_url} "
            f"by a deployment with another database ({other}); give this deployment its own deployment_id"
        )


async def start_platform(
    settings: Settings, *, services: bool = True, apps: AppHost | None = None
) -> Platform:
    """Open the database and the bus (migrations must have run), then start the platform services
    and the apps (``apps``: a given host, else the installed apps are discovered).

    ``services=False`` opens only the database, the bus and the embedded broker (a process that
    serves accounts and identifiers but no platform data), and starts no app workers.
    """
    from gongyun.apps import AppHost
    from gongyun.edge.broker import start_embedded_broker
    from gongyun.platform.auditpub import start_audit_publisher
    from gongyun.platform.catalog import start_catalog_watch
    from gongyun.platform.data import TelemetryService
    from gongyun.platform.gateways import start_gateway_watch

    db = Database(settings.effective_database_url)
    bus = open_bus(settings.effective_bus_url, namespace=settings.deployment_id)
    await bus.connect()
    platform = Platform(settings=settings, db=db, bus=bus)
    try:
        await _claim_deployment(settings, db, bus)
        if settings.redis_url:
            namespace = resolution_cache_namespace(settings.deployment_id)
            platform.records = SharedRecords(open_cache(settings.redis_url, namespace=namespace))
            platform.on_close("resolution cache", platform.records.close)
        platform.broker = await start_embedded_broker(settings)
        if platform.broker is not None:
            platform.on_close("mqtt broker", platform.broker.stop)  # first in, so stopped last
        if services:
            platform.telemetry = await TelemetryService.start(settings, db, bus)
            platform.on_close("telemetry", platform.telemetry.stop)
        platform.on_close("gateways", platform.gateways.stop)  # before ingest stops: they feed it
        if services:
            await start_gateway_watch(platform)  # remote gateways report device status over the bus
            await start_catalog_watch(platform)  # other processes' device and tag changes
            await start_audit_publisher(platform)  # signed checkpoints out of the database
            from gongyun.platform.ids import start_ids_centre

            await start_ids_centre(platform)  # sensors' events into the security events centre
        await _watch_health(platform)
        platform.apps = apps or AppHost.discover()
        platform.apps.config = settings
        if platform.telemetry is not None:
            from gongyun.platform.appservices import PlatformAppServices

            platform.apps.services = PlatformAppServices(platform, platform.telemetry)
        platform.on_close("apps", platform.apps.stop)  # last in, so stopped first
        await platform.apps.start(db, bus, workers=services)
    except BaseException:
        await platform.close()
        raise
    log.info("platform started", extra={"profile": settings.profile.value, "bus": settings.effective_bus_url})
    return platform
