"""Ingest: validate samples against their tags, queue them (bounded), write them in batches.

Every sample is judged alone: a bad one is rejected with a reason (counted per tag) and the
rest of the batch is stored. The queue between validation and the store is bounded, so a
slow store makes producers wait (backpressure) instead of growing memory. The writer
group-commits: whatever queued up while the previous write ran goes into the next one.

Batches travel as columns (``SampleBatch``): plain float samples of plain float tags are
judged with numpy over the whole batch; only the others (other types, unit conversion,
anything rejected) take the per-sample path, which says why.
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
from itertools import compress
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.core.types import Quality, Sample
from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.catalog import DataType, TagCatalog, TagSpec
from gongyun.telemetry.store.base import QUALITY_CODES, Point, TimeSeriesStore, from_us
from gongyun.telemetry.units import UnitError, converter

_log = logging.getLogger("gongyun.telemetry.ingest")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_NUMBERS = (int, float)
_QUALITY: dict[object, int] = {Quality(k): v for k, v in QUALITY_CODES.items()}
_FAST, _SLOW, _UNKNOWN = 0, 1, 2  # how a tag's samples are judged
_MAX_TAGS = 1_000_000  # per tenant, before the tag table starts over

StoredHook = Callable[[str, list[Point]], Awaitable[None]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]


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
class SampleBatch:
    """Samples as columns: ``device/tag`` names, µs timestamps, values, quality codes.

    ``values`` is a float64 array when every value is a float (the fast case), else a list
    of anything a device may send. ``quality`` None means all good. ``naive`` maps the index
    of each sample whose timestamp had no time zone to that timestamp (it is rejected).
    """

    tags: list[str]
    ts: I64
    values: F64 | list[Any]
    quality: I16 | None = None
    naive: dict[int, datetime] | None = None

    def __len__(self) -> int:
        return len(self.tags)

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> SampleBatch:
        """Columns of a sequence of ``Sample`` objects."""
        tags = [str(s.tag) for s in samples]
        stamps: list[int] = []
        naive: dict[int, datetime] = {}
        last: datetime | None = None
        us = 0
        for i, s in enumerate(samples):
            ts = s.ts
            if ts is not last:  # samples of one message usually share their timestamp object
                last = ts
                us = 0 if ts.tzinfo is None else (ts - _EPOCH) // _ONE_US
            if ts.tzinfo is None:
                naive[i] = ts
            stamps.append(us)
        quality = [_QUALITY.get(s.quality, 2) for s in samples]
        return cls(
            tags,
            np.array(stamps, np.int64),
            [s.value for s in samples],
            np.array(quality, np.int16) if any(quality) else None,
            naive or None,
        )


@dataclass(slots=True)
class Columns:
    """Accepted points as columns (what the writer queues and the store takes)."""

    tags: list[str]
    ts: I64
    values: F64
    quality: I16

    def points(self) -> list[Point]:
        """The same points as ``Point`` tuples."""
        return list(map(Point, self.tags, self.ts.tolist(), self.values.tolist(), self.quality.tolist()))

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """One set of columns from several."""
        if len(parts) == 1:
            return parts[0]
        tags: list[str] = []
        for p in parts:
            tags.extend(p.tags)
        return cls(
            tags,
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.quality for p in parts]),
        )


@dataclass(slots=True)
class Submitted:
    """A validated batch in the queue: its result now, and a future set once it is stored."""

    result: IngestResult
    stored: asyncio.Future[None]


class _TagTable:
    """One tenant's tags as small integers, with per-tag spec, bounds, expiry and counters."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.specs: list[TagSpec | None] = []
        self.kind = np.zeros(0, np.int8)
        self.lo = np.zeros(0, np.float64)
        self.hi = np.zeros(0, np.float64)
        self.expires = np.zeros(0, np.float64)
        self.accepted = np.zeros(0, np.int64)

    def _grow(self, need: int) -> None:
        size = max(64, len(self.kind))
        while size < need:
            size *= 2
        if size > len(self.kind):
            for name in ("kind", "lo", "hi", "expires", "accepted"):
                old = getattr(self, name)
                new = np.zeros(size, old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)

    def set(self, i: int, spec: TagSpec | None, expires: float) -> None:
        """Record a tag's spec and how its samples are judged."""
        self.specs[i] = spec
        self.expires[i] = expires
        if spec is None:
            self.kind[i] = _UNKNOWN
        elif spec.data_type is not DataType.float or (spec.source_unit and spec.unit):
            self.kind[i] = _SLOW
        else:
            self.kind[i] = _FAST
            self.lo[i] = -math.inf if spec.low is None else spec.low
            self.hi[i] = math.inf if spec.high is None else spec.high

    def add(self, name: str) -> int:
        """A new tag's index (its spec is set by the caller)."""
        i = len(self.names)
        self._grow(i + 1)
        self.index[name] = i
        self.names.append(name)
        self.specs.append(None)
        return i

    def counts(self) -> Counter[str]:
        """Accepted samples per tag."""
        out: Counter[str] = Counter()
        for name, c in zip(self.names, self.accepted[: len(self.names)].tolist(), strict=True):
            if c:
                out[name] += c
        return out


