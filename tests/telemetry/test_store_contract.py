"""One contract suite for every time-series store (DuckDB and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from gongyun.telemetry.store import Point, RetentionPolicy, TimeSeriesStore
from gongyun.telemetry.store.base import DAY_US, HOUR_US, MINUTE_US, US, StoreError, to_us

T0 = to_us(datetime(2026, 1, 5, tzinfo=UTC))


def ramp(tag: str, n: int, step_us: int = US, start: int = T0) -> list[Point]:
    """n points with value i at start + i*step."""
    return [Point(tag, start + i * step_us, float(i)) for i in range(n)]


async def test_write_twice_leaves_one_row(store: TimeSeriesStore) -> None:
    pts = ramp("d/a", 100)
    assert await store.write("t1", pts) == 100
    assert await store.write("t1", pts) == 100
    rows = await store.raw("t1", "d/a", T0, T0 + DAY_US)
    assert len(rows) == 100
    assert [p.value for p in rows] == [float(i) for i in range(100)]


async def test_duplicate_in_one_batch_and_last_write_wins(store: TimeSeriesStore) -> None:
    await store.write("t1", [Point("d/a", T0, 1.0), Point("d/a", T0, 2.0), Point("d/a", T0 + 1, 3.0)])
    await store.write("t1", [Point("d/a", T0, 5.0, quality=1)])
    rows = await store.raw("t1", "d/a", T0, T0 + 10)
    assert [(p.ts, p.value, p.quality) for p in rows] == [(T0, 5.0, 1), (T0 + 1, 3.0, 0)]


async def test_tenants_are_isolated(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 5))
    await store.write("t2", [Point("d/a", T0, 42.0)])
    assert [p.value for p in await store.raw("t2", "d/a", T0, T0 + DAY_US)] == [42.0]
    assert len(await store.raw("t1", "d/a", T0, T0 + DAY_US)) == 5
    assert await store.raw("t3", "d/a", T0, T0 + DAY_US) == []
    assert await store.tags("t2") == ["d/a"]
    assert (await store.latest("t2"))["d/a"].value == 42.0


async def test_raw_range_is_half_open_and_limited(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 10))
    rows = await store.raw("t1", "d/a", T0 + 2 * US, T0 + 5 * US)
    assert [p.value for p in rows] == [2.0, 3.0, 4.0]
    assert len(await store.raw("t1", "d/a", T0, T0 + DAY_US, limit=3)) == 3


async def test_out_of_order_writes_sort(store: TimeSeriesStore) -> None:
    await store.write("t1", [Point("d/a", T0 + 3, 3.0), Point("d/a", T0 + 1, 1.0)])
    await store.write("t1", [Point("d/a", T0 + 2, 2.0)])
    assert [p.value for p in await store.raw("t1", "d/a", T0, T0 + 10)] == [1.0, 2.0, 3.0]
    assert (await store.latest("t1", ["d/a"]))["d/a"].ts == T0 + 3


async def test_downsample_raw_all_aggregates(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 100))  # 100 s of 0..99
    res = await store.downsample("t1", "d/a", T0, T0 + 100 * US, 4, source="raw")
    assert res.plan.source == "raw" and res.plan.count == 4 and res.plan.width == 25 * US
    b = res.buckets
    assert [x.count for x in b] == [25, 25, 25, 25]
    assert [x.first for x in b] == [0.0, 25.0, 50.0, 75.0]
    assert [x.last for x in b] == [24.0, 49.0, 74.0, 99.0]
    assert [x.min for x in b] == [0.0, 25.0, 50.0, 75.0]
    assert [x.max for x in b] == [24.0, 49.0, 74.0, 99.0]
    assert b[0].avg == pytest.approx(12.0)


async def test_downsample_empty_buckets_are_none(store: TimeSeriesStore) -> None:
    await store.write("t1", [Point("d/a", T0, 1.0), Point("d/a", T0 + 90 * US, 2.0)])
    res = await store.downsample("t1", "d/a", T0, T0 + 100 * US, 10, source="raw")
    assert [x.count for x in res.buckets] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert res.buckets[1].avg is None and res.buckets[9].last == 2.0
    unknown = await store.downsample("t1", "nope/x", T0, T0 + 100 * US, 10)
    assert all(x.count == 0 for x in unknown.buckets)


async def test_rollups_match_raw(store: TimeSeriesStore) -> None:
    # 3 hours at 10 s: rollups must give exactly what raw gives on the same grid.
    pts = [Point("d/a", T0 + i * 10 * US, math.sin(i / 7) * 10) for i in range(3 * 360)]
    await store.write("t1", pts)
    end = T0 + 3 * HOUR_US
    for source, n in (("1m", 18), ("1h", 3)):
        via_rollup = await store.downsample("t1", "d/a", T0, end, n, source=source)  # type: ignore[arg-type]
        via_raw = await store.downsample("t1", "d/a", T0, end, via_rollup.plan.count, source="raw")
        assert via_rollup.plan.source == source
        assert via_rollup.plan.width == via_raw.plan.width
        for r, w in zip(via_rollup.buckets, via_raw.buckets, strict=True):
            assert (r.start, r.count, r.first, r.last) == (w.start, w.count, w.first, w.last)
            assert r.min == pytest.approx(w.min) and r.max == pytest.approx(w.max)
            assert r.avg == pytest.approx(w.avg)


async def test_auto_uses_rollups_for_long_ranges(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 2 * 24 * 60, step_us=MINUTE_US))
    long = await store.downsample("t1", "d/a", T0, T0 + 2 * DAY_US, 12)
    assert long.plan.source == "1h" and long.plan.width == 4 * HOUR_US
    assert sum(b.count for b in long.buckets) == 2 * 24 * 60
    mid = await store.downsample("t1", "d/a", T0, T0 + DAY_US, 500)
    assert mid.plan.source == "1m" and mid.plan.width == 3 * MINUTE_US and mid.plan.count == 480
    short = await store.downsample("t1", "d/a", T0, T0 + HOUR_US, 60)
    assert short.plan.source == "raw"


async def test_rollups_are_incremental_for_late_data(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 120))
    first = await store.downsample("t1", "d/a", T0, T0 + 4 * MINUTE_US, 2, source="1m")
    assert [b.count for b in first.buckets] == [120, 0]
    await store.write("t1", [Point("d/a", T0 + 150 * US, 1000.0), Point("d/a", T0 + 5 * US, -7.0)])
    again = await store.downsample("t1", "d/a", T0, T0 + 4 * MINUTE_US, 2, source="1m")
    assert [b.count for b in again.buckets] == [120, 1]
    assert again.buckets[0].min == -7.0 and again.buckets[1].max == 1000.0
    assert await store.refresh_rollups() == 0


async def test_backfill_over_days_refreshes_every_hour_once(store: TimeSeriesStore) -> None:
    # 3 days at 5 min across a day boundary each: the refresh runs day by day, every hour once.
    start = T0 - 2 * HOUR_US
    pts = ramp("d/a", 3 * 24 * 12, step_us=5 * MINUTE_US, start=start)
    pts += ramp("d/b", 10, step_us=HOUR_US, start=T0 + DAY_US - 5 * HOUR_US)
    await store.write("t1", pts)
    assert await store.refresh_rollups() == 3 * 24 + 10
    assert await store.refresh_rollups() == 0
    end = start + 3 * DAY_US
    hourly = await store.downsample("t1", "d/a", start, end, 72, source="1h")
    assert [b.count for b in hourly.buckets] == [12] * 72
    assert [b.first for b in hourly.buckets] == [float(12 * i) for i in range(72)]
    daily = await store.aligned("t1", ["d/b"], T0, T0 + 2 * DAY_US, 48, agg="count", source="1h")
    assert daily.values["d/b"] == [None] * 19 + [1.0] * 10 + [None] * 19


async def test_latest_per_tag(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 10) + ramp("d/b", 3))
    latest = await store.latest("t1")
    assert {t: p.value for t, p in latest.items()} == {"d/a": 9.0, "d/b": 2.0}
    assert set(await store.latest("t1", ["d/b", "zz/z"])) == {"d/b"}


async def test_aligned_tags_share_one_axis(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 60) + ramp("d/b", 30, start=T0 + 30 * US))
    al = await store.aligned("t1", ["d/a", "d/b", "d/none"], T0, T0 + 60 * US, 3, agg="max", source="raw")
    assert al.times == [T0, T0 + 20 * US, T0 + 40 * US]
    assert al.values["d/a"] == [19.0, 39.0, 59.0]
    assert al.values["d/b"] == [None, 9.0, 29.0]
    assert al.values["d/none"] == [None, None, None]
    cnt = await store.aligned("t1", ["d/a"], T0, T0 + 60 * US, 3, agg="count", source="raw")
    assert cnt.values["d/a"] == [20.0, 20.0, 20.0]


async def test_clean_series_is_separate(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 5))
    await store.write("t1", [Point("d/a", T0, 9.0, flags=1)], series="clean")
    assert len(await store.raw("t1", "d/a", T0, T0 + DAY_US)) == 5
    clean = await store.raw("t1", "d/a", T0, T0 + DAY_US, series="clean")
    assert [(p.value, p.flags) for p in clean] == [(9.0, 1)]


async def test_retention_keeps_rollups_longer(store: TimeSeriesStore) -> None:
    now = T0 + 10 * DAY_US
    await store.write("t1", ramp("d/a", 10 * 24, step_us=HOUR_US) + ramp("d/b", 10 * 24, step_us=HOUR_US))
    await store.write("t2", ramp("d/a", 10 * 24, step_us=HOUR_US))
    await store.set_retention(RetentionPolicy("t1", timedelta(days=2), timedelta(days=5)))
    await store.set_retention(RetentionPolicy("t1", timedelta(days=7), timedelta(days=7), tag="d/b"))
    assert len(await store.retention_policies("t1")) == 2
    await store.apply_retention(now)
    a = await store.raw("t1", "d/a", 0, now)
    assert len(a) == 48 and a[0].ts == now - 2 * DAY_US
    assert len(await store.raw("t1", "d/b", 0, now)) == 7 * 24
    assert len(await store.raw("t2", "d/a", 0, now)) == 240  # no policy: kept
    hourly = await store.downsample("t1", "d/a", T0, now, 10, source="1h")
    assert [b.count for b in hourly.buckets] == [0] * 5 + [24] * 5


async def test_delete_range_updates_latest_and_rollups(store: TimeSeriesStore) -> None:
    await store.write("t1", ramp("d/a", 120))
    await store.delete("t1", "d/a", T0 + 60 * US, T0 + 120 * US)
    assert (await store.latest("t1"))["d/a"].value == 59.0
    res = await store.downsample("t1", "d/a", T0, T0 + 2 * MINUTE_US, 2, source="1m")
    assert [b.count for b in res.buckets] == [60, 0]


async def test_bad_queries_raise_store_error(store: TimeSeriesStore) -> None:
    with pytest.raises(StoreError):
        await store.downsample("t1", "d/a", T0, T0, 10)
    with pytest.raises(StoreError):
        await store.downsample("t1", "d/a", T0, T0 + 10, 0)
    with pytest.raises(StoreError):
        await store.aligned("t1", ["d/a"], T0, T0 + 10, 1, agg="median")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.raw("t1", "d/a", T0, T0 + 10, series="cooked")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.write("t1", [Point("", T0, 1.0)])
    with pytest.raises(StoreError):
        RetentionPolicy("t1", timedelta(days=5), timedelta(days=1))


def test_duckdb_file_held_by_another_process_is_a_clear_error(tmp_path: object) -> None:
    import subprocess
    import sys
    import textwrap

    from gongyun.errors import ServiceUnavailable

    path = f"{tmp_path}/held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            c = duckdb.connect({path!r}); print("ok", flush=True); sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        import asyncio

        from gongyun.telemetry.store import open_store

        with pytest.raises(ServiceUnavailable):
            asyncio.run(open_store(f"duckdb://{path}").open())
    finally:
        holder.kill()
        holder.wait()


async def test_write_after_rollup_refresh_and_interleaved_reads(store: TimeSeriesStore) -> None:
    """Regression: a refresh must leave the connection ready for the next write (DuckDB)."""
    for round_ in range(3):
        base = T0 + round_ * 3_600_000_000
        pts = [Point("d/r", base + i * 1_000_000, float(i)) for i in range(50)]
        assert await store.write("t1", pts) == 50
        assert await store.refresh_rollups() >= 1
        assert await store.write("t1", [Point("d/r", base + 3_000_000_000, 1.0)]) == 1
        assert len(await store.raw("t1", "d/r", base, base + 3_600_000_000)) == 51
