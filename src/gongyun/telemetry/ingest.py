"""Ingest: validate samples against their tags, queue them (bounded), write them in batches.

Every sample is judged alone: a bad one is rejected with a reason (counted per tag) and the
rest of the batch is stored. The queue between validation and the store is bounded, so a
slow store makes producers wait (backpressure) instead of growing memory. The writer
group-commits: whatever queued up while the previous write ran goes into the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import Any

from gongyun.core.types import Quality, Sample
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.catalog import DataType, TagCatalog, TagSpec
from gongyun.telemetry.store.base import QUALITY_CODES, Point, TimeSeriesStore
from gongyun.telemetry.units import UnitError, converter

_log = logging.getLogger("gongyun.telemetry.ingest")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NUMBERS = (int, float)
_Bounds = tuple[float, float]
_QUALITY: dict[object, int] = {Quality(k): v for k, v in QUALITY_CODES.items()}

StoredHook = Callable[[str, list[Point]], Awaitable[None]]


class Reason(StrEnum):
    """Why a sample was rejected."""

    unknown_tag = "unknown_tag"
    wrong_type = "wrong_type"
    missing_value = "missing_value"
    nan = "nan"
    infinite = "infinite"
    out_of_range = "out_of_range"
    future = "timestamp_in_future"
    past = "timestamp_too_old"
    naive_timestamp = "timestamp_without_zone"
    unit = "unit_not_convertible"
    oversize_batch = "oversize_batch"
    malformed = "malformed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected sample."""

    tag: str
    ts: datetime | None
    reason: Reason
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tag": self.tag,
            "ts": self.ts.isoformat() if self.ts else None,
            "reason": str(self.reason),
            "detail": self.detail,
        }


@dataclass(slots=True)
class IngestResult:
    """What happened to a batch: how many were accepted, and each rejection."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"accepted": self.accepted, "rejected": [r.to_dict() for r in self.rejected]}


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Limits of the ingest pipeline."""

    max_batch: int = 10_000
    write_batch: int = 20_000
    linger_s: float = 0.05
    spec_ttl_s: float = 5.0
    queue_chunks: int = 64
    max_future: timedelta = timedelta(minutes=10)
    max_past: timedelta = timedelta(days=5 * 366)


@dataclass(slots=True)
class Submitted:
    """A validated batch in the queue: its result now, and a future set once it is stored."""

    result: IngestResult
    stored: asyncio.Future[None]


