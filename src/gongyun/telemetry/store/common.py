"""``SqlStore``: the store logic both backends share; they supply the execution primitives."""

# ruff: noqa: S608  (SQL is assembled from fixed table names and integer ids; values are bound)

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from gongyun.telemetry.store import sql
from gongyun.telemetry.store.base import (
    DAY_US,
    Agg,
    Aligned,
    Bucket,
    BucketPlan,
    Downsampled,
    Point,
    RetentionPolicy,
    SeriesKind,
    Source,
    StoreError,
    check_agg,
    check_series,
    fill_buckets,
    plan_buckets,
)

MAX_TAG_LEN = 300
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I16 = npt.NDArray[np.int16]


def dedupe_keys(sid: I32, ts: I64) -> npt.NDArray[np.intp] | None:
    """Positions to keep so each (sid, ts) appears once (the last one wins); None: no duplicates."""
    if len(sid) < 2:
        return None
    order = np.lexsort((ts, sid))  # stable: equal keys stay in arrival order
    s, t = sid[order], ts[order]
    same = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    if not same.any():
        return None
    keep = np.ones(len(order), np.bool_)
    keep[:-1] = ~same  # of equal neighbours only the last survives
    return np.sort(order[keep])


class SqlStore(ABC):
    """Implements ``TimeSeriesStore`` on top of a few backend primitives."""

    kind: str = "sql"
    dialect: sql.Dialect

    def __init__(self) -> None:
        self._sids: dict[str, dict[str, int]] = {}  # tenant -> tag -> sid

    # -- primitives a backend implements -------------------------------------------------
    @abstractmethod
    async def _run(self, statements: Sequence[str], params: dict[str, Any] | None = None) -> list[int]:
        """Run statements in one transaction; return each one's affected row count."""

    @abstractmethod
    async def _fetch(self, query: str, params: dict[str, Any] | None = None) -> list[sql.Row]:
        """Run one query and return its rows."""

    @abstractmethod
    async def _merge(
        self, series: SeriesKind, sid: I32, ts: I64, value: F64, quality: I16, flags: I16
    ) -> None:
        """Stage rows (series id, µs, value, quality, flags) and merge them (sql.merge_batch)."""

    @abstractmethod
    async def _register(self, tenant: str, tags: Sequence[str]) -> None:
        """Insert missing (tenant, tag) series rows (idempotently)."""

    @abstractmethod
    async def _refresh_span(self, series: SeriesKind, lo: int, hi: int) -> int:
        """Snapshot the dirty hours in [lo, hi) into temp table ``snap``, run sql.refresh; return hours."""

    async def _refresh(self, series: SeriesKind) -> int:
        """Refresh every dirty hour, one day per transaction; return how many hours were refreshed.

        A bulk backfill (a month of 100 tags) becomes a few dozen day-sized statements that
        each touch one partition, and writers get the connection between them.
        """
        k = check_series(series)
        days = await self._fetch(f"SELECT DISTINCT {self.dialect.div('hour', str(DAY_US))} FROM ts_{k}_dirty")
        done = 0
        for day in sorted(int(r[0]) for r in days):
            done += await self._refresh_span(k, day * DAY_US, (day + 1) * DAY_US)
        return done

    # -- series ids ----------------------------------------------------------------------
    async def _sid_map(self, tenant: str, tags: Sequence[str], create: bool) -> dict[str, int]:
        known = self._sids.setdefault(tenant, {})
        missing = [t for t in set(tags) if t not in known]
        if missing:
            for t in missing:
                if not t or len(t) > MAX_TAG_LEN:
                    raise StoreError(f"tag name must be 1..{MAX_TAG_LEN} characters")
            if create:
                await self._register(tenant, missing)
            rows = await self._fetch(
                f"SELECT tag, sid FROM ts_series WHERE tenant = {self.dialect.p('tenant')}",
                {"tenant": tenant},
            )
            for tag, sid in rows:
                known[str(tag)] = int(sid)
        return {t: known[t] for t in tags if t in known}

    # -- protocol ------------------------------------------------------------------------
    async def write(self, tenant: str, points: Sequence[Point], series: SeriesKind = "raw") -> int:
        """Upsert points (idempotent on tenant, tag, ts); return how many were written."""
        if not points:
            check_series(series)
            return 0
        tags, ts, value, quality, flags = zip(*points, strict=True)
        return await self.write_columns(
            tenant,
            list(tags),
            np.array(ts, np.int64),
            np.array(value, np.float64),
            np.array(quality, np.int16),
            np.array(flags, np.int16),
            series=series,
        )

    async def write_columns(
        self,
        tenant: str,
        tags: Sequence[str],
        ts: I64,
        value: F64,
        quality: I16,
        flags: I16 | None = None,
        *,
        series: SeriesKind = "raw",
    ) -> int:
        """``write`` for points given as columns (one tag name per point)."""
        k = check_series(series)
        if not len(tags):
            return 0
        if flags is None:
            flags = np.zeros(len(tags), np.int16)
        known = self._sids.get(tenant)
        try:
            if known is None:
                raise KeyError(tenant)
            sid = np.fromiter(map(known.__getitem__, tags), np.int32, len(tags))
        except KeyError:
            await self._sid_map(tenant, tags, create=True)
            known = self._sids[tenant]
            sid = np.fromiter(map(known.__getitem__, tags), np.int32, len(tags))
        keep = dedupe_keys(sid, ts)
        if keep is not None:
            sid, ts, value, quality, flags = sid[keep], ts[keep], value[keep], quality[keep], flags[keep]
        await self._merge(k, sid, ts, value, quality, flags)
        return len(sid)

    async def delete(self, tenant: str, tag: str, start: int, end: int, series: SeriesKind = "raw") -> None:
        """Delete one tag's points in [start, end) (rollups follow on the next refresh)."""
        k = check_series(series)
        sid = (await self._sid_map(tenant, [tag], create=False)).get(tag)
        if sid is not None:
            await self._run(sql.delete_range(self.dialect, k), {"sid": sid, "lo": start, "hi": end})

    async def raw(
        self,
        tenant: str,
        tag: str,
        start: int,
        end: int,
        *,
        series: SeriesKind = "raw",
        limit: int | None = None,
    ) -> list[Point]:
        """Points of one tag in [start, end), oldest first."""
        k = check_series(series)
        if limit is not None and limit < 1:
            raise StoreError("limit must be positive")
        sid = (await self._sid_map(tenant, [tag], create=False)).get(tag)
        if sid is None:
            return []
        rows = await self._fetch(
            sql.raw_query(self.dialect, k, limit), {"sid": sid, "lo": int(start), "hi": int(end)}
        )
        return [Point(tag, int(ts), float(v), int(q), int(f)) for ts, v, q, f in rows]

    async def _buckets(
        self,
        tenant: str,
        tags: Sequence[str],
        start: int,
        end: int,
        buckets: int,
        *,
        series: SeriesKind,
        source: Source,
    ) -> tuple[BucketPlan, dict[str, list[Bucket]]]:
        k = check_series(series)
        plan = plan_buckets(int(start), int(end), buckets, source)
        sids = await self._sid_map(tenant, tags, create=False)
        grouped: dict[int, list[sql.Row]] = {sid: [] for sid in sids.values()}
        if sids:
            if plan.source != "raw":
                await self._refresh(k)
            params = self._plan_params(plan, int(end))
            for row in await self._fetch(
                sql.bucket_query(self.dialect, k, plan.source, list(sids.values())), params
            ):
                grouped[int(row[0])].append(row[1:])
        return plan, {
            t: fill_buckets(plan, grouped[sids[t]]) if t in sids else fill_buckets(plan, []) for t in tags
        }

    async def downsample(
        self,
        tenant: str,
        tag: str,
        start: int,
        end: int,
        buckets: int,
        *,
        series: SeriesKind = "raw",
        source: Source = "auto",
    ) -> Downsampled:
        """One tag's [start, end) in ``buckets`` buckets with every aggregate."""
        plan, per_tag = await self._buckets(tenant, [tag], start, end, buckets, series=series, source=source)
        return Downsampled(tag, plan, per_tag[tag])

    async def aligned(
        self,
        tenant: str,
        tags: Sequence[str],
        start: int,
        end: int,
        buckets: int,
        *,
        agg: Agg = "avg",
        series: SeriesKind = "raw",
        source: Source = "auto",
    ) -> Aligned:
        """Several tags downsampled onto one time axis."""
        a = check_agg(agg)
        if not tags:
            raise StoreError("give at least one tag")
        k = check_series(series)
        names = list(dict.fromkeys(tags))
        plan = plan_buckets(int(start), int(end), buckets, source)
        sids = await self._sid_map(tenant, names, create=False)
        values: dict[str, list[float | None]] = {t: [None] * plan.count for t in names}
        if sids:
            by_sid = {sid: values[t] for t, sid in sids.items()}
            if plan.source != "raw":
                await self._refresh(k)
            query = sql.bucket_query(self.dialect, k, plan.source, list(sids.values()), a)
            for sid, idx, v in await self._fetch(query, self._plan_params(plan, int(end))):
                i = int(idx)
                if 0 <= i < plan.count and v is not None:
                    by_sid[int(sid)][i] = float(v)
        times = [plan.origin + i * plan.width for i in range(plan.count)]
        return Aligned(plan, a, times, values)

    @staticmethod
    def _plan_params(plan: BucketPlan, end: int) -> dict[str, int]:
        hi = min(end, plan.end) if plan.source == "raw" else plan.end
        return {"origin": plan.origin, "width": plan.width, "lo": plan.origin, "hi": hi}

    async def latest(
        self, tenant: str, tags: Sequence[str] | None = None, series: SeriesKind = "raw"
    ) -> dict[str, Point]:
        """The newest point of each tag (all tags of the tenant when ``tags`` is None)."""
        k = check_series(series)
        rows = await self._fetch(sql.latest_query(self.dialect, k), {"tenant": tenant})
        out = {str(t): Point(str(t), int(ts), float(v), int(q), int(f)) for t, ts, v, q, f in rows}
        if tags is not None:
            wanted = set(tags)
            out = {t: p for t, p in out.items() if t in wanted}
        return out

    async def tags(self, tenant: str) -> list[str]:
        """Names of every tag the tenant has points for."""
        rows = await self._fetch(
            f"SELECT tag FROM ts_series WHERE tenant = {self.dialect.p('tenant')} ORDER BY tag",
            {"tenant": tenant},
        )
        return [str(r[0]) for r in rows]

    async def refresh_rollups(self) -> int:
        """Recompute rollups of every dirty hour; return how many hours were refreshed."""
        return await self._refresh("raw") + await self._refresh("clean")

    async def set_retention(self, policy: RetentionPolicy) -> None:
        """Create or replace a retention policy."""
        p = self.dialect.p
        await self._run(
            [
                f"""INSERT INTO ts_retention (tenant, tag, raw_keep_us, rollup_keep_us)
                VALUES ({p("tenant")}, {p("tag")}, {p("raw")}, {p("rollup")})
                ON CONFLICT (tenant, tag) DO UPDATE SET raw_keep_us = excluded.raw_keep_us,
                rollup_keep_us = excluded.rollup_keep_us"""
            ],
            {
                "tenant": policy.tenant,
                "tag": policy.tag or "",
                "raw": policy.raw_keep // timedelta(microseconds=1),
                "rollup": policy.rollup_keep // timedelta(microseconds=1),
            },
        )

    async def retention_policies(self, tenant: str) -> list[RetentionPolicy]:
        """The tenant's retention policies."""
        rows = await self._fetch(
            "SELECT tag, raw_keep_us, rollup_keep_us FROM ts_retention "
            f"WHERE tenant = {self.dialect.p('tenant')} ORDER BY tag",
            {"tenant": tenant},
        )
        return [
            RetentionPolicy(
                tenant, timedelta(microseconds=int(r)), timedelta(microseconds=int(u)), str(t) or None
            )
            for t, r, u in rows
        ]

    async def apply_retention(self, now: int | None = None) -> dict[str, int]:
        """Delete what policies say has expired; return rows deleted per table."""
        now_us = int(time.time() * 1_000_000) if now is None else int(now)
        await self.refresh_rollups()  # rollups must hold the data before raw rows go
        out: dict[str, int] = {}
        for k in ("raw", "clean"):
            pairs = sql.retention(self.dialect, k, now_us)
            counts = await self._run([stmt for _, stmt in pairs])
            out.update({table: n for (table, _), n in zip(pairs, counts, strict=True)})
        return out
