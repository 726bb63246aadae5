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
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.telemetry.store.base import DAY_US, US, plan_buckets
from gongyun.telemetry.store.common import SqlStore
from storeload import Generated, load_generated, scratch_stores

TENANT = "bench"
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * US
REPEAT = 5


async def load(store: SqlStore, tags: int, days: int, hz: int) -> tuple[list[str], float, float]:
    """Generate the points inside the database, mark their hours dirty, build the rollups."""
    names = [f"line{i // 10}/sensor{i % 10}" for i in range(tags)]
    sids = await store._sid_map(TENANT, names, create=True)
    series = [Generated(sids[n], f"{sids[n]} + 10 * sin(g.i / 600.0)", US // hz) for n in names]
    loaded, rolled = await load_generated(store, TENANT, T0, days, series)
    return names, loaded, rolled


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


async def bench_store(kind: str, store: SqlStore, args: argparse.Namespace) -> dict[str, Any]:
    """Load one store and time both queries and their references."""
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
    async for kind, store in scratch_stores(args.stores.split(","), "gyquery-"):
        results.append(await bench_store(kind, store, args))
        r = results[-1]
        print(
            f"  {r['store']:8}: {r['points']:,} points loaded in {r['load_s']} s, "
            f"rollups {r['rollup_s']} s; Q1 {r['q1_ms']:.1f} ms "
            f"({r['q1_source']}, {r['q1_buckets']} buckets) "
            f"vs SQL {r['q1_ref_ms']:.1f} ms; Q2 {r['q2_ms']:.1f} ms ({r['q2_source']}, "
            f"{r['q2_buckets']} buckets) vs SQL {r['q2_ref_ms']:.1f} ms",
            flush=True,
        )
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
