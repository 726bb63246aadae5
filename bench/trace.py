"""make bench-trace: genealogy traces and a recall on a large genealogy, beside hand-written SQL.

Builds a genealogy of ``--links`` links in seven levels, with fan-in and fan-out as a plant has
them: supplier lots -> material lots (1-2 each) -> premixes (3 material lots each) -> batches
(2 premixes and a common additive lot each; one additive lot per 100 batches) -> serials (the
batch and a sub-assembly serial of the previous batch each, ``--serials-per-batch`` per batch)
-> pallets (100 serials) -> shipments (10 pallets). Then, on each backend, times backward
traces of depth 6 from random serials and forward traces of depth 6 from random material lots
through the trace app (``traces.trace_json``: the API's JSON answer of the walk, the items and the links
between them, and the walk alone) and through a hand-written recursive query (``UNION ALL`` +
``DISTINCT``, the usual
textbook form) in the same run; and a recall from one additive lot (about 100 000 serials with
their pallets and shipments), with progress. DuckDB has no trace tables in Gongyun (its profile
keeps metadata in SQLite): with ``duckdb`` in ``--backends`` the hand-written query also runs on
the links loaded into DuckDB, as a reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

TENANT = "bench"
HAND_BACK = (
    "WITH RECURSIVE up(id, d) AS (SELECT CAST({root} AS BIGINT), 0 UNION ALL "
    "SELECT l.parent_id, u.d + 1 FROM trace_links l JOIN up u ON l.child_id = u.id WHERE u.d < {depth}) "
    "SELECT DISTINCT id FROM up"
)
HAND_ALL = (
    "WITH RECURSIVE down(id) AS (SELECT CAST({root} AS BIGINT) UNION "
    "SELECT l.child_id FROM trace_links l JOIN down w ON l.parent_id = w.id) "
    "SELECT COUNT(*) FROM down"
)
HAND_FWD = (
    "WITH RECURSIVE down(id, d) AS (SELECT CAST({root} AS BIGINT), 0 UNION ALL "
    "SELECT l.child_id, w.d + 1 FROM trace_links l JOIN down w ON l.parent_id = w.id WHERE w.d < {depth}) "
    "SELECT DISTINCT id FROM down"
)


class Genealogy:
    """Item ids per level and the links, generated from the target link count."""

    def __init__(self, links: int, per_batch: int, seed: int = 7) -> None:
        rnd = random.Random(seed)
        self.per_batch = per_batch
        # links ~ serials * 2.5 (batch, pallet, every other one a sub-assembly) + small
        batches = max(4, int(links // (2.5 * per_batch + 4)))
        self.counts = {
            "supplier": max(2, batches // 4),
            "material": max(3, batches // 2),
            "additive": max(1, batches // 100 + 1),
            "premix": max(2, batches),
            "batch": batches,
            "serial": batches * per_batch,
        }
        self.counts["pallet"] = (self.counts["serial"] + 99) // 100
        self.counts["shipment"] = (self.counts["pallet"] + 9) // 10
        self.first: dict[str, int] = {}
        nxt = 1
        for level in ("supplier", "material", "additive", "premix", "batch", "serial", "pallet", "shipment"):
            self.first[level] = nxt
            nxt += self.counts[level]
        self.total_items = nxt - 1
        self.rnd = rnd
        self.link_estimate = links
        self.link_count = 0

    def ids(self, level: str) -> range:
        """The ids of one level."""
        return range(self.first[level], self.first[level] + self.counts[level])

    def items(self) -> Iterator[tuple[int, str, str, str]]:
        """(id, tenant, kind, key) of every item."""
        kinds = {
            "supplier": "material_lot",
            "material": "material_lot",
            "additive": "material_lot",
            "premix": "batch",
            "batch": "batch",
            "serial": "serial",
            "pallet": "pallet",
            "shipment": "shipment",
        }
        for level, kind in kinds.items():
            for i in self.ids(level):
                yield (i, TENANT, kind, f"own:{level}-{i}")

    def links(self) -> Iterator[tuple[str, int, int, str]]:
        """(tenant, parent, child, kind) of every link."""
        sup, mat, add = self.ids("supplier"), self.ids("material"), self.ids("additive")
        pre, bat, ser = self.ids("premix"), self.ids("batch"), self.ids("serial")
        pal, shp = self.ids("pallet"), self.ids("shipment")
        for j, m in enumerate(mat):
            yield (TENANT, sup[j % len(sup)], m, "consume")
            if j % 2:
                yield (TENANT, sup[(j * 7 + 1) % len(sup)], m, "consume")
        for j, p in enumerate(pre):
            for k in range(3):
                yield (TENANT, mat[(j + k * 17) % len(mat)], p, "consume")
        for j, b in enumerate(bat):
            yield (TENANT, pre[j], b, "consume")
            yield (TENANT, pre[(j + 1) % len(pre)], b, "consume")
            yield (TENANT, add[j // 100], b, "consume")
        n = self.per_batch
        for j, s in enumerate(ser):
            batch = bat[j // n]
            yield (TENANT, batch, s, "assembly")
            if (j // n) % 2 == 1:
                yield (TENANT, ser[j - n], s, "assembly")  # a sub-assembly from the batch before
            yield (TENANT, s, pal[j // 100], "pack")
        for j, p in enumerate(pal):
            yield (TENANT, p, shp[j // 10], "ship")


def progress(label: str) -> Callable[[int, int], None]:
    """A one-line progress display on stderr."""
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        if total <= 0:  # the total is not known yet: the count so far
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(f"\r  {label:<28} {done:,} so far ({rate:,.0f}/s)", end="", file=sys.stderr)
            return
        pct = 100 * done / max(total, 1)
        bar = "#" * int(pct / 5)
        rate = done / max(time.perf_counter() - start, 1e-9)
        end = "\n" if done >= total else ""
        print(
            f"\r  {label:<28} [{bar:<20}] {pct:5.1f}% {done:,}/{total:,} ({rate:,.0f}/s)",
            end=end,
            file=sys.stderr,
        )

    return show


def load_sqlite(path: Path, g: Genealogy) -> float:
    """Create the app's tables (its metadata) and load the genealogy; seconds taken."""
    from sqlalchemy import create_engine

    from gongyun.apps.trace.tables import metadata

    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).isoformat(sep=" ")
    show = progress("sqlite items")
    batch: list[tuple[Any, ...]] = []
    for n, it in enumerate(g.items(), 1):
        batch.append((*it, now))
        if len(batch) == 100_000:
            conn.executemany(
                "INSERT INTO trace_items (id, tenant_id, kind, key, created_at) VALUES (?,?,?,?,?)", batch
            )
            batch.clear()
            show(n, g.total_items)
    conn.executemany(
        "INSERT INTO trace_items (id, tenant_id, kind, key, created_at) VALUES (?,?,?,?,?)", batch
    )
    show(g.total_items, g.total_items)
    show = progress("sqlite links")
    batch = []
    total = 0
    for total, ln in enumerate(g.links(), 1):
        batch.append(ln)
        if len(batch) == 100_000:
            conn.executemany(
                "INSERT INTO trace_links (tenant_id, parent_id, child_id, kind) VALUES (?,?,?,?)", batch
            )
            batch.clear()
            show(total, g.link_estimate)
    conn.executemany("INSERT INTO trace_links (tenant_id, parent_id, child_id, kind) VALUES (?,?,?,?)", batch)
    show(total, total)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    g.link_count = total
    return time.perf_counter() - t0


