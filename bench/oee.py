"""bench/oee: a month of OEE at 1 Hz for 100 machines from the store, beside hand-written SQL.

Loads MACHINES machines x DAYS days into each store (DuckDB file, PostgreSQL scratch database):
a running flag at 1 Hz (stops of 10-14 min every 4 h and a 45 s micro-stop every hour, at
offsets that are not minute-aligned) and good/scrap counters once a minute; builds the rollups
with the store's own refresh; then times, for a day shift 08:00-20:00 (lunch 12-13, dinner
17-18) and a night shift 20:00-08:00 (meal 00-01), the usual two-shift pattern of many plants:

  app   gongyun.apps.oee: per machine, the state timeline from 1 h rollups (refined to 1 min and
        raw only where mixed), counters from rollups, A/P/Q/OEE and KPIs per shift
  sql   one hand-written SQL query of the same per-machine, per-shift running seconds, covered
        seconds and good and scrap counts, from the raw points table

and checks both give the same running time and counts for every machine and shift. The default
is the issue's size, 100 machines x 30 days (259 M state points; loading PostgreSQL takes long);
``--machines 5 --days 2`` for a quick run.

    .venv/bin/python bench/oee.py [--machines 100] [--days 30] [--stores duckdb,postgres]
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

from gongyun.apps.oee.domain.calendar import ShiftCalendar
from gongyun.apps.oee.domain.machine import MachineSpec, PeriodResult, machine_periods
from gongyun.apps.oee.domain.rollup import ReadStats, counter_from_rollups, timeline_from_rollups
from gongyun.apps.oee.domain.states import StateMapping
from gongyun.apps.oee.storeio import StoreReader
from gongyun.telemetry.store.base import DAY_US, HOUR_US, US
from gongyun.telemetry.store.common import SqlStore
from storeload import Generated, load_generated, scratch_stores

TENANT = "bench"
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * US
SHIFT_US = 12 * HOUR_US
ORIGIN = T0 - 4 * HOUR_US  # two 12 h shifts: night from 20:00 (even index), day from 08:00 (odd)
REPEAT = 3
CALENDAR = {
    "tz": "UTC",
    "shifts": [
        {
            "name": "D",
            "start": "08:00",
            "end": "20:00",
            "breaks": [
                {"start": "12:00", "end": "13:00", "reason": "lunch"},
                {"start": "17:00", "end": "18:00", "reason": "dinner"},
            ],
        },
        {"name": "N", "start": "20:00", "end": "08:00", "breaks": [{"start": "00:00", "end": "01:00"}]},
    ],
}


def running_sql(m: int) -> str:
    """The running flag of machine m at second g.i."""
    return (
        f"CASE WHEN ((g.i + {m * 977}) % 14400) < {600 + (m % 5) * 60} "
        f"OR ((g.i + {m * 131}) % 3600) < 45 THEN 0 ELSE 1 END"
    )


async def load(store: SqlStore, machines: int, days: int) -> tuple[float, float]:
    """Generate the running flags (1 Hz) and counters (once a minute), build the rollups."""
    names = [f"m{m:03d}/{t}" for m in range(machines) for t in ("running", "good", "scrap")]
    sids = await store._sid_map(TENANT, names, create=True)
    series = []
    for m in range(machines):
        series.append(Generated(sids[f"m{m:03d}/running"], running_sql(m)))
        for tag, rate in (("good", 50 + m % 10), ("scrap", 0.5 + 0.1 * (m % 3))):
            series.append(Generated(sids[f"m{m:03d}/{tag}"], f"floor(g.i * {rate})", 60 * US))
    return await load_generated(store, TENANT, T0, days, series)


async def app_oee(
    store: SqlStore, machines: int, days: int, stats: ReadStats
) -> dict[str, list[PeriodResult]]:
    """The app's computation: every machine, every shift, from rollups."""
    reader = StoreReader(store, TENANT)
    end = T0 + days * DAY_US
    cal = ShiftCalendar.parse(CALENDAR)
    insts = cal.instances(T0, end)
    edges = [x for i in insts for w in i.busy_windows() for x in w]
    out = {}
    for m in range(machines):
        name = f"m{m:03d}"
        mapping = StateMapping.parse({"mode": "running_flag", "tag": f"{name}/running"})
        timeline = await timeline_from_rollups(reader, mapping, T0, end, stats, edges)
        good = await counter_from_rollups(reader, f"{name}/good", T0, end, edges, stats)
        scrap = await counter_from_rollups(reader, f"{name}/scrap", T0, end, edges, stats)
        out[name] = machine_periods(MachineSpec(name, 1.0), timeline, good, scrap, insts, "shift")
    return out