class IngestStats:
    """Counters per (tenant, tag): accepted samples and rejections by reason."""

    def __init__(self) -> None:
        self.accepted: dict[str, Counter[str]] = {}  # tenant -> tag -> samples accepted
        self.rejected: Counter[tuple[str, str, str]] = Counter()
        self.stored_points = 0
        self.write_errors = 0

    def count_accepted(self, tenant: str, points: list[Point]) -> None:
        """Add a batch's accepted points to the tenant's per-tag counters."""
        counter = self.accepted.get(tenant)
        if counter is None:
            counter = self.accepted[tenant] = Counter()
        counter.update(map(itemgetter(0), points))

    def for_tenant(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``{tag: {"accepted": n, "rejected": {reason: n}}}`` for one tenant."""
        out: dict[str, dict[str, Any]] = {}
        for tag, n in self.accepted.get(tenant, Counter()).items():
            out.setdefault(tag, {"accepted": 0, "rejected": {}})["accepted"] = n
        for (t, tag, reason), n in self.rejected.items():
            if t == tenant:
                out.setdefault(tag, {"accepted": 0, "rejected": {}})["rejected"][reason] = n
        return out


_Item = tuple[str, list[Point], asyncio.Future[None]]


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
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=self.config.queue_chunks)
        self._spec_cache: dict[str, dict[str, tuple[float, TagSpec | None, _Bounds | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="telemetry-ingest-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    @property
    def queued(self) -> int:
        """Chunks waiting for the writer."""
        return self._queue.qsize()

    async def _specs(self, tenant: str, names: list[str]) -> dict[str, tuple[TagSpec | None, _Bounds | None]]:
        """Tag specs (with fast-path bounds) from a short-lived local cache over the catalog."""
        now = time.monotonic()
        cache = self._spec_cache.get(tenant)
        if cache is None or len(cache) > 1_000_000:
            cache = self._spec_cache[tenant] = {}
        out: dict[str, tuple[TagSpec | None, _Bounds | None]] = {}
        for name in set(names):
            hit = cache.get(name)
            if hit is None or hit[0] < now:
                spec = await self.catalog.get(tenant, name)
                hit = cache[name] = (now + self.config.spec_ttl_s, spec, _bounds(spec))
            out[name] = (hit[1], hit[2])
        return out

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget cached tag specs (after the asset model changed)."""
        if tenant is None:
            self._spec_cache.clear()
        else:
            self._spec_cache.pop(tenant, None)
        invalidate = getattr(self.catalog, "invalidate", None)
        if invalidate is not None:
            invalidate(tenant)

    async def validate(self, tenant: str, samples: Sequence[Sample]) -> tuple[list[Point], IngestResult]:
        """Judge every sample: points to store, and the result with each rejection."""
        result = IngestResult()
        cfg = self.config
        if len(samples) > cfg.max_batch:
            for s in samples[cfg.max_batch :]:
                self._reject(
                    tenant, result, Rejection(str(s.tag), s.ts, Reason.oversize_batch, f"max {cfg.max_batch}")
                )
            samples = samples[: cfg.max_batch]
        names = [str(s.tag) for s in samples]
        specs = await self._specs(tenant, names)
        now_us = int(self.clock() * 1_000_000)
        hi = now_us + cfg.max_future // _ONE_US
        lo = now_us - cfg.max_past // _ONE_US
        points: list[Point] = []
        append = points.append
        last_ts: datetime | None = None
        us = 0
        for s, name in zip(samples, names, strict=True):
            spec, bounds = specs[name]
            if spec is None:
                self._reject(tenant, result, Rejection(name, s.ts, Reason.unknown_tag))
                continue
            ts = s.ts
            if ts is not last_ts:  # samples of one message usually share their timestamp object
                if ts.tzinfo is None:
                    self._reject(tenant, result, Rejection(name, ts, Reason.naive_timestamp))
                    continue
                us = (ts - _EPOCH) // _ONE_US
                last_ts = ts
            if us > hi:
                self._reject(
                    tenant, result, Rejection(name, ts, Reason.future, f"more than {cfg.max_future} ahead")
                )
                continue
            if us < lo:
                self._reject(
                    tenant, result, Rejection(name, ts, Reason.past, f"more than {cfg.max_past} old")
                )
                continue
            v = s.value
            # plain float tags take a fast path: bounds only (NaN and infinities fail ``v - v == 0``)
            if bounds is not None and type(v) is float and v - v == 0.0 and bounds[0] <= v <= bounds[1]:
                append(Point(name, us, v, _QUALITY.get(s.quality, 2)))
                continue
            value, reason, detail = check_value(spec, v)
            if reason is not None:
                self._reject(tenant, result, Rejection(name, ts, reason, detail))
                continue
            append(Point(name, us, value, _QUALITY.get(s.quality, 2)))
        self.stats.count_accepted(tenant, points)
        result.accepted = len(points)
        return points, result

    def _reject(self, tenant: str, result: IngestResult, rejection: Rejection) -> None:
        result.rejected.append(rejection)
        self.stats.rejected[(tenant, rejection.tag, str(rejection.reason))] += 1

    def note_rejection(self, tenant: str, result: IngestResult, rejection: Rejection) -> None:
        """Record a sample rejected before validation (e.g. one that could not be decoded)."""
        self._reject(tenant, result, rejection)

    async def submit(self, tenant: str, samples: Sequence[Sample]) -> Submitted:
        """Validate and queue a batch (waits while the queue is full); ``stored`` resolves later."""
        if self._task is None:
            raise ServiceUnavailable("telemetry ingest is not running")
        points, result = await self.validate(tenant, samples)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if points:
            await self._queue.put((tenant, points, fut))
        else:
            fut.set_result(None)
        return Submitted(result, fut)

    async def ingest(self, tenant: str, samples: Sequence[Sample]) -> IngestResult:
        """Validate, queue and wait until the accepted samples are stored."""
        sub = await self.submit(tenant, samples)
        await sub.stored
        return sub.result

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            n = len(item[1])
            # Group commit: take what is queued; while the batch is small, linger briefly for more
            # (every store commit has a fixed cost, so few large writes beat many small ones).
            deadline = loop.time() + self.config.linger_s
            while n < self.config.write_batch:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                n += len(nxt[1])
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        by_tenant: dict[str, list[Point]] = {}
        for tenant, points, _ in batch:
            by_tenant.setdefault(tenant, []).extend(points)
        error: BaseException | None = None
        for tenant, points in by_tenant.items():
            try:
                await self.store.write(tenant, points)
                self.stats.stored_points += len(points)
            except Exception as exc:
                _log.exception("writing %d points of tenant %s failed", len(points), tenant)
                self.stats.write_errors += 1
                error = exc
                continue
            for hook in self.hooks:
                try:
                    await hook(tenant, points)
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


def _bounds(spec: TagSpec | None) -> _Bounds | None:
    """Range of a plain float tag (no unit conversion), for the fast path; None otherwise."""
    if spec is None or spec.data_type is not DataType.float or (spec.source_unit and spec.unit):
        return None
    return (-math.inf if spec.low is None else spec.low, math.inf if spec.high is None else spec.high)


def check_value(spec: TagSpec, value: object) -> tuple[float, Reason | None, str]:
    """Coerce a value to the tag's type and unit and check its range."""
    if value is None:
        return 0.0, Reason.missing_value, ""
    if spec.data_type is DataType.bool:
        if isinstance(value, bool):
            return float(value), None, ""
        if isinstance(value, int) and value in (0, 1):
            return float(value), None, ""
        return 0.0, Reason.wrong_type, f"expected bool, got {type(value).__name__}"
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
        return 0.0, Reason.wrong_type, f"expected {spec.data_type}, got {type(value).__name__}"
    v = float(value)
    if math.isnan(v):
        return v, Reason.nan, ""
    if math.isinf(v):
        return v, Reason.infinite, ""
    if spec.data_type is DataType.int and not v.is_integer():
        return v, Reason.wrong_type, "expected an integer"
    if spec.source_unit and spec.unit and spec.source_unit != spec.unit:
        try:
            v = converter(spec.source_unit, spec.unit)(v)
        except UnitError as exc:
            return v, Reason.unit, exc.message
    if (spec.low is not None and v < spec.low) or (spec.high is not None and v > spec.high):
        return v, Reason.out_of_range, f"{v} outside [{spec.low}, {spec.high}]"
    return v, None, ""
