"""bench-registry: bulk import and resolution of the identifier registry at scale.

For each backend (SQLite, PostgreSQL) in the same run:

* the anchor: the raw driver (psycopg ``COPY`` / sqlite3 ``executemany``) loading N records,
  encoded beforehand outside the timer, into a fresh database with the very same table layout
  (the registry's migrated ``idres_records`` and ``idres_values`` with all their indexes);
* Gongyun's bulk import (``gongyun.idres.bulk.import_records``) of the same N records into
  another fresh database: every record parsed, validated (values, prefix, template) and
  encoded, existing identifiers skipped, one transaction (its input, the records as a caller
  hands them over, is built outside the timer as the anchor's rows are: see ``Input``);
* resolution on the imported registry: p50/p99 of the node's read (``Registry.get_raw``, one
  primary-key look-up) for random identifiers, the query plan of that read (EXPLAIN), the
  cost of a keyset page of the prefix listing deep into the registry and of exact reverse
  look-ups (``Registry.reverse_page``) of random values;
* on PostgreSQL, a node's memory (``gongyun idnode``, one worker, ``--node-cache`` records)
  sampled every ``--node-seconds`` (until it served five times its cache) while wrk resolves random
  identifiers of the whole registry: once the distinct identifiers served outnumber the cache,
  memory must stay level (bounded by the cache, not by the registry).

The size of each imported registry (tables and indexes, bytes per identifier) is reported too.
``--count`` sets N (default 1,000,000; ``--count 100000000`` is run by hand: at the 1.16 kB per
identifier measured on PostgreSQL that is about 116 GB, and the run refuses to start when the
server's disk, or the ``--tablespace`` given, has less free; the anchor's database is dropped
before the import's is filled).
Above 2 million records the input is generated as it is consumed, so memory stays flat. Writes
bench/results/registry.json and prints one summary line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))
sys.path.insert(0, str(ROOT.parent))

from gongyun.db import Database, upgrade  # noqa: E402
from gongyun.idres import prefixes as pfx  # noqa: E402
from gongyun.idres.bulk import _encode, _stamp, import_records  # noqa: E402
from gongyun.idres.bulk_write import REC_COLS, VAL_COLS  # noqa: E402
from gongyun.idres.pgread import PointReader  # noqa: E402
from gongyun.idres.registry import Registry  # noqa: E402
from gongyun.idres.syntax import Handle  # noqa: E402
from gongyun.idres.values import HandleValue  # noqa: E402

PREFIX = "88.100.2"
TENANT = "default"
CHUNK = 20_000


# one registration time for every value (a real import stamps them as they are read)
TIMESTAMP = datetime.now(UTC).replace(microsecond=0)
_TS = TIMESTAMP.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int) -> tuple[str, list[HandleValue]]:
    """The i-th benchmark record (a URL and a lot number, as a plant registers them)."""
    return (
        f"{PREFIX}/LOT-{i:09d}",
        [
            HandleValue(1, "URL", "string", f"https://plant.example/lots/{i}", timestamp=TIMESTAMP),
            HandleValue(2, "GY_LOT", "string", f"L{i:09d}", timestamp=TIMESTAMP),
        ],
    )


def anchor_rows(i: int, stamp: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The table rows of ``record(i)``, written out directly (the 100-million-record anchor would
    otherwise spend half an hour in the product's encoder); ``encoded_chunks`` checks them."""
    norm = f"{PREFIX}/LOT-{i:09d}"
    url, lot = f"https://plant.example/lots/{i}", f"L{i:09d}"
    body = (
        f'[{{"index":1,"type":"URL","data":{{"format":"string","value":"{url}"}},"ttl":86400,'
        f'"timestamp":"{_TS}"}},{{"index":2,"type":"GY_LOT","data":{{"format":"string","value":"{lot}"}},'
        f'"ttl":86400,"timestamp":"{_TS}"}}]'
    )
    rec = (norm, TENANT, norm, PREFIX, body, None, True, 86400, 1, stamp, stamp)
    return rec, [(norm, 1, TENANT, "URL", url, True), (norm, 2, TENANT, "GY_LOT", lot, True)]


