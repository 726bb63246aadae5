"""The running platform of one process: every room's services, typed, built only by this package.

:class:`Platform` is the dependency container that the interfaces (API, console, CLI) are handed.
Rooms never look each other up through it: the composition root (:mod:`gongyun.platform.lifecycle`)
builds each service and passes it what it needs; the interfaces read the services from here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gongyun.bus import Bus
from gongyun.config import Settings
from gongyun.db import Database
from gongyun.db.base import utcnow
from gongyun.edge.registry import GatewayRegistry
from gongyun.errors import ServiceUnavailable
from gongyun.idres.objects import ObjectRegistrar, object_registrar
from gongyun.idres.rescache import SharedRecords
from gongyun.platform.data import TelemetryService
from gongyun.platform.health import HealthMonitor
from gongyun.telemetry.live import LiveHub
from gongyun.telemetry.store import TimeSeriesStore

if TYPE_CHECKING:  # imported on first use: the embedded broker pulls in amqtt
    from gongyun.apps import AppHost
    from gongyun.edge.broker import EmbeddedBroker

log = logging.getLogger("gongyun.platform")

Stop = Callable[[], Awaitable[None]]


class RunningDemo(Protocol):
    """The virtual factory of one tenant (:class:`gongyun.platform.demo.Demo`)."""

    tenant_id: str

    def inject(self, machine: str, fault: str, rate: float | None = None) -> None:
        """Start a fault in a simulated machine."""

    def machines(self) -> list[dict[str, Any]]:
        """Each simulated machine's state (the pump's with its true time to failure)."""


@dataclass
class Platform:
    """What every interface of a running Gongyun process is given."""

    settings: Settings
    db: Database
    bus: Bus
    started_at: datetime = field(default_factory=utcnow)
    objects: ObjectRegistrar = field(init=False)
    """Registers the identifiers of assets, devices and tags (handed to the asset CRUD)."""
    broker: EmbeddedBroker | None = None
    """The embedded MQTT broker, when this process runs one."""
    telemetry: TelemetryService | None = None
    """Store, ingest, rollups and the alarm host, when platform data runs in this process."""
    gateways: GatewayRegistry = field(default_factory=GatewayRegistry)
    """Gateways running here and remote ones reporting over the bus or Sparkplug B."""
    apps: AppHost | None = None
    """The installed apps: their catalogue, per-tenant state, routers and workers."""
    demo: RunningDemo | None = None
    """The virtual factory, when ``gongyun demo`` started it."""
    live: LiveHub | None = None
    """The live fan-out for SSE clients (made on first use: :func:`gongyun.platform.live.live_hub`)."""
    latest_reader: TimeSeriesStore | None = None
    """The shared time-series store opened for reading latest values without ``telemetry``."""
    latest_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    records: SharedRecords | None = None
    health: HealthMonitor | None = None
    """The dependencies' states, probed in the background (``/readyz`` answers from them)."""
    """The shared resolution cache of identifier records (``redis_url`` set), else None."""
    _stops: list[tuple[str, Stop]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.objects = object_registrar(self.settings, self.db)

    def on_close(self, name: str, stop: Stop) -> None:
        """Run ``stop`` when the platform closes (in reverse order of registration)."""
        self._stops.append((name, stop))

    def running_telemetry(self) -> TelemetryService:
        """The platform-data services (ServiceUnavailable when they do not run in this process)."""
        if self.telemetry is None:
            raise ServiceUnavailable("telemetry is not running in this process")
        return self.telemetry

    @property
    def mqtt_address(self) -> tuple[str, int] | None:
        """Where this process's embedded MQTT broker listens (None: it runs none)."""
        return self.broker.address if self.broker is not None else None

    async def close(self) -> None:
        """Stop the services in reverse order of start, then close the bus and the database pool."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                log.exception("stopping %s failed", name)
        await self.bus.close()
        await self.db.dispose()
