"""The running platform-data services of a process: store, ingest, rollups, cleaning, alarms.

Part of the composition root: it joins the telemetry, assets and alarms rooms, which know
nothing of each other's services. ``await TelemetryService.start(settings, db, bus)`` opens the
store (DuckDB file in the data directory, or PostgreSQL when the metadata database is
PostgreSQL), starts ingest with the asset model as its tag catalog, subscribes ingest to the bus,
starts rollup maintenance and the alarm engine (here, or in the server profile in whichever
process wins the election, fed over the bus: ``gongyun.alarms.leader``); the platform keeps it as
``Platform.telemetry``. With a bus that is not in-process it also publishes live data for the
other processes (``gongyun.telemetry.live``).

``gongyun.platform.live`` serves every process, with or without this service: the live SSE
listeners, and the time-series store for reading latest values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gongyun.alarms import feed as alarm_feed
from gongyun.alarms import metrics as alarm_metrics
from gongyun.alarms.commands import CommandWorker
from gongyun.alarms.engine import AlarmEngine
from gongyun.alarms.feed import AlarmFeed, ReferencedTags
from gongyun.alarms.leader import AlarmHost
from gongyun.assets.catalog import AssetCatalog
from gongyun.assets.levels import tag_levels
from gongyun.bus import Bus
from gongyun.config import Settings
from gongyun.db import Database
from gongyun.errors import GongyunError, NotFound, ServiceUnavailable
from gongyun.security.classify.keyring import shared_keyring
from gongyun.security.classify.levels import Level
from gongyun.telemetry import reports
from gongyun.telemetry.cleaning import CleaningConfig, CleaningReport, clean_range
from gongyun.telemetry.consumer import SUBJECT, IngestConsumer
from gongyun.telemetry.ingest import IngestConfig, Ingestor
from gongyun.telemetry.live import LivePublisher, new_origin
from gongyun.telemetry.rollups import RollupWorker
from gongyun.telemetry.sealed import SealingStore
from gongyun.telemetry.store import TimeSeriesStore, open_store, store_url_for
from gongyun.telemetry.store.base import Point

_log = logging.getLogger("gongyun.platform.data")


def _core_tags(db: Database) -> Callable[[str], Awaitable[set[str]]]:
    """A tenant's core tags (effective level 3), for the sealing store."""

    async def core(tenant: str) -> set[str]:
        async with db.session() as s:
            levels = await tag_levels(s, tenant)
        return {tag for tag, level in levels.items() if level is Level.core}

    return core


STREAM = "TELEMETRY"