def encoded_chunks(count: int, dialect: str) -> Iterator[tuple[list[Any], list[Any]]]:
    """The records as table rows, ``CHUNK`` at a time (what the anchor loads)."""
    stamp = _stamp(dialect)
    for i in {0, 1, count // 2, count - 1}:  # the rows are the ones Gongyun's encoder makes
        handle, values = record(i)
        assert anchor_rows(i, stamp) == _encode(
            TENANT, Handle(PREFIX, handle.split("/", 1)[1]), values, stamp
        )
    for start in range(0, count, CHUNK):
        recs: list[Any] = []
        vals: list[Any] = []
        for i in range(start, min(count, start + CHUNK)):
            rec, vrows = anchor_rows(i, stamp)
            recs.append(rec)
            vals += vrows
        yield recs, vals


async def prepare(url: str) -> Database:
    """A migrated registry database with the benchmark prefix active."""
    await upgrade(url)
    db = Database(url)
    async with db.session() as s:
        await pfx.submit(s, TENANT, PREFIX, "enterprise", status=pfx.FilingStatus.active)
    return db


class Input:
    """The records handed to the import, built outside its timer as the anchor's rows are.

    Up to ``PREBUILT`` records are all built before the import starts; beyond that (the 100
    million run) they are built ``BLOCK`` at a time as the import consumes them and the time spent
    building them is taken off the import's (while a block is built the database may still be
    writing what it was sent, which slightly favours the import at that size).
    """

    PREBUILT = 2_000_000
    BLOCK = 1_000

    def __init__(self, count: int) -> None:
        self.count = count
        self.build_seconds = 0.0
        self.prebuilt = [record(i) for i in range(count)] if count <= self.PREBUILT else None

    def __iter__(self) -> Iterator[tuple[str, list[HandleValue]]]:
        if self.prebuilt is not None:
            yield from self.prebuilt
            return
        for start in range(0, self.count, self.BLOCK):
            t0 = time.perf_counter()
            block = [record(i) for i in range(start, min(self.count, start + self.BLOCK))]
            self.build_seconds += time.perf_counter() - t0
            yield from block


async def gongyun_import(url: str, count: int) -> float:
    """Seconds for Gongyun's bulk import of ``count`` records (building its input excluded)."""
    db = await prepare(url)
    try:
        rows = Input(count)
        t0 = time.perf_counter()
        stats = await import_records(db, TENANT, rows, batch_size=CHUNK)
        elapsed = time.perf_counter() - t0 - rows.build_seconds
        assert stats.inserted == count and not stats.failed, stats
        return elapsed
    finally:
        await db.dispose()


def sqlite_anchor(path: Path, count: int) -> float:
    """Seconds of sqlite3 ``executemany`` of the pre-encoded rows (one transaction)."""
    asyncio.run(prepare(f"sqlite+aiosqlite:///{path}"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    rec_sql = f"INSERT INTO idres_records ({', '.join(REC_COLS)}) VALUES ({', '.join('?' * len(REC_COLS))})"
    val_sql = f"INSERT INTO idres_values ({', '.join(VAL_COLS)}) VALUES ({', '.join('?' * len(VAL_COLS))})"
    elapsed = 0.0
    conn.execute("BEGIN")
    for recs, vals in encoded_chunks(count, "sqlite"):
        t0 = time.perf_counter()
        conn.executemany(rec_sql, recs)
        conn.executemany(val_sql, vals)
        elapsed += time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("COMMIT")
    elapsed += time.perf_counter() - t0
    conn.close()
    return elapsed


def postgres_anchor(url: str, count: int) -> float:
    """Seconds of psycopg ``COPY`` (``write_row``) of the pre-encoded rows (one transaction)."""
    import psycopg

    asyncio.run(prepare_noop(url))
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    elapsed = 0.0
    with psycopg.connect(dsn) as conn:
        for recs, vals in encoded_chunks(count, "postgresql"):
            t0 = time.perf_counter()
            for table, cols, rows in (("idres_records", REC_COLS, recs), ("idres_values", VAL_COLS, vals)):
                with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
            elapsed += time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.commit()
        elapsed += time.perf_counter() - t0
    return elapsed


async def prepare_noop(url: str) -> None:
    """Migrate and file the prefix, closing the pool."""
    db = await prepare(url)
    await db.dispose()


async def resolution(url: str, count: int, probes: int) -> dict[str, Any]:
    """Latency of the node's read of random identifiers, its query plan, a deep keyset page.

    The read is the one a node makes on a cache miss: on PostgreSQL its persistent point-read
    connection (``gongyun.idres.pgread``), on SQLite ``Registry.get_raw``.
    """
    db = Database(url)
    reg = Registry(db)
    reader = PointReader(url, TENANT, 1) if db.dialect == "postgresql" else None
    try:
        rng = random.Random(17)
        norms = [Handle(PREFIX, f"LOT-{rng.randrange(count):09d}").norm for _ in range(probes)]

        async def read(norm: str) -> Any:
            return await (reader.get(norm) if reader is not None else reg.get_raw(TENANT, norm))

        for norm in norms[:200]:  # connections opened, statements prepared
            await read(norm)
        times = []
        for norm in norms:
            t0 = time.perf_counter()
            row = await read(norm)
            times.append(time.perf_counter() - t0)
            assert row is not None, norm
        times.sort()
        plan = await explain(db, norms[0])
        after = Handle(PREFIX, f"LOT-{count * 9 // 10:09d}").norm
        t0 = time.perf_counter()
        page = await reg.handles_after(TENANT, PREFIX, after, 1000)
        page_ms = (time.perf_counter() - t0) * 1000
        assert len(page) == min(1000, count - count * 9 // 10 - 1), len(page)
        reverse = []  # an exact reverse look-up (``/hrls/handles?GY_LOT=…``): one range of its index
        for i in [rng.randrange(count) for _ in range(200)]:
            t0 = time.perf_counter()
            found = await reg.reverse_page(TENANT, {"GY_LOT": f"L{i:09d}"}, limit=10)
            reverse.append(time.perf_counter() - t0)
            assert [n for _, n in found] == [Handle(PREFIX, f"LOT-{i:09d}").norm], (i, found)
        reverse.sort()
        return {
            "probes": probes,
            "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
            "max_ms": times[-1] * 1000,
            "plan": plan,
            "keyset_page_1000_at_90pct_ms": page_ms,
            "reverse_lookup_p50_ms": statistics.median(reverse) * 1000,
            "reverse_lookup_max_ms": reverse[-1] * 1000,
        }
    finally:
        if reader is not None:
            await reader.close()
        await db.dispose()


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in (Path("/proc") / str(p) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def node_memory(url: str, count: int, cache_size: int, seconds: int) -> dict[str, Any]:
    """A node's memory while it resolves random identifiers of the whole registry: sampled as the
    distinct identifiers served grow far past its record cache, it must level off at the cache."""
    sys.path.insert(0, str(ROOT))
    import resolve_setup as rs

    port = rs.free_port()
    with tempfile.TemporaryDirectory(prefix="gy-bench-registry-node-") as tmp:
        argv = ["--role", "enterprise", "--prefix", PREFIX, "--db", url, "--cache-size", str(cache_size)]
        proc = rs.node(argv, port, 1, Path(tmp) / "node.log")
        try:
            base = f"http://127.0.0.1:{port}"
            rs.wait_http(base + "/health")
            rng = random.Random(23)
            paths = [
                f"/api/handles/{PREFIX}/LOT-{rng.randrange(count):09d}" for _ in range(min(count, 1_000_000))
            ]
            script = rs.paths_script(Path(tmp), "random", paths)
            idle = tree_rss_mb(proc.pid)
            samples: list[dict[str, Any]] = []
            served = 0.0
            while len(samples) < 8 and (len(samples) < 3 or served < 5 * cache_size):
                got = rs.run_wrk(base, script, seconds, 32, 1)
                served += got["rps"] * seconds
                samples.append(
                    {"requests": round(served), "rss_mb": round(tree_rss_mb(proc.pid), 1), "rps": got["rps"]}
                )
        finally:
            rs.stop(proc)
    return {"cache_size": cache_size, "idle_rss_mb": round(idle, 1), "samples": samples}


async def explain(db: Database, norm: str) -> str:
    """The backend's plan of the node's primary-key read (must be an index look-up)."""
    from sqlalchemy import text

    read = "SELECT handle, values_json FROM idres_records WHERE handle_norm = :n AND tenant_id = :t"
    async with db.session() as s:
        if db.dialect == "postgresql":
            q = "EXPLAIN " + read
            rows = (await s.execute(text(q), {"n": norm, "t": TENANT})).all()
            plan = " / ".join(r[0].strip() for r in rows)
            assert "Index Scan" in plan, plan
        else:
            q = "EXPLAIN QUERY PLAN " + read
            rows = (await s.execute(text(q), {"n": norm, "t": TENANT})).all()
            plan = " / ".join(str(r[-1]) for r in rows)
            assert "USING INDEX" in plan, plan
    return plan


# bytes a benchmark identifier takes on PostgreSQL 15, tables and indexes (measured at 200 k: 1.16 kB)
PG_BYTES_PER_ID = 1_160


def disk_bytes(url: str, path: Path | None) -> int:
    """Size of the registry's database (SQLite file and its WAL, or the PostgreSQL database)."""
    if path is not None:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def postgres_free_bytes(admin_dsn: str, tablespace: str | None) -> int | None:
    """Free space where the PostgreSQL server keeps the data (its data directory or the tablespace's
    location; None when it cannot be read here)."""
    import psycopg

    try:
        with psycopg.connect(admin_dsn) as conn:
            if tablespace:
                row = conn.execute(
                    "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = %s", (tablespace,)
                ).fetchone()
                if row is None:
                    raise SystemExit(f"postgres: no tablespace {tablespace!r}")
            else:
                row = conn.execute("SHOW data_directory").fetchone()
        return shutil.disk_usage(row[0]).free if row else None
    except (psycopg.Error, OSError):
        return None


def run_backend(
    name: str, url: str, anchor_seconds: float, db_path: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Import and resolution on one backend, beside the anchor's time measured before."""
    count = args.count
    print(f"{name}: raw driver {count / anchor_seconds:,.0f} rows/s", file=sys.stderr)
    ours = asyncio.run(gongyun_import(url, count))
    size = disk_bytes(url, db_path)
    print(
        f"{name}: import {count / ours:,.0f} rows/s, {size / count:,.0f} bytes per identifier",
        file=sys.stderr,
    )
    res = asyncio.run(resolution(url, count, args.probes))
    print(
        f"{name}: resolution p99 {res['p99_ms']:.2f} ms, keyset page of 1,000 "
        f"{res['keyset_page_1000_at_90pct_ms']:.1f} ms, "
        f"reverse look-up p50 {res['reverse_lookup_p50_ms']:.2f} ms",
        file=sys.stderr,
    )
    if name == "postgres" and args.node_seconds:
        res["node_memory"] = node_memory(url, count, args.node_cache, args.node_seconds)
        rss = ", ".join(
            f"{x['rss_mb']:.0f} MB after {x['requests']:,}" for x in res["node_memory"]["samples"]
        )
        print(f"{name}: node memory (cache {args.node_cache:,} records): {rss} requests", file=sys.stderr)
    return {
        "seconds": ours,
        "rows_per_s": count / ours,
        "anchor_seconds": anchor_seconds,
        "anchor_rows_per_s": count / anchor_seconds,
        "ratio": anchor_seconds / ours,
        "disk_bytes": size,
        "disk_bytes_per_identifier": size / count,
        "resolution": res,
    }


def run_postgres(args: argparse.Namespace) -> dict[str, Any] | None:
    """The anchor in one scratch database (dropped before the import starts), then the import."""
    from tests.services import POSTGRES_ADMIN_DSN, port_open, scratch_postgres_database

    if not port_open("127.0.0.1", 5432):
        print("postgres: not running on 127.0.0.1:5432, skipped", file=sys.stderr)
        return None
    free = postgres_free_bytes(POSTGRES_ADMIN_DSN, args.tablespace)
    need = args.count * PG_BYTES_PER_ID * 1.15  # and room for the write-ahead log
    if free is not None and need > free:
        raise SystemExit(
            f"postgres: {args.count:,} identifiers need about {need / 1e9:,.0f} GB "
            f"({PG_BYTES_PER_ID:,} bytes each with their indexes, measured) and the server's disk has "
            f"{free / 1e9:,.0f} GB free; not started"
        )
    with scratch_postgres_database(args.tablespace) as anchor_url:
        anchor = postgres_anchor(anchor_url, args.count)
    with scratch_postgres_database(args.tablespace) as url:
        return run_backend("postgres", url, anchor, None, args)


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="identifiers (default 1,000,000)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--probes", type=int, default=5_000, help="random resolutions timed")
    ap.add_argument(
        "--node-cache", type=int, default=20_000, help="record cache of the node whose memory is sampled"
    )
    ap.add_argument("--node-seconds", type=int, default=10, help="seconds per memory sample (0: skip)")
    ap.add_argument("--tablespace", default=None, help="PostgreSQL tablespace of the scratch databases")
    args = ap.parse_args()
    if "postgres" in args.backends and args.node_seconds and shutil.which("wrk") is None:
        # checked now, not after an import that may take hours
        raise SystemExit(
            "wrk is needed for the node's memory samples (apt-get install wrk, or --node-seconds 0)"
        )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gy-bench-registry-") as tmp:
        if "sqlite" in args.backends:
            anchor_path = Path(tmp) / "anchor.db"
            anchor = sqlite_anchor(anchor_path, args.count)
            anchor_path.unlink()
            path = Path(tmp) / "registry.db"
            results["sqlite"] = run_backend("sqlite", f"sqlite+aiosqlite:///{path}", anchor, path, args)
        if "postgres" in args.backends and (pg := run_postgres(args)) is not None:
            results["postgres"] = pg
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    name = "registry.json" if args.count == 1_000_000 else f"registry-{args.count}.json"
    (out / name).write_text(
        json.dumps({"benchmark": "registry", "identifiers": args.count, "results": results}, indent=2)
    )
    parts = []
    for b, r in results.items():
        driver = "COPY" if b == "postgres" else "executemany"
        parts.append(
            f"{b} import {r['rows_per_s']:,.0f} rows/s = {r['ratio']:.2f} x raw {driver} "
            f"{r['anchor_rows_per_s']:,.0f} rows/s, {r['disk_bytes_per_identifier']:,.0f} bytes/identifier, "
            f"resolve p99 {r['resolution']['p99_ms']:.2f} ms"
        )
    print(f"registry ({args.count:,} identifiers): " + "; ".join(parts))


if __name__ == "__main__":
    main()
