"""Ingest: validate samples against their tags, queue them (bounded), write them in batches.

Every sample is judged alone: a bad one is rejected with a reason (counted per tag) and the
rest of the batch is stored. The queue between validation and the store is bounded, so a
slow store makes producers wait (backpressure) instead of growing memory. The writer
group-commits: whatever queued up while the previous write ran goes into the next one.

Batches travel as columns (``SampleBatch``): plain float samples of plain float tags are
judged with numpy over the whole batch; only the others (other types, unit conversion,
anything rejected) take the per-sample path, which says why.

The data types live in ``_ingest_model``, the per-tag rules and counters in ``_ingest_rules``
and the batching writer in ``_ingest_writer``; this module re-exports their public names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import compress

import numpy as np
import numpy.typing as npt

from gongyun.core.types import Sample
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry import metrics
from gongyun.telemetry._ingest_model import (
    F64,
    I16,
    I64,
    ONE_US,
    QUALITY,
    Columns,
    IngestConfig,
    IngestResult,
    Reason,
    Rejection,
    SampleBatch,
    Submitted,
)
from gongyun.telemetry._ingest_rules import FAST, IngestStats, TagTable, check_value
from gongyun.telemetry._ingest_rules import when as _when
from gongyun.telemetry._ingest_writer import BatchWriter, StoredHook
from gongyun.telemetry.catalog import TagCatalog, TagSpec
from gongyun.telemetry.store.base import Point, TimeSeriesStore

_QUALITY = QUALITY  # imported from here by older callers

__all__ = [
    "F64",
    "I16",
    "I64",
    "_QUALITY",
    "Columns",
    "IngestConfig",
    "IngestResult",
    "IngestStats",
    "Ingestor",
    "Reason",
    "Rejection",
    "SampleBatch",
    "StoredHook",
    "Submitted",
    "check_value",
]


class Ingestor:
    """Validates, queues and stores samples; calls hooks with what was stored."""

    def __init__(
        self,
        store: TimeSeriesStore,
        catalog: TagCatalog,
        config: IngestConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.config = config or IngestConfig()
        self.clock = clock
        self.stats = IngestStats()
        self.hooks: list[StoredHook] = []
        self._writer = BatchWriter(self)

    async def start(self) -> None:
        """Start the writer task."""
        self._writer.start()

    async def stop(self) -> None:
        """Write what is queued, then stop the writer."""
        await self._writer.stop()

    @property
    def queued(self) -> int:
        """Chunks waiting for the writer."""
        return self._writer.queue.qsize()

    async def _lookup(self, tenant: str, tags: list[str]) -> tuple[TagTable, npt.NDArray[np.intp]]:
        """Each tag's index in the tenant's table; specs come from the catalog, cached briefly."""
        table = self.stats.table(tenant)
        index = table.index
        now = time.monotonic()
        try:
            idx = np.fromiter(map(index.__getitem__, tags), np.intp, len(tags))
        except KeyError:
            for name in set(tags).difference(index):
                if name not in index:  # another batch may have added it while we awaited the catalog
                    i = table.add(name)
                    table.set(i, await self.catalog.get(tenant, name), now + self.config.spec_ttl_s)
            idx = np.fromiter(map(index.__getitem__, tags), np.intp, len(tags))
        stale = table.expires[idx] < now
        if stale.any():
            for i in np.unique(idx[stale]).tolist():
                spec = await self.catalog.get(tenant, table.names[i])
                table.set(i, spec, now + self.config.spec_ttl_s)
        return table, idx

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget cached tag specs (after the asset model changed)."""
        for t, table in self.stats._tables.items():
            if tenant is None or t == tenant:
                table.expires[:] = 0.0
        invalidate = getattr(self.catalog, "invalidate", None)
        if invalidate is not None:
            invalidate(tenant)

    async def validate(self, tenant: str, samples: Sequence[Sample]) -> tuple[list[Point], IngestResult]:
        """Judge every sample: points to store, and the result with each rejection."""
        cols, result = await self.validate_batch(tenant, SampleBatch.from_samples(samples))
        return cols.points(), result

    async def validate_batch(self, tenant: str, batch: SampleBatch) -> tuple[Columns, IngestResult]:
        """Judge every sample of a columnar batch: columns to store, and the result."""
        result = IngestResult()
        cfg = self.config
        tags, ts, values, naive = batch.tags, batch.ts, batch.values, batch.naive or {}
        n = len(tags)
        if n > cfg.max_batch:
            for i in range(cfg.max_batch, n):
                when = naive.get(i) or _when(int(ts[i]))
                self._reject(
                    tenant, result, Rejection(tags[i], when, Reason.oversize_batch, f"max {cfg.max_batch}")
                )
            n = cfg.max_batch
            tags, ts, values = tags[:n], ts[:n], values[:n]
        table, idx = await self._lookup(tenant, tags)
        now_us = int(self.clock() * 1_000_000)
        hi_ts = now_us + cfg.max_future // ONE_US
        lo_ts = now_us - cfg.max_past // ONE_US
        if isinstance(values, np.ndarray) or set(map(type, values)) <= {float}:
            fvals = np.array(values, np.float64)
            good = np.ones(n, np.bool_)
        else:
            good = np.fromiter((type(v) is float for v in values), np.bool_, n)
            fvals = np.fromiter((v if type(v) is float else 0.0 for v in values), np.float64, n)
        # the fast path: plain floats of plain float tags, finite, in range, in the time window
        good &= table.kind[idx] == FAST
        good &= np.isfinite(fvals)
        good &= fvals >= table.lo[idx]
        good &= fvals <= table.hi[idx]
        good &= ts <= hi_ts
        good &= ts >= lo_ts
        for i in naive:
            if i < n:
                good[i] = False
        if not good.all():
            for i in np.flatnonzero(~good).tolist():
                value = self._judge(
                    tenant,
                    result,
                    table.specs[idx[i]],
                    tags[i],
                    int(ts[i]),
                    values[i],
                    naive.get(i),
                    (lo_ts, hi_ts),
                )
                if value is not None:
                    good[i] = True
                    fvals[i] = value
        quality = batch.quality[:n] if batch.quality is not None else np.zeros(n, np.int16)
        if good.all():
            cols = Columns(list(tags), ts, fvals, quality)
        else:
            cols = Columns(list(compress(tags, good.tolist())), ts[good], fvals[good], quality[good])
            idx = idx[good]
        np.add.at(table.accepted, idx, 1)
        result.accepted = len(cols.tags)
        metrics.ACCEPTED.inc(result.accepted)
        metrics.BATCH.observe(len(batch.tags))
        return cols, result

    def _judge(
        self,
        tenant: str,
        result: IngestResult,
        spec: TagSpec | None,
        name: str,
        us: int,
        value: object,
        naive_ts: datetime | None,
        window: tuple[int, int],
    ) -> float | None:
        """One sample off the fast path: its stored value, or None once it is rejected."""
        ts = naive_ts or _when(us)
        reason: Reason | None = None
        detail = ""
        cfg = self.config
        if spec is None:
            reason = Reason.unknown_tag
        elif naive_ts is not None:
            reason = Reason.naive_timestamp
        elif us > window[1]:
            reason, detail = Reason.future, f"more than {cfg.max_future} ahead"
        elif us < window[0]:
            reason, detail = Reason.past, f"more than {cfg.max_past} old"
        else:
            v, reason, detail = check_value(spec, value)
            if reason is None:
                return v
        self._reject(tenant, result, Rejection(name, ts, reason, detail))
        return None

    def _reject(self, tenant: str, result: IngestResult, rejection: Rejection) -> None:
        result.rejected.append(rejection)
        self.stats.rejected[(tenant, rejection.tag, str(rejection.reason))] += 1
        metrics.REJECTED.labels(str(rejection.reason)).inc()

    def note_rejection(self, tenant: str, result: IngestResult, rejection: Rejection) -> None:
        """Record a sample rejected before validation (e.g. one that could not be decoded)."""
        self._reject(tenant, result, rejection)

    async def submit(self, tenant: str, samples: Sequence[Sample] | SampleBatch) -> Submitted:
        """Validate and queue a batch (waits while the queue is full); ``stored`` resolves later."""
        if not self._writer.running:
            raise ServiceUnavailable("telemetry ingest is not running")
        batch = samples if isinstance(samples, SampleBatch) else SampleBatch.from_samples(samples)
        cols, result = await self.validate_batch(tenant, batch)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if cols.tags:
            await self._writer.queue.put((tenant, cols, fut))
            metrics.QUEUE.set(self._writer.queue.qsize())
        else:
            fut.set_result(None)
        return Submitted(result, fut)

    async def ingest(self, tenant: str, samples: Sequence[Sample] | SampleBatch) -> IngestResult:
        """Validate, queue and wait until the accepted samples are stored."""
        sub = await self.submit(tenant, samples)
        await sub.stored
        return sub.result