@dataclass
class TelemetryService:
    """Everything platform data needs at run time."""

    store: TimeSeriesStore
    catalog: AssetCatalog
    ingestor: Ingestor
    engine: AlarmEngine
    rollups: RollupWorker
    consumer: IngestConsumer
    db: Database | None = None
    host: AlarmHost | None = None
    feed: AlarmFeed | None = None
    tags: ReferencedTags | None = None
    subscription: Any = None
    publisher: LivePublisher | None = None
    _live: set[asyncio.Queue[tuple[str, list[Point]]]] = field(default_factory=set)

    @property
    def alarms(self) -> AlarmEngine:
        """The alarm engine when it runs in this process (ServiceUnavailable: it runs elsewhere)."""
        engine = self.host.local if self.host is not None else self.engine
        if engine is None:
            raise ServiceUnavailable("the alarm engine runs in another process")
        return engine

    @property
    def commands(self) -> CommandWorker | None:
        """The alarm command worker when the engine runs in this process."""
        return self.host.commands if self.host is not None else None

    @classmethod
    async def start(
        cls,
        settings: Settings,
        db: Database,
        bus: Bus,
        *,
        store_url: str | None = None,
        subscribe_bus: bool = True,
        tick_s: float = 1.0,
    ) -> TelemetryService:
        """Open and start everything (the caller keeps the service and stops it).

        Ingest and queries run in every process; the alarm engine in one (see
        ``gongyun.alarms.leader``): in the server profile the processes elect it over
        PostgreSQL and the others hand it their points over the bus.
        """
        url = store_url or store_url_for(settings.ensure_data_dir(), settings.database_url)
        store = open_store(url)
        await store.open()
        catalog = AssetCatalog(db)
        # core (level-3) tags' points are sealed into the metadata database, never stored in clear
        keyring = shared_keyring(settings)
        sealing = SealingStore(store, db, keyring, _core_tags(db))
        ingestor = Ingestor(sealing, catalog, IngestConfig())
        engine = AlarmEngine(db, outbound_allow=settings.outbound_allow)
        svc = cls(store, catalog, ingestor, engine, RollupWorker(store), IngestConsumer(ingestor), db)
        shared = subscribe_bus and shared_bus(bus)
        elect = shared and db.dialect == "postgresql"
        try:
            if elect:
                await alarm_feed.ensure_stream(bus)
                svc.tags = ReferencedTags(db, bus)
                await svc.tags.start()
            svc.host = AlarmHost(
                engine,
                bus if subscribe_bus else None,
                elect_url=db.url if elect else None,
                points_bus=bus if elect else None,
                tick_s=tick_s,
            )
            host = svc.host
            alarm_metrics.watch_leadership(
                lambda: host.local is not None, lambda: host.election.term if host.election else None
            )
            svc.feed = AlarmFeed(lambda: host.local, svc.tags, bus if elect else None)
            ingestor.hooks += [svc.feed.on_points, svc._fan_out]
            if shared:
                svc.publisher = LivePublisher(bus, new_origin())
                ingestor.hooks.append(svc.publisher.on_points)
                await svc.publisher.start(engine)
            await svc.host.start()
            await ingestor.start()
            svc.rollups.start()
            if subscribe_bus:
                with contextlib.suppress(GongyunError):  # another room may own a stream over telemetry.>
                    await bus.ensure_stream(STREAM, [SUBJECT], max_age_s=7 * 86400)
                svc.subscription = await svc.consumer.subscribe(bus)
        except BaseException:
            await svc.stop()
            raise
        return svc

    async def stop(self) -> None:
        """Stop consuming, flush ingest, stop background work and close the store."""
        if self.subscription is not None:
            await self.subscription.close()
            self.subscription = None
        await self.consumer.drain()
        await self.ingestor.stop()
        if self.feed is not None:
            await self.feed.stop()  # sends what is queued (briefly), then ends its sender task
        await self.rollups.stop()
        if self.host is not None:
            await self.host.stop()  # the engine's last saves, then the leadership is given up
        if self.tags is not None:
            await self.tags.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        await self.store.close()

    # -- live data -------------------------------------------------------------------------
    def listen(self, maxsize: int = 1000) -> asyncio.Queue[tuple[str, list[Point]]]:
        """A queue receiving every stored batch as (tenant, points); drop it with ``unlisten``."""
        q: asyncio.Queue[tuple[str, list[Point]]] = asyncio.Queue(maxsize=maxsize)
        self._live.add(q)
        return q

    def unlisten(self, q: asyncio.Queue[tuple[str, list[Point]]]) -> None:
        """Stop delivering to a queue."""
        self._live.discard(q)

    async def _fan_out(self, tenant: str, points: list[Point]) -> None:
        for q in list(self._live):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait((tenant, points))

    # -- cleaning --------------------------------------------------------------------------
    async def clean(
        self, tenant: str, tag: str, start: int, end: int, config: CleaningConfig | None = None
    ) -> CleaningReport:
        """Clean one tag over [start, end) with its configured (or the given) settings."""
        cfg = config or await self.catalog.cleaning(tenant, tag)
        if cfg is None:
            if await self.catalog.get(tenant, tag) is None:
                raise NotFound("tag not found")
            cfg = CleaningConfig()
        report = await clean_range(self.store, tenant, tag, start, end, cfg=cfg)
        if self.db is not None:
            async with self.db.session() as session:
                await reports.save_report(session, tenant, report, start, end)
        return report


def shared_bus(bus: Bus) -> bool:
    """True when the bus reaches other processes (not the embedded in-process bus)."""
    return bool(bus.scheme != "memory")
