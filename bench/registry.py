"""bench-registry: bulk import rate of the identifier registry on SQLite and PostgreSQL.

Imports N identifiers (default 1,000,000) through ``gongyun.idres.bulk.import_records`` on
each backend and, as the anchor in the same run, loads the very same pre-encoded rows with
the driver alone (sqlite3 ``executemany`` / psycopg ``COPY``) into a bare table. Writes
bench/results/registry.json and prints one summary line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))
sys.path.insert(0, str(ROOT.parent))

from gongyun.db import Database, upgrade  # noqa: E402
from gongyun.idres import prefixes as pfx  # noqa: E402
from gongyun.idres.bulk import import_records  # noqa: E402
from gongyun.idres.registry import encode_row  # noqa: E402
from gongyun.idres.syntax import Handle  # noqa: E402
from gongyun.idres.values import HandleValue, string_value  # noqa: E402

PREFIX = "88.100.2"
TENANT = "default"


def rows(count: int) -> list[tuple[str, list[HandleValue]]]:
    """The benchmark records."""
    return [
        (
            f"{PREFIX}/LOT-{i:08d}",
            [
                string_value(1, "URL", f"https://plant.example/lots/{i}"),
                string_value(2, "GY_LOT", f"L{i:08d}"),
            ],
        )
        for i in range(count)
    ]


async def gongyun_import(url: str, data: list[tuple[str, list[HandleValue]]]) -> float:
    """Seconds for Gongyun's bulk import of ``data`` into a migrated database at ``url``."""
    await upgrade(url)
    db = Database(url)
    try:
        async with db.session() as s:
            await pfx.submit(s, TENANT, PREFIX, "enterprise", status=pfx.FilingStatus.active)
        t0 = time.perf_counter()
        stats = await import_records(db, TENANT, data, batch_size=20_000)
        elapsed = time.perf_counter() - t0
        assert stats.inserted == len(data), stats
        return elapsed
    finally:
        await db.dispose()


def encoded(data: list[tuple[str, list[HandleValue]]]) -> list[tuple[Any, ...]]:
    """The records encoded once (the anchor only measures the driver)."""
    out = []
    for handle, values in data:
        r = encode_row(TENANT, Handle(PREFIX, handle.split("/", 1)[1]), values)
        out.append((r["handle_norm"], r["tenant_id"], r["handle"], r["values_json"]))
    return out


def sqlite_anchor(path: Path, data: list[tuple[Any, ...]]) -> float:
    """Seconds for a plain sqlite3 executemany of the same rows into a bare table."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, tenant TEXT, handle TEXT, v TEXT)")
    t0 = time.perf_counter()
    for start in range(0, len(data), 20_000):
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", data[start : start + 20_000])
        conn.commit()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def postgres_anchor(dsn: str, data: list[tuple[Any, ...]]) -> float:
    """Seconds for a plain psycopg COPY of the same rows into a bare table."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, tenant TEXT, handle TEXT, v TEXT)")
        conn.commit()
        t0 = time.perf_counter()
        for start in range(0, len(data), 20_000):
            with conn.cursor() as cur, cur.copy("COPY t FROM STDIN") as cp:
                for row in data[start : start + 20_000]:
                    cp.write_row(row)
            conn.commit()
        return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    data = rows(args.count)
    enc = encoded(data)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gy-bench-registry-") as tmp:
        if "sqlite" in args.backends:
            ours = asyncio.run(gongyun_import(f"sqlite+aiosqlite:///{tmp}/registry.db", data))
            anchor = sqlite_anchor(Path(tmp) / "anchor.db", enc)
            results["sqlite"] = {
                "seconds": ours,
                "rows_per_s": args.count / ours,
                "anchor_rows_per_s": args.count / anchor,
            }
        if "postgres" in args.backends:
            from tests.services import port_open, scratch_postgres_database

            if port_open("127.0.0.1", 5432):
                with scratch_postgres_database() as url:
                    ours = asyncio.run(gongyun_import(url, data))
                    dsn = url.replace("postgresql+psycopg://", "postgresql://")
                    anchor = postgres_anchor(dsn, enc)
                results["postgres"] = {
                    "seconds": ours,
                    "rows_per_s": args.count / ours,
                    "anchor_rows_per_s": args.count / anchor,
                }
            else:
                print("postgres: not running on 127.0.0.1:5432, skipped", file=sys.stderr)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "registry.json").write_text(
        json.dumps({"benchmark": "registry", "identifiers": args.count, "results": results}, indent=2)
    )
    parts = [
        f"{name} {r['rows_per_s']:,.0f} rows/s ({args.count:,} in {r['seconds']:.1f} s, "
        f"{r['rows_per_s'] / r['anchor_rows_per_s']:.2f} x raw driver {r['anchor_rows_per_s']:,.0f} rows/s)"
        for name, r in results.items()
    ]
    print("registry: bulk import " + "; ".join(parts))


if __name__ == "__main__":
    main()