class IngestStats:
    """Counters per (tenant, tag): accepted samples and rejections by reason."""

    def __init__(self) -> None:
        self._earlier: dict[str, Counter[str]] = {}  # counts of tag tables that started over
        self._tables: dict[str, _TagTable] = {}
        self.rejected: Counter[tuple[str, str, str]] = Counter()
        self.stored_points = 0
        self.write_errors = 0

    @property
    def accepted(self) -> dict[str, Counter[str]]:
        """tenant -> tag -> samples accepted."""
        out = {t: Counter(c) for t, c in self._earlier.items()}
        for tenant, table in self._tables.items():
            out.setdefault(tenant, Counter()).update(table.counts())
        return out

    def for_tenant(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``{tag: {"accepted": n, "rejected": {reason: n}}}`` for one tenant."""
        out: dict[str, dict[str, Any]] = {}
        for tag, n in self.accepted.get(tenant, Counter()).items():
            out.setdefault(tag, {"accepted": 0, "rejected": {}})["accepted"] = n
        for (t, tag, reason), n in self.rejected.items():
            if t == tenant:
                out.setdefault(tag, {"accepted": 0, "rejected": {}})["rejected"][reason] = n
        return out

    def table(self, tenant: str) -> _TagTable:
        """The tenant's tag table (a fresh one once it grew too big)."""
        table = self._tables.get(tenant)
        if table is None or len(table.names) > _MAX_TAGS:
            if table is not None:
                self._earlier.setdefault(tenant, Counter()).update(table.counts())
            table = self._tables[tenant] = _TagTable()
        return table


_Item = tuple[str, Columns, asyncio.Future[None]]


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

    async def _lookup(self, tenant: str, tags: list[str]) -> tuple[_TagTable, npt.NDArray[np.intp]]:
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
        hi_ts = now_us + cfg.max_future // _ONE_US
        lo_ts = now_us - cfg.max_past // _ONE_US
        if isinstance(values, np.ndarray) or set(map(type, values)) <= {float}:
            fvals = np.array(values, np.float64)
            good = np.ones(n, np.bool_)
        else:
            good = np.fromiter((type(v) is float for v in values), np.bool_, n)
            fvals = np.fromiter((v if type(v) is float else 0.0 for v in values), np.float64, n)
        # the fast path: plain floats of plain float tags, finite, in range, in the time window
        good &= table.kind[idx] == _FAST
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

    def note_rejection(self, tenant: str, result: IngestResult, rejection: Rejection) -> None:
        """Record a sample rejected before validation (e.g. one that could not be decoded)."""
        self._reject(tenant, result, rejection)

    async def submit(self, tenant: str, samples: Sequence[Sample] | SampleBatch) -> Submitted:
        """Validate and queue a batch (waits while the queue is full); ``stored`` resolves later."""
        if self._task is None:
            raise ServiceUnavailable("telemetry ingest is not running")
        batch = samples if isinstance(samples, SampleBatch) else SampleBatch.from_samples(samples)
        cols, result = await self.validate_batch(tenant, batch)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if cols.tags:
            await self._queue.put((tenant, cols, fut))
        else:
            fut.set_result(None)
        return Submitted(result, fut)

    async def ingest(self, tenant: str, samples: Sequence[Sample] | SampleBatch) -> IngestResult:
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
            n = len(item[1].tags)
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
                n += len(nxt[1].tags)
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        by_tenant: dict[str, list[Columns]] = {}
        for tenant, cols, _ in batch:
            by_tenant.setdefault(tenant, []).append(cols)
        error: BaseException | None = None
        write_columns = getattr(self.store, "write_columns", None)
        for tenant, parts in by_tenant.items():
            cols = Columns.concat(parts)
            points: list[Point] | None = None
            try:
                if write_columns is not None:
                    await write_columns(tenant, cols.tags, cols.ts, cols.values, cols.quality)
                else:
                    points = cols.points()
                    await self.store.write(tenant, points)
                self.stats.stored_points += len(cols.tags)
            except Exception as exc:
                _log.exception("writing %d points of tenant %s failed", len(cols.tags), tenant)
                self.stats.write_errors += 1
                error = exc
                continue
            if self.hooks and points is None:
                points = cols.points()
            for hook in self.hooks:
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


def _when(us: int) -> datetime | None:
    """A stored timestamp as a datetime for a rejection (None beyond what datetime holds)."""
    try:
        return from_us(us)
    except OverflowError:
        return None


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
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        return math.inf, Reason.infinite, ""
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
