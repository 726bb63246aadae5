"""The process's shared services: settings, metadata database, bus."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from gongyun.bus import Bus, open_bus
from gongyun.config import Settings
from gongyun.db import Database, make_engine, upgrade
from gongyun.db.base import utcnow
from gongyun.security.accounts import ensure_bootstrap

if TYPE_CHECKING:
    from gongyun.apps import AppHost

log = logging.getLogger("gongyun.runtime")
MQTT_BROKER_KEY = "mqtt_broker"  # the embedded MQTT broker, when this process runs one
_PREPARE_LOCK_KEY = 0x67_6F_6E_67  # "gong": one advisory lock id for migrations + bootstrap


@dataclass
class Runtime:
    """What every room of a running Gongyun process shares."""

    settings: Settings
    db: Database
    bus: Bus
    started_at: Any = field(default_factory=utcnow)
    extras: dict[str, Any] = field(default_factory=dict)
    apps: AppHost | None = None

    async def close(self) -> None:
        """Stop the apps and the rooms' services, then close the bus and the database pool."""
        if self.apps is not None:
            await self.apps.stop()
        for name in reversed(list(self.extras)):
            service = self.extras[name]
            stop = getattr(service, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    log.exception("stopping %s failed", name)
        self.extras.clear()
        await self.bus.close()
        await self.db.dispose()


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


async def start_runtime(settings: Settings, *, platform: bool = True, apps: AppHost | None = None) -> Runtime:
    """Open the database and the bus (migrations must have run), then the platform services and apps."""
    from gongyun.apps import AppHost
    from gongyun.edge.broker import start_embedded_broker
    from gongyun.edge.registry import watch_remote_gateways
    from gongyun.telemetry.service import TelemetryService

    db = Database(settings.effective_database_url)
    bus = open_bus(settings.effective_bus_url)
    await bus.connect()
    runtime = Runtime(settings=settings, db=db, bus=bus)
    try:
        broker = await start_embedded_broker(settings)
        if broker is not None:
            runtime.extras[MQTT_BROKER_KEY] = broker  # first in, so stopped last
        if platform:
            await TelemetryService.start(runtime)
            await watch_remote_gateways(runtime)  # remote gateways report device status over the bus
        runtime.apps = apps or AppHost.discover()
        await runtime.apps.start(db, bus, workers=platform)
    except BaseException:
        await runtime.close()
        raise
    log.info("runtime started", extra={"profile": settings.profile.value, "bus": settings.effective_bus_url})
    return runtime
