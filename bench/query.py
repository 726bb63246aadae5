"""bench/query: downsampling latency on each store, beside the same query written by hand in SQL.

Loads TAGS tags x DAYS days at HZ into each store (DuckDB file, PostgreSQL scratch database),
builds the rollups with the store's own incremental refresh, then times:

  Q1  one tag's whole range into 1,000 buckets, every aggregate   (store.downsample, auto source)
  Q2  all tags' last day into 500 buckets each, the average        (store.aligned, auto source)

each beside a hand-written SQL query computing the same buckets from the raw points table.
The default is the issue's size, 100 tags x 30 days at 1 Hz (259 M points, about 25 minutes
and 25 GB on PostgreSQL); ``--days 1`` for a quick run. The size that ran is printed.

    .venv/bin/python bench/query.py [--tags 100] [--days 1] [--hz 1] [--stores duckdb,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.telemetry.store import open_store
from gongyun.telemetry.store.base import DAY_US, HOUR_US, US, plan_buckets
from gongyun.telemetry.store.common import SqlStore

ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT = "bench"
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * US
REPEAT = 5


async def load(store: SqlStore, tags: int, days: int, hz: int) -> tuple[list[str], float, float]:
    """Generate the points inside the database, mark their hours dirty, build the rollups."""
    names = [f"line{i // 10}/sensor{i % 10}" for i in range(tags)]
    sids = await store._sid_map(TENANT, names, create=True)
    step = US // hz
    per_tag = days * 86400 * hz
    t = time.perf_counter()
    pg = store.kind == "postgres"
    for day in range(days):
        if pg:
            await store._ensure_partitions("raw", {(T0 + day * DAY_US) // DAY_US})  # type: ignore[attr-defined]
        lo, hi = day * 86400 * hz, min(per_tag, (day + 1) * 86400 * hz)
        for name in names:
            sid = sids[name]
            gen = f"generate_series({lo}, {hi - 1})" if pg else f"range({lo}, {hi})"
            await store._run(
                [
                    "INSERT INTO ts_raw_points (sid, ts, value, quality, flags) "
                    f"SELECT {sid}, {T0} + g.i::bigint * {step}, {sid} + 10 * sin(g.i / 600.0), 0, 0 "
                    f"FROM {gen} AS g(i)"
                ]
            )
    hours = per_tag * step // HOUR_US + 1
    gen_h = f"generate_series(0, {hours - 1})" if pg else f"range(0, {hours})"
    await store._run(
        [
            f"INSERT INTO ts_raw_dirty (sid, hour, gen) SELECT s.sid, {T0} + h.i::bigint * {HOUR_US}, 0 "
            f"FROM ts_series s, {gen_h} AS h(i) WHERE s.tenant = '{TENANT}'"
        ]
    )
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    await store.refresh_rollups()
    return names, loaded, time.perf_counter() - t


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    """Median latency (ms) of REPEAT runs after one warm-up."""
    await fn()
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        await fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def hand_sql(kind: str, sids: list[int], origin: int, width: int, lo: int, hi: int, *, all_aggs: bool) -> str:
    """The same buckets written by hand against the raw points table (every aggregate, or avg)."""
    div = "//" if kind == "duckdb" else "/"
    first = "arg_min(value, ts)" if kind == "duckdb" else "(array_agg(value ORDER BY ts))[1]"
    last = "arg_max(value, ts)" if kind == "duckdb" else "(array_agg(value ORDER BY ts DESC))[1]"
    aggs = f"count(*), avg(value), min(value), max(value), {first}, {last}" if all_aggs else "avg(value)"
    return (
        f"SELECT sid, (ts - {origin}) {div} {width} AS b, {aggs} FROM ts_raw_points "
        f"WHERE sid IN ({', '.join(map(str, sids))}) AND ts >= {lo} AND ts < {hi} "
        "GROUP BY sid, b ORDER BY sid, b"
    )


async def bench_store(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load one store and time both queries and their references."""
    store = open_store(url)
    assert isinstance(store, SqlStore)
    await store.open()
    try:
        names, load_s, rollup_s = await load(store, args.tags, args.days, args.hz)
        end = T0 + args.days * DAY_US
        sids = await store._sid_map(TENANT, names, create=False)
        one = names[0]
        q1 = await store.downsample(TENANT, one, T0, end, 1000)
        q1_ms = await timed(lambda: store.downsample(TENANT, one, T0, end, 1000))
        p1 = plan_buckets(T0, end, 1000, "raw")
        r1 = hand_sql(kind, [sids[one]], p1.origin, p1.width, T0, end, all_aggs=True)
        r1_ms = await timed(lambda: store.execute_sql(r1))  # type: ignore[attr-defined]
        day0 = end - DAY_US
        q2 = await store.aligned(TENANT, names, day0, end, 500)
        q2_ms = await timed(lambda: store.aligned(TENANT, names, day0, end, 500))
        p2 = plan_buckets(day0, end, 500, "raw")
        r2 = hand_sql(kind, [sids[n] for n in names], p2.origin, p2.width, day0, end, all_aggs=False)
        r2_ms = await timed(lambda: store.execute_sql(r2))  # type: ignore[attr-defined]
        check = await store.execute_sql("SELECT count(*) FROM ts_raw_points")  # type: ignore[attr-defined]
        return {
            "store": kind,
            "points": int(check[0][0]),
            "load_s": round(load_s, 1),
            "rollup_s": round(rollup_s, 1),
            "q1_ms": q1_ms,
            "q1_ref_ms": r1_ms,
            "q1_source": q1.plan.source,
            "q1_buckets": q1.plan.count,
            "q2_ms": q2_ms,
            "q2_ref_ms": r2_ms,
            "q2_source": q2.plan.source,
            "q2_buckets": q2.plan.count,
        }
    finally:
        await store.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--days", type=int, default=30, help="days (30: the issue's size; 1: quick)")
    ap.add_argument("--hz", type=int, default=1)
    ap.add_argument("--stores", default="duckdb,postgres")
    args = ap.parse_args()
    size = args.tags * args.days * 86400 * args.hz
    print(
        f"query bench: {args.tags} tags x {args.days} days at {args.hz} Hz = {size:,} points per store",
        flush=True,
    )
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="gyquery-"))
    try:
        for kind in args.stores.split(","):
            if kind == "duckdb":
                results.append(await bench_store(kind, f"duckdb://{tmp / 'q.duckdb'}", args))
            else:
                db = f"gy_bench_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                    c.execute(f'CREATE DATABASE "{db}"')
                try:
                    results.append(await bench_store(kind, ADMIN_DSN.rsplit("/", 1)[0] + f"/{db}", args))
                finally:
                    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            r = results[-1]
            print(
                f"  {r['store']:8}: {r['points']:,} points loaded in {r['load_s']} s, "
                f"rollups {r['rollup_s']} s; Q1 {r['q1_ms']:.1f} ms "
                f"({r['q1_source']}, {r['q1_buckets']} buckets) "
                f"vs SQL {r['q1_ref_ms']:.1f} ms; Q2 {r['q2_ms']:.1f} ms ({r['q2_source']}, "
                f"{r['q2_buckets']} buckets) vs SQL {r['q2_ref_ms']:.1f} ms",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("query.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "points_per_store": size,
                "results": results,
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    parts = [
        f"{r['store']} Q1 {r['q1_ms']:.1f} ms (SQL {r['q1_ref_ms']:.1f}), Q2 {r['q2_ms']:.1f} ms "
        f"(SQL {r['q2_ref_ms']:.1f})"
        for r in results
    ]
    print(f"query: {size:,} points ({args.tags} tags x {args.days} d @ {args.hz} Hz): " + "; ".join(parts))


if __name__ == "__main__":
    asyncio.run(main())