def load_postgres(url: str, g: Genealogy) -> float:
    """Create the app's tables and COPY the genealogy in; seconds taken."""
    import psycopg
    from sqlalchemy import create_engine

    from gongyun.apps.trace.tables import metadata

    engine = create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        show = progress("postgres items")
        with (
            conn.cursor() as cur,
            cur.copy("COPY trace_items (id, tenant_id, kind, key, created_at, status) FROM STDIN") as cp,
        ):
            for n, it in enumerate(g.items(), 1):
                cp.write_row((*it, now, "active"))
                if n % 200_000 == 0:
                    show(n, g.total_items)
        show(g.total_items, g.total_items)
        show = progress("postgres links")
        total = 0
        with (
            conn.cursor() as cur,
            cur.copy("COPY trace_links (tenant_id, parent_id, child_id, kind) FROM STDIN") as cp,
        ):
            for total, ln in enumerate(g.links(), 1):
                cp.write_row(ln)
                if total % 200_000 == 0:
                    show(total, g.link_estimate)
        show(total, total)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('trace_items', 'id'), (SELECT max(id) FROM trace_items))"
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE trace_links")
        conn.execute("VACUUM ANALYZE trace_items")
    return time.perf_counter() - t0


def median_ms(samples: list[float]) -> float:
    """Median in milliseconds."""
    return statistics.median(samples) * 1000


