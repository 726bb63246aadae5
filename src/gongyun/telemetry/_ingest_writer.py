"""The ingest writer: a bounded queue (backpressure) and a task that group-commits to the store.

Private to ``gongyun.telemetry.ingest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gongyun.errors import ServiceUnavailable
from gongyun.telemetry import metrics
from gongyun.telemetry._ingest_model import Columns, IngestConfig
from gongyun.telemetry._ingest_rules import IngestStats
from gongyun.telemetry.store.base import Point, TimeSeriesStore

_log = logging.getLogger("gongyun.telemetry.ingest")

StoredHook = Callable[[str, list[Point]], Awaitable[None]]
Item = tuple[str, Columns, asyncio.Future[None]]


def _observe_write(cols: Columns, seconds: float) -> None:
    """Store latency, points and the ingest lag of one successful write."""
    metrics.WRITE_SECONDS.observe(seconds)
    metrics.WRITE_POINTS.inc(len(cols.tags))
    if len(cols.tags):
        metrics.LAG.observe(max(0.0, time.time() - int(cols.ts.max()) / 1_000_000))


class WriteTarget(Protocol):
    """Where the writer writes, what it counts and whom it tells (read at each write)."""

    store: TimeSeriesStore
    config: IngestConfig
    stats: IngestStats
    hooks: list[StoredHook]


class BatchWriter:
    """Queues validated columns (waiting while full) and writes them in batches."""

    def __init__(self, target: WriteTarget) -> None:
        self.target = target
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=target.config.queue_chunks)
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self.task is not None

    def start(self) -> None:
        """Start the writer task."""
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name="telemetry-ingest-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop the writer task."""
        if self.task is not None:
            await self.queue.put(None)
            await self.task
            self.task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            item = await self.queue.get()
            if item is None:
                break
            batch = [item]
            n = len(item[1].tags)
            cfg = self.target.config
            # Group commit: take what is queued; while the batch is small, linger briefly for more
            # (every store commit has a fixed cost, so few large writes beat many small ones).
            deadline = loop.time() + cfg.linger_s
            while n < cfg.write_batch:
                try:
                    nxt = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self.queue.get(), remaining)
                    except TimeoutError:
                        break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                n += len(nxt[1].tags)
            await self._write(batch)

    async def _write(self, batch: list[Item]) -> None:
        target = self.target
        by_tenant: dict[str, list[Columns]] = {}
        for tenant, cols, _ in batch:
            by_tenant.setdefault(tenant, []).append(cols)
        error: BaseException | None = None
        write_columns = getattr(target.store, "write_columns", None)
        metrics.QUEUE.set(self.queue.qsize())
        for tenant, parts in by_tenant.items():
            cols = Columns.concat(parts)
            points: list[Point] | None = None
            started = time.perf_counter()
            try:
                if write_columns is not None:
                    await write_columns(tenant, cols.tags, cols.ts, cols.values, cols.quality)
                else:
                    points = cols.points()
                    await target.store.write(tenant, points)
                target.stats.stored_points += len(cols.tags)
                _observe_write(cols, time.perf_counter() - started)
            except Exception as exc:
                _log.exception("writing %d points of tenant %s failed", len(cols.tags), tenant)
                target.stats.write_errors += 1
                metrics.WRITE_ERRORS.inc()
                error = exc
                continue
            if target.hooks and points is None:
                points = cols.points()
            for hook in target.hooks:
                try:
                    await hook(tenant, points or [])
                except Exception:
                    _log.exception("ingest hook %r failed", hook)
        for _, _, fut in batch:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(ServiceUnavailable(f"time-series store write failed: {error}"))
                    with contextlib.suppress(Exception):
                        fut.exception()  # mark retrieved: the caller may have stopped waiting
