"""bench/storeload: scratch stores and in-database point generation shared by the store benchmarks.

``scratch_stores`` yields an opened DuckDB file store and/or a PostgreSQL store on a scratch
database (dropped afterwards); ``load_generated`` writes day by day, series by series, points
generated inside the database from an SQL expression over the point index ``g.i`` (on PostgreSQL
into an unlogged table per day, keyed, logged and attached as the day's partition afterwards),
marks their hours dirty and builds the rollups with the store's own refresh. Used by
bench/query.py, bench/oee.py and bench/spc_live.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gongyun.telemetry.store import open_store
from gongyun.telemetry.store.base import DAY_US, HOUR_US, US
from gongyun.telemetry.store.common import SqlStore

ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Generated:
    """One series to generate: its id, the value as SQL over the point index g.i, its step."""

    sid: int
    value_sql: str
    step_us: int = US
    t0: int = 0


async def scratch_stores(kinds: Sequence[str], prefix: str) -> AsyncIterator[tuple[str, SqlStore]]:
    """Yield (kind, opened store) for each kind, on a temporary file or a scratch database."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for kind in kinds:
            db = f"gy_bench_{uuid.uuid4().hex[:10]}"
            if kind == "duckdb":
                url = f"duckdb://{tmp / 'bench.duckdb'}"
            else:
                with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                    c.execute(f'CREATE DATABASE "{db}"')
                url = ADMIN_DSN.rsplit("/", 1)[0] + f"/{db}"
            store = open_store(url)
            assert isinstance(store, SqlStore)
            try:
                await store.open()
                try:
                    yield kind, store
                finally:
                    await store.close()
            finally:
                if kind != "duckdb":
                    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
                        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _load_day_postgres(store: SqlStore, day: int, series: Sequence[Generated], lo_i: int) -> None:
    """One day's partition, loaded the bulk way and then given the store's own schema.

    The day is generated into a fresh UNLOGGED table without its primary key (no WAL and no index
    maintenance per row), then the key is built once by sorting, the table is made LOGGED (one
    bulk write of it to the WAL) and attached as the day's partition of ``ts_raw_points``, where
    its key becomes part of the parent's. The result is what the store's own writes produce.
    """
    part = f"ts_raw_points_d{day}"
    await store._run([f'CREATE UNLOGGED TABLE "{part}" (LIKE ts_raw_points INCLUDING DEFAULTS)'])
    for s in series:
        per_day = DAY_US // s.step_us
        lo = lo_i * per_day
        await store._run(
            [
                f'INSERT INTO "{part}" (sid, ts, value, quality, flags) '
                f"SELECT {s.sid}, {s.t0} + g.i::bigint * {s.step_us}, {s.value_sql}, 0, 0 "
                f"FROM generate_series({lo}, {lo + per_day - 1}) AS g(i)"
            ]
        )
    await store._run(
        [
            f'ALTER TABLE "{part}" ADD PRIMARY KEY (sid, ts)',
            f'ALTER TABLE "{part}" SET LOGGED',
            f'ALTER TABLE ts_raw_points ATTACH PARTITION "{part}" '
            f"FOR VALUES FROM ({day * DAY_US}) TO ({(day + 1) * DAY_US})",
            f'ANALYZE "{part}"',
        ]
    )
    store._partitions.add(("raw", day))  # type: ignore[attr-defined]


async def load_generated(
    store: SqlStore, tenant: str, t0: int, days: int, series: Sequence[Generated]
) -> tuple[float, float]:
    """Generate every series' points for DAYS days from T0, then build the rollups; (load s, rollup s).

    DuckDB inserts into the points table directly; PostgreSQL loads each day as a new partition
    (``_load_day_postgres``). T0 must be at a UTC midnight (PostgreSQL partitions are UTC days).
    """
    pg = store.kind == "postgres"
    if t0 % DAY_US:
        raise ValueError("t0 must be a UTC midnight")
    t = time.perf_counter()
    if pg:  # this session only: a lost bulk commit is re-run, and the key is built in memory
        await store._run(["SET synchronous_commit = off", "SET maintenance_work_mem = '1GB'"])
    for day in range(days):
        if pg:
            await _load_day_postgres(store, t0 // DAY_US + day, [replace(s, t0=t0) for s in series], day)
            continue
        for s in series:
            per_day = DAY_US // s.step_us
            lo, hi = day * per_day, (day + 1) * per_day
            await store._run(
                [
                    "INSERT INTO ts_raw_points (sid, ts, value, quality, flags) "
                    f"SELECT {s.sid}, {t0} + g.i::bigint * {s.step_us}, {s.value_sql}, 0, 0 "
                    f"FROM range({lo}, {hi}) AS g(i)"
                ]
            )
    hours = days * 24
    gen_h = f"generate_series(0, {hours - 1})" if pg else f"range(0, {hours})"
    await store._run(
        [
            f"INSERT INTO ts_raw_dirty (sid, hour, gen) SELECT s.sid, {t0} + h.i::bigint * {HOUR_US}, 0 "
            f"FROM ts_series s, {gen_h} AS h(i) WHERE s.tenant = '{tenant}'"
        ]
    )
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    await store.refresh_rollups()
    return loaded, time.perf_counter() - t
