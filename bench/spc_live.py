"""bench/spc_live: a live control chart over a month of 1 Hz data, per subgrouping, per store.

Loads one measured tag at 1 Hz for DAYS days (2.59 M points for 30 days), a lot tag (a new lot
every 20 s) and a second tag at 0.1 Hz into each store (bench/storeload.py), builds the rollups,
then times what ``GET /charts/{id}/data`` does for the whole window (the quality service's chart
read, phase I preview limits, all rules, the JSON the console draws), median of REPEAT runs after
a warm-up:

  count   X-bar R, subgroups of 5 by count   (bounded: newest 20,000 raw points, rest summarised)
  lot     X-bar S, one subgroup per lot      (bounded likewise)
  minute  X-bar R, 1 min windows of a second tag at 0.1 Hz (from the 1 min rollups; the newest
          4,000 windows, the rest summarised)

and, once each, the same charts read unbounded (every raw point or every window), as they were
read before the bound (``--skip-unbounded`` leaves that out).

    .venv/bin/python bench/spc_live.py [--days 30] [--stores duckdb,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.apps.quality import service
from gongyun.apps.quality.spc import ChartKind, RuleSet, evaluate, phase1
from gongyun.apps.quality.window import LIVE_POINTS
from gongyun.telemetry.store.base import US
from gongyun.telemetry.store.common import SqlStore
from storeload import Generated, load_generated, scratch_stores

TENANT = "bench"
START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = int(START.timestamp()) * US
REPEAT = 3
CHARTS: dict[str, dict[str, Any]] = {
    "count": {"kind": "xbar_r", "subgroup": {"by": "count", "size": 5}},
    "lot": {"kind": "xbar_s", "subgroup": {"by": "lot", "lot_tag": "packer/lot"}},
    "minute": {"kind": "xbar_r", "tag": "packer/seal_temp", "subgroup": {"by": "time", "window_s": 60}},
}


class StoreServices:
    """The one app service a tag chart reads through: the time-series store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store


async def chart_view(services: Any, name: str, days: int, bound: int | None) -> dict[str, Any]:
    """What the chart data route computes for the whole window (preview limits, all rules)."""
    chart = {
        "id": name,
        "name": name,
        "source": "tag",
        "tag": "packer/fill_weight",
        "characteristic": None,
        "rules": ["N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8"],
        "params": {},
        "spec": {},
        **CHARTS[name],
    }
    end = START + timedelta(days=days)
    data, times, left = await service.chart_data(None, services, TENANT, chart, START, end, max_points=bound)  # type: ignore[arg-type]
    lim = phase1(ChartKind(chart["kind"]), data)
    res = evaluate(lim, data, RuleSet.of(chart["rules"]))
    return service.result_json(chart, res, times, lim, True, left)


async def timed(fn: Any) -> float:
    """Median seconds of REPEAT runs after one warm-up."""
    await fn()
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        await fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


async def bench_store(kind: str, store: SqlStore, days: int, unbounded: bool) -> dict[str, Any]:
    """Load one store, time each chart bounded and, once, unbounded."""
    sids = await store._sid_map(TENANT, ["packer/fill_weight", "packer/lot", "packer/seal_temp"], create=True)
    load_s, rollup_s = await load_generated(
        store,
        TENANT,
        T0,
        days,
        [
            Generated(
                sids["packer/fill_weight"],
                "500 + 0.5 * sin(g.i / 977.0) + ((g.i::bigint * 7919) % 1000) / 500.0",
            ),
            Generated(sids["packer/lot"], "1000 + g.i", 20 * US),
            Generated(sids["packer/seal_temp"], "180 + ((g.i::bigint * 7919) % 1000) / 250.0", 10 * US),
        ],
    )
    services = StoreServices(store)
    out: dict[str, Any] = {"store": kind, "load_s": round(load_s, 1), "rollup_s": round(rollup_s, 1)}
    for name in CHARTS:
        view = await chart_view(services, name, days, LIVE_POINTS)
        out[name] = {
            "live_s": round(await timed(lambda n=name: chart_view(services, n, days, LIVE_POINTS)), 3),
            "points_drawn": len(view["primary"]["points"]),
            "left_out": view["left_out"],
        }
        if unbounded:
            t = time.perf_counter()
            full = await chart_view(services, name, days, None)
            out[name]["unbounded_s"] = round(time.perf_counter() - t, 3)
            out[name]["unbounded_points"] = len(full["primary"]["points"])
            assert full["keys"][-len(view["keys"]) :] == view["keys"], (
                "the bounded tail differs from the full read"
            )
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--stores", default="duckdb,postgres")
    ap.add_argument("--skip-unbounded", action="store_true", help="time only the bounded live reads")
    args = ap.parse_args()
    print(f"spc live: one tag at 1 Hz for {args.days} days = {args.days * 86400:,} points", flush=True)
    results = []
    async for kind, store in scratch_stores(args.stores.split(","), "gyspc-"):
        r = await bench_store(kind, store, args.days, not args.skip_unbounded)
        results.append(r)
        parts = []
        for name in CHARTS:
            c = r[name]
            extra = f", unbounded {c['unbounded_s']:.2f} s" if "unbounded_s" in c else ""
            parts.append(f"{name} {c['live_s']:.3f} s ({c['points_drawn']} subgroups drawn{extra})")
        print(
            f"  {kind:8}: loaded in {r['load_s']} s, rollups {r['rollup_s']} s; " + "; ".join(parts),
            flush=True,
        )
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    out.joinpath("spc_live.json").write_text(
        json.dumps({"args": vars(args), "results": results, "at": datetime.now(UTC).isoformat()}, indent=2)
    )


if __name__ == "__main__":
    asyncio.run(main())