async def app_traces(url: str, roots: list[int], direction: str, depth: int) -> dict[str, Any]:
    """Times of the app's trace (the API's JSON answer: walk, items, links) and of its walk alone."""
    import orjson
    from sqlalchemy import text

    from gongyun.apps.trace import store, traces
    from gongyun.db import Database

    db = Database(url)
    full: list[float] = []
    walk: list[float] = []
    sizes: list[int] = []
    sql = text(f"{store.walk_sql(direction, True)} SELECT id FROM walk")  # type: ignore[arg-type]
    try:
        async with db.session() as s:
            await traces.trace_json(s, TENANT, roots[0], direction, depth)  # type: ignore[arg-type]  (warm-up)
            for r in roots:
                t0 = time.perf_counter()
                res = await traces.trace_json(s, TENANT, r, direction, depth)  # type: ignore[arg-type]
                answer = res.answer()
                full.append(time.perf_counter() - t0)
                nodes = orjson.loads(answer)["nodes"]
                sizes.append(len(nodes))
                t0 = time.perf_counter()
                got = list(await s.execute(sql, {"root": r, "tenant": TENANT, "depth": depth}))
                walk.append(time.perf_counter() - t0)
                assert {int(x[0]) for x in got} == {n["id"] for n in nodes}
    finally:
        await db.dispose()
    return {
        "app_ms": median_ms(full),
        "app_walk_ms": median_ms(walk),
        "median_items": statistics.median(sizes),
    }


def hand_sqlite(path: Path, roots: list[int], direction: str, depth: int) -> dict[str, Any]:
    """Times of the hand-written query through the sqlite3 module."""
    conn = sqlite3.connect(path)
    tpl = HAND_BACK if direction == "backward" else HAND_FWD
    times = []
    sizes = []
    conn.execute(tpl.format(root=roots[0], depth=depth)).fetchall()
    for r in roots:
        t0 = time.perf_counter()
        rows = conn.execute(tpl.format(root=r, depth=depth)).fetchall()
        times.append(time.perf_counter() - t0)
        sizes.append(len(rows))
    conn.close()
    return {"hand_ms": median_ms(times), "hand_items": statistics.median(sizes)}


def hand_postgres(url: str, roots: list[int], direction: str, depth: int) -> dict[str, Any]:
    """Times of the hand-written query through psycopg."""
    import psycopg

    tpl = HAND_BACK if direction == "backward" else HAND_FWD
    times = []
    sizes = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(tpl.format(root=roots[0], depth=depth)).fetchall()
        for r in roots:
            t0 = time.perf_counter()
            rows = conn.execute(tpl.format(root=r, depth=depth)).fetchall()
            times.append(time.perf_counter() - t0)
            sizes.append(len(rows))
    return {"hand_ms": median_ms(times), "hand_items": statistics.median(sizes)}


def hand_duckdb(sqlite_path: Path, roots: dict[str, list[int]], depth: int) -> dict[str, Any]:
    """The hand-written queries on the links copied into DuckDB (a reference: no app tables there)."""
    import duckdb

    src = sqlite3.connect(sqlite_path)
    con = duckdb.connect()
    con.execute("CREATE TABLE trace_links (parent_id BIGINT, child_id BIGINT)")
    t0 = time.perf_counter()
    cur = src.execute("SELECT parent_id, child_id FROM trace_links")
    while True:
        rows = cur.fetchmany(500_000)
        if not rows:
            break
        import pyarrow as pa

        tbl = pa.table({"parent_id": [r[0] for r in rows], "child_id": [r[1] for r in rows]})
        con.register("chunk", tbl)
        con.execute("INSERT INTO trace_links SELECT * FROM chunk")
        con.unregister("chunk")
    load = time.perf_counter() - t0
    out: dict[str, Any] = {"load_s": load}
    for direction, tpl in (("backward", HAND_BACK), ("forward", HAND_FWD)):
        times = []
        for r in roots[direction]:
            t1 = time.perf_counter()
            con.execute(tpl.format(root=r, depth=depth)).fetchall()
            times.append(time.perf_counter() - t1)
        out[f"{direction}_hand_ms"] = median_ms(times)
    src.close()
    con.close()
    return out


def hand_recall(name: str, url: str, sqlite_path: Path | None, root: int) -> dict[str, Any]:
    """The hand-written recursive query of the recall's items (everything forward, any depth): a
    reference for the app's recall, which also writes the campaign."""
    sql = HAND_ALL.format(root=root)
    t0 = time.perf_counter()
    if name == "sqlite":
        conn = sqlite3.connect(sqlite_path or ":memory:")
        count = conn.execute(sql).fetchone()[0]
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
            row = pg.execute(sql).fetchone()
            assert row is not None
            count = row[0]
    return {"hand_seconds": time.perf_counter() - t0, "hand_items": int(count)}


async def recall(url: str, root: int) -> dict[str, Any]:
    """A recall from ``root`` through the app, with a progress display; seconds and counts."""
    from gongyun.apps.trace import store
    from gongyun.db import Database

    db = Database(url)
    try:
        t0 = time.perf_counter()
        async with db.session() as s:
            out = await store.start_recall(
                s, TENANT, root, "bench recall", progress=progress("recall: items found")
            )
        seconds = time.perf_counter() - t0
    finally:
        await db.dispose()
    return {"seconds": seconds, "affected": out["affected"], "by_kind": out["by_kind"]}


