"""The process's shared services: settings, metadata database, bus."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gongyun.bus import Bus, open_bus
from gongyun.config import Settings
from gongyun.db import Database, upgrade
from gongyun.db.base import utcnow
from gongyun.security.accounts import ensure_bootstrap

log = logging.getLogger("gongyun.runtime")


@dataclass
class Runtime:
    """What every room of a running Gongyun process shares."""

    settings: Settings
    db: Database
    bus: Bus
    started_at: Any = field(default_factory=utcnow)
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        """Close the bus and the database pool."""
        await self.bus.close()
        await self.db.dispose()


async def prepare_database(settings: Settings) -> str | None:
    """Run migrations and bootstrap the first admin; return a generated password, if any."""
    settings.ensure_data_dir()
    await upgrade(settings.effective_database_url)
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            given = settings.admin_password.get_secret_value() if settings.admin_password else None
            return await ensure_bootstrap(session, settings.admin_username, given)
    finally:
        await db.dispose()


async def start_runtime(settings: Settings) -> Runtime:
    """Open the database and the bus (migrations must have run)."""
    db = Database(settings.effective_database_url)
    bus = open_bus(settings.effective_bus_url)
    await bus.connect()
    log.info("runtime started", extra={"profile": settings.profile.value, "bus": settings.effective_bus_url})
    return Runtime(settings=settings, db=db, bus=bus)
