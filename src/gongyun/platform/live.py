"""Live data for every process: the SSE fan-out and the store that latest values are read from."""

from __future__ import annotations

from gongyun.errors import ServiceUnavailable
from gongyun.platform.container import Platform
from gongyun.platform.data import shared_bus
from gongyun.telemetry.live import LiveHub, new_origin
from gongyun.telemetry.store import TimeSeriesStore, open_store, store_url_for


async def live_hub(platform: Platform) -> LiveHub:
    """The process's live fan-out for SSE clients (made on first use; follows a shared bus).

    In the process running this service it feeds the same queues as :meth:`TelemetryService.listen`
    and :meth:`AlarmEngine.listen`. ServiceUnavailable when there is nothing to follow: no service
    here and an in-process bus.
    """
    hub = platform.live
    if hub is None:
        svc = platform.telemetry
        shared = shared_bus(platform.bus)
        if svc is None and not shared:
            raise ServiceUnavailable("telemetry is not running in this process")
        origin = svc.publisher.origin if svc is not None and svc.publisher is not None else new_origin()
        hub = LiveHub(
            platform.bus if shared else None,
            origin,
            svc._live if svc is not None else None,
            svc.engine.listeners if svc is not None else None,
        )
        platform.live = hub
        platform.on_close("live hub", hub.stop)
    await hub.start()
    return hub


async def latest_store(platform: Platform) -> TimeSeriesStore | None:
    """The store to read latest values from: the service's, else the shared PostgreSQL one (None
    when the store is a file owned by another process)."""
    if platform.telemetry is not None:
        return platform.telemetry.store
    async with platform.latest_lock:
        if platform.latest_reader is None:
            settings = platform.settings
            url = store_url_for(settings.ensure_data_dir(), settings.database_url)
            if url.startswith("duckdb:"):
                return None
            reader = open_store(url)
            await reader.open()
            platform.latest_reader = reader
            platform.on_close("latest reader", reader.close)
    return platform.latest_reader