def run_backend(
    name: str, url: str, g: Genealogy, args: argparse.Namespace, sqlite_path: Path | None
) -> dict[str, Any]:
    """Load, trace and recall on one backend."""
    rnd = random.Random(11)
    serials = rnd.sample(list(g.ids("serial")), min(args.samples, g.counts["serial"]))
    materials = rnd.sample(list(g.ids("material")), min(args.samples, g.counts["material"]))
    if name == "sqlite":
        assert sqlite_path is not None
        load = load_sqlite(sqlite_path, g)
    else:
        load = load_postgres(url, g)
    print(
        f"  {name}: loaded {g.total_items:,} items and {g.link_count:,} links in {load:.1f} s",
        file=sys.stderr,
    )
    result: dict[str, Any] = {"load_s": load}
    for direction, roots in (("backward", serials), ("forward", materials)):
        app = asyncio.run(app_traces(url, roots, direction, args.depth))
        hand = (
            hand_sqlite(sqlite_path, roots, direction, args.depth)
            if name == "sqlite" and sqlite_path is not None
            else hand_postgres(url, roots, direction, args.depth)
        )
        assert app["median_items"] == hand["hand_items"], (app, hand)
        result[direction] = {**app, **hand}
        print(
            f"  {name} {direction} depth {args.depth}: app {app['app_ms']:.1f} ms "
            f"(walk {app['app_walk_ms']:.1f} ms), hand-written {hand['hand_ms']:.1f} ms, "
            f"{app['median_items']:,.0f} items (medians of {len(roots)})",
            file=sys.stderr,
        )
    additive = g.first["additive"]
    hand = hand_recall(name, url, sqlite_path, additive)
    result["recall"] = {**asyncio.run(recall(url, additive)), **hand}
    r = result["recall"]
    assert r["affected"] == r["hand_items"], r
    print(
        f"  {name} recall: {r['affected']:,} items ({r['by_kind']}) in {r['seconds']:.2f} s "
        f"(hand-written recursive query of the same items, read only: {r['hand_seconds']:.2f} s)",
        file=sys.stderr,
    )
    return {**result, "roots": {"backward": serials, "forward": materials}}


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--links", type=int, default=10_000_000, help="genealogy links to build (10 M)")
    ap.add_argument("--serials-per-batch", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--samples", type=int, default=20, help="traces per direction")
    ap.add_argument("--backends", default="sqlite,postgres,duckdb")
    args = ap.parse_args()
    g = Genealogy(args.links, args.serials_per_batch)
    print(
        f"trace bench: {g.total_items:,} items, about {args.links:,} links, "
        f"{g.counts['batch']:,} batches x {args.serials_per_batch} serials",
        file=sys.stderr,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gy-bench-trace-") as tmp:
        sqlite_path = Path(tmp) / "trace.db"
        if "sqlite" in args.backends:
            results["sqlite"] = run_backend(
                "sqlite", f"sqlite+aiosqlite:///{sqlite_path}", g, args, sqlite_path
            )
        if "postgres" in args.backends:
            from tests.services import port_open, scratch_postgres_database

            if port_open("127.0.0.1", 5432):
                with scratch_postgres_database() as url:
                    results["postgres"] = run_backend("postgres", url, g, args, None)
            else:
                print("postgres: not running on 127.0.0.1:5432, skipped", file=sys.stderr)
        if "duckdb" in args.backends and "sqlite" in results:
            roots = results["sqlite"]["roots"]
            results["duckdb_reference"] = hand_duckdb(sqlite_path, roots, args.depth)
            d = results["duckdb_reference"]
            print(
                f"  duckdb (hand-written only, links loaded in {d['load_s']:.1f} s): backward "
                f"{d['backward_hand_ms']:.1f} ms, forward {d['forward_hand_ms']:.1f} ms",
                file=sys.stderr,
            )
    for r in results.values():
        r.pop("roots", None)
    (ROOT / "results").mkdir(exist_ok=True)
    summary = {
        "benchmark": "trace",
        "links": g.link_count,
        "items": g.total_items,
        "depth": args.depth,
        "results": results,
    }
    (ROOT / "results" / "trace.json").write_text(json.dumps(summary, indent=2))
    parts = []
    for name in ("sqlite", "postgres"):
        if name in results:
            r = results[name]
            parts.append(
                f"{name}: backward {r['backward']['app_ms']:.1f} ms (hand {r['backward']['hand_ms']:.1f}), "
                f"forward {r['forward']['app_ms']:.1f} ms (hand {r['forward']['hand_ms']:.1f}), "
                f"recall {r['recall']['affected']:,} in {r['recall']['seconds']:.2f} s "
                f"(hand {r['recall']['hand_seconds']:.2f})"
            )
    print(f"trace ({g.link_count:,} links, depth {args.depth}): " + "; ".join(parts))


if __name__ == "__main__":
    main()
