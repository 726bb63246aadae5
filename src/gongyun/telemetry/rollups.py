"""Keeps rollups fresh and retention applied in the background."""

from __future__ import annotations

import asyncio
import logging
import time

from gongyun.core.tasks import cancel_and_wait
from gongyun.telemetry.store.base import TimeSeriesStore

_log = logging.getLogger("gongyun.telemetry.rollups")


class RollupWorker:
    """Refreshes dirty rollup hours every ``refresh_s`` and applies retention every ``retention_s``.

    Queries that need rollups refresh on their own first, so this only keeps that cheap.
    """

    def __init__(self, store: TimeSeriesStore, refresh_s: float = 10.0, retention_s: float = 3600.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.retention_s = retention_s
        self.refreshed_hours = 0
        self.retention_runs = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, retention: bool = False) -> int:
        """Refresh rollups now (and apply retention when asked); return hours refreshed."""
        n = await self.store.refresh_rollups()
        self.refreshed_hours += n
        if retention:
            await self.store.apply_retention()
            self.retention_runs += 1
        return n

    async def _loop(self) -> None:
        last_retention = 0.0
        while True:
            now = time.monotonic()
            due = now - last_retention >= self.retention_s
            try:
                await self.run_once(retention=due)
            except Exception:
                _log.exception("rollup maintenance failed; retrying")
            if due:
                last_retention = now
            await asyncio.sleep(self.refresh_s)

    def start(self) -> None:
        """Start the background task."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="telemetry-rollups")

    async def stop(self) -> None:
        """Stop the background task."""
        await cancel_and_wait(self._task)
        self._task = None