def hand_sql(kind: str, sids: dict[str, int], days: int) -> str:
    """Per machine and shift: running seconds, covered seconds, good and scrap increments."""
    div = "//" if kind == "duckdb" else "/"
    lo, hi = T0, T0 + days * DAY_US
    run_ids = ", ".join(str(v) for k, v in sids.items() if k.endswith("/running"))
    cnt_ids = ", ".join(str(v) for k, v in sids.items() if not k.endswith("/running"))
    off, idx = f"((ts - {ORIGIN}) % {SHIFT_US})", f"((ts - {ORIGIN}) {div} {SHIFT_US})"
    h = HOUR_US
    busy = (
        f"NOT ({off} >= {4 * h} AND {off} < {5 * h}) "
        f"AND NOT ({idx} % 2 = 1 AND {off} >= {9 * h} AND {off} < {10 * h})"
    )
    return (
        "WITH s AS ("
        f" SELECT sid, (ts - {ORIGIN}) {div} {SHIFT_US} AS shift, sum(CASE WHEN value <> 0 THEN 1 ELSE 0 END)"
        " AS running, count(*) AS covered, 0 AS inc"
        f" FROM ts_raw_points WHERE sid IN ({run_ids}) AND ts >= {lo} AND ts < {hi} AND {busy}"
        " GROUP BY sid, shift"
        "), c AS ("
        " SELECT sid, ts, value - lag(value) OVER (PARTITION BY sid ORDER BY ts) AS d"
        f" FROM ts_raw_points WHERE sid IN ({cnt_ids}) AND ts >= {lo} AND ts < {hi}"
        ") "
        "SELECT sid, shift, running, covered, inc FROM s UNION ALL "
        f"SELECT sid, (ts - {ORIGIN}) {div} {SHIFT_US} AS shift, 0, 0, sum(d) FROM c "
        f"WHERE d IS NOT NULL AND {busy}"
        " GROUP BY sid, shift ORDER BY 1, 2"
    )


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    """Median seconds of REPEAT runs after one warm-up."""
    await fn()
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        await fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def compare(app: dict[str, list[PeriodResult]], rows: list[Any], sids: dict[str, int]) -> int:
    """How many (machine, shift) values differ between the app and the SQL."""
    by_sid = {v: k for k, v in sids.items()}
    sql: dict[tuple[str, int], float] = {}
    for sid, shift, running, _covered, inc in rows:
        tag = by_sid[int(sid)]
        machine, what = tag.split("/")
        key = (f"{machine}/{what}", int(shift))
        sql[key] = sql.get(key, 0.0) + float(running if what == "running" else inc)
    bad = 0
    for machine, periods in app.items():
        for p in periods:
            shift = (p.start - ORIGIN) // SHIFT_US
            for what, value in (("running", p.te.apt), ("good", p.q.good), ("scrap", p.q.scrap)):
                if abs(sql.get((f"{machine}/{what}", shift), 0.0) - value) > 1e-6:
                    bad += 1
    return bad


async def bench_store(kind: str, store: SqlStore, args: argparse.Namespace) -> dict[str, Any]:
    """Load one store and time the app and the SQL."""
    load_s, rollup_s = await load(store, args.machines, args.days)
    names = [f"m{m:03d}/{t}" for m in range(args.machines) for t in ("running", "good", "scrap")]
    sids = await store._sid_map(TENANT, names, create=False)
    stats = ReadStats()
    app = await app_oee(store, args.machines, args.days, stats)
    app_s = await timed(lambda: app_oee(store, args.machines, args.days, ReadStats()))
    one_s = await timed(lambda: app_oee(store, 1, args.days, ReadStats()))
    query = hand_sql(kind, sids, args.days)
    rows = await store.execute_sql(query)  # type: ignore[attr-defined]
    sql_s = await timed(lambda: store.execute_sql(query))  # type: ignore[attr-defined]
    mismatches = compare(app, rows, sids)
    check = await store.execute_sql("SELECT count(*) FROM ts_raw_points")  # type: ignore[attr-defined]
    oee = [p.kpi.oee for ps in app.values() for p in ps if p.kpi.oee is not None]
    return {
        "store": kind,
        "points": int(check[0][0]),
        "load_s": round(load_s, 1),
        "rollup_s": round(rollup_s, 1),
        "app_s": round(app_s, 3),
        "one_machine_s": round(one_s, 3),
        "sql_s": round(sql_s, 3),
        "ratio_sql_over_app": round(sql_s / app_s, 2),
        "mismatches": mismatches,
        "shifts": sum(len(ps) for ps in app.values()),
        "mean_oee": round(statistics.fmean(oee), 4) if oee else None,
        "reads": vars(stats),
    }


def save(args: argparse.Namespace, size: int, results: list[dict[str, Any]]) -> None:
    """Write bench/results/oee.json."""
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    out.joinpath("oee.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "state_points": size,
                "results": results,
                "at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--days", type=int, default=30, help="days (30: the issue's size; 2: quick)")
    ap.add_argument("--stores", default="duckdb,postgres")
    args = ap.parse_args()
    size = args.machines * args.days * 86400
    print(
        f"oee bench: {args.machines} machines x {args.days} days at 1 Hz = {size:,} state points", flush=True
    )
    results = []
    async for kind, store in scratch_stores(args.stores.split(","), "gyoee-"):
        results.append(await bench_store(kind, store, args))
        r = results[-1]
        print(
            f"  {r['store']:8}: {r['points']:,} points loaded in {r['load_s']} s, "
            f"rollups {r['rollup_s']} s; app {r['app_s']:.3f} s ({r['shifts']} machine-shifts; "
            f"one machine {r['one_machine_s']:.3f} s; "
            f"{r['reads']['hour_rows']} hour, {r['reads']['minute_rows']} minute rows, "
            f"{r['reads']['raw_points']} raw points read) vs SQL {r['sql_s']:.3f} s; "
            f"{r['mismatches']} mismatches",
            flush=True,
        )
        save(args, size, results)  # after each store, so a long run keeps what it has measured
    parts = [
        f"{r['store']} app {r['app_s']:.2f} s vs SQL {r['sql_s']:.2f} s (x{r['ratio_sql_over_app']:.2f}, "
        f"{r['mismatches']} mismatches)"
        for r in results
    ]
    print(
        f"oee: {size:,} state points ({args.machines} machines x {args.days} d @ 1 Hz): " + "; ".join(parts)
    )
    if any(r["mismatches"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
