"""Server time-series store: PostgreSQL, points partitioned by day, writes through COPY."""

# ruff: noqa: S608  (SQL is assembled from fixed table names and integer ids; values are bound)

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql as psql

from gongyun.errors import DatabaseUnavailable, ServiceUnavailable
from gongyun.telemetry.store import sql
from gongyun.telemetry.store.base import DAY_US, SeriesKind
from gongyun.telemetry.store.common import F64, I16, I32, I64, SqlStore

_SERIES_DDL = [
    """CREATE TABLE IF NOT EXISTS ts_series (
        sid SERIAL PRIMARY KEY, tenant VARCHAR(32) NOT NULL, tag VARCHAR(300) NOT NULL,
        UNIQUE (tenant, tag))""",
]
_TEMP_DDL = [
    """CREATE TEMP TABLE IF NOT EXISTS batch (sid INTEGER, ts BIGINT, value DOUBLE PRECISION,
        quality SMALLINT, flags SMALLINT) ON COMMIT DELETE ROWS""",
    "CREATE TEMP TABLE IF NOT EXISTS snap (sid INTEGER, hour BIGINT, gen INTEGER) ON COMMIT DELETE ROWS",
]

# one row of COPY's binary format: field count, then (length, big-endian value) per column
_COPY_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l_sid", ">i4"),
        ("sid", ">i4"),
        ("l_ts", ">i4"),
        ("ts", ">i8"),
        ("l_value", ">i4"),
        ("value", ">f8"),
        ("l_quality", ">i4"),
        ("quality", ">i2"),
        ("l_flags", ">i4"),
        ("flags", ">i2"),
    ]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"


def copy_binary(sid: I32, ts: I64, value: F64, quality: I16, flags: I16) -> bytes:
    """Rows (sid, ts, value, quality, flags) in PostgreSQL's binary COPY format, built by numpy."""
    rows = np.empty(len(sid), _COPY_ROW)
    rows["n"] = 5
    rows["l_sid"], rows["l_ts"], rows["l_value"], rows["l_quality"], rows["l_flags"] = 4, 8, 8, 2, 2
    rows["sid"], rows["ts"], rows["value"], rows["quality"], rows["flags"] = sid, ts, value, quality, flags
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def plain_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://``) into a libpq one."""
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class PostgresStore(SqlStore):
    """``TimeSeriesStore`` in PostgreSQL (one connection writes, one reads)."""

    kind = "postgres"
    dialect = sql.POSTGRES

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = plain_url(url)
        self._w: psycopg.AsyncConnection[Any] | None = None
        self._r: psycopg.AsyncConnection[Any] | None = None
        self._wlock = asyncio.Lock()
        self._rlock = asyncio.Lock()
        self._partitions: set[tuple[str, int]] = set()

    async def _conn(self, which: str) -> psycopg.AsyncConnection[Any]:
        """The writing (``w``) or reading connection, made anew when the server dropped it.

        Called under that connection's lock. A restart of PostgreSQL (or a terminated backend)
        breaks the connection; the statement that met it fails (its batch is not acknowledged)
        and the next one reconnects, so the store recovers without a restart of the process.
        """
        conn = self._w if which == "w" else self._r
        if conn is None:
            raise ServiceUnavailable("the PostgreSQL store is not open")
        if not (conn.closed or conn.broken):
            return conn
        try:
            fresh = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            if which == "w":
                for stmt in _TEMP_DDL:  # temporary tables live and die with their session
                    await fresh.execute(stmt)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"time-series database not reachable: {exc}") from exc
        with contextlib.suppress(psycopg.Error):
            await conn.close()
        if which == "w":
            self._w = fresh
        else:
            self._r = fresh
        return fresh

    async def open(self) -> None:
        """Connect twice and create the schema."""
        try:
            self._w = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            self._r = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"time-series database not reachable: {exc}") from exc
        ddl = [*_SERIES_DDL, *sql.common_schema()]
        for k in ("raw", "clean"):
            ddl += sql.schema(self.dialect, k, " PARTITION BY RANGE (ts)")
        async with self._wlock:
            w = await self._conn("w")
            await w.execute("SELECT pg_advisory_lock(727001)")
            try:
                for stmt in ddl:
                    await w.execute(stmt)
            finally:
                await w.execute("SELECT pg_advisory_unlock(727001)")
            for stmt in _TEMP_DDL:
                await w.execute(stmt)

    async def close(self) -> None:
        """Close both connections."""
        for conn in (self._w, self._r):
            if conn is not None:
                await conn.close()
        self._w = self._r = None

    @staticmethod
    def _params(stmt: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
        used = {k: v for k, v in (params or {}).items() if f"%({k})s" in stmt}
        return used or None

    async def _run(self, statements: Sequence[str], params: dict[str, Any] | None = None) -> list[int]:
        counts: list[int] = []
        async with self._wlock:
            w = await self._conn("w")
            async with w.transaction(), w.cursor() as cur:
                for stmt in statements:
                    await cur.execute(stmt, self._params(stmt, params))
                    counts.append(max(cur.rowcount, 0))
        return counts

    async def _fetch(self, query: str, params: dict[str, Any] | None = None) -> list[sql.Row]:
        async with self._rlock:
            cur = await (await self._conn("r")).execute(query, self._params(query, params))
            return [tuple(r) for r in await cur.fetchall()]

    async def _register(self, tenant: str, tags: Sequence[str]) -> None:
        async with self._wlock:
            w = await self._conn("w")
            async with w.transaction(), w.cursor() as cur:
                await cur.execute(
                    "INSERT INTO ts_series (tenant, tag) SELECT %s, unnest(%s::text[]) "
                    "ON CONFLICT (tenant, tag) DO NOTHING",
                    (tenant, list(tags)),
                )

    async def _ensure_partitions(self, series: SeriesKind, days: set[int]) -> None:
        w = await self._conn("w")
        for day in sorted(days):
            if (series, day) in self._partitions:
                continue
            name = psql.Identifier(f"ts_{series}_points_d{day}")
            stmt = psql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
            ).format(name, psql.Identifier(f"ts_{series}_points"), day * DAY_US, (day + 1) * DAY_US)
            # another process may create it at the same moment
            with contextlib.suppress(psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
                await w.execute(stmt)
            self._partitions.add((series, day))

    async def _merge(
        self, series: SeriesKind, sid: I32, ts: I64, value: F64, quality: I16, flags: I16
    ) -> None:
        days = set(np.unique(ts // DAY_US).tolist())
        data = copy_binary(sid, ts, value, quality, flags)
        async with self._wlock:
            await self._ensure_partitions(series, days)
            w = await self._conn("w")
            async with w.transaction(), w.cursor() as cur:
                copy_sql = "COPY batch (sid, ts, value, quality, flags) FROM STDIN (FORMAT BINARY)"
                async with cur.copy(copy_sql) as copy:
                    await copy.write(data)
                for stmt in sql.merge_batch(self.dialect, series, "batch"):
                    await cur.execute(stmt)

    async def _refresh_span(self, series: SeriesKind, lo: int, hi: int) -> int:
        async with self._wlock:
            w = await self._conn("w")
            async with w.transaction(), w.cursor() as cur:
                await cur.execute(
                    f"INSERT INTO snap SELECT sid, hour, gen FROM ts_{series}_dirty "
                    f"WHERE hour >= {int(lo)} AND hour < {int(hi)}"
                )
                n = max(cur.rowcount, 0)
                if n:
                    await cur.execute("ANALYZE snap")  # a temp table has no statistics otherwise
                    for stmt in sql.refresh(self.dialect, series, lo, hi):
                        await cur.execute(stmt)
            return n

    async def apply_retention(self, now: int | None = None) -> dict[str, int]:
        """Delete expired rows, then drop day partitions no series keeps any more."""
        now_us = int(time.time() * 1_000_000) if now is None else int(now)
        out = await super().apply_retention(now_us)
        rows = await self._fetch(
            """SELECT bool_and(COALESCE(t.raw_keep_us, a.raw_keep_us) IS NOT NULL),
                      max(COALESCE(t.raw_keep_us, a.raw_keep_us))
               FROM ts_series s LEFT JOIN ts_retention t ON t.tenant = s.tenant AND t.tag = s.tag
               LEFT JOIN ts_retention a ON a.tenant = s.tenant AND a.tag = ''"""
        )
        all_covered, longest = rows[0] if rows else (None, None)
        if all_covered and longest is not None:
            cutoff_day = (now_us - int(longest)) // DAY_US
            dropped = 0
            for k in ("raw", "clean"):
                for (name,) in await self._fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    f"JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ts_{k}_points'"
                ):
                    day = int(str(name).rsplit("_d", 1)[1])
                    if day + 1 <= cutoff_day:
                        await self._run([f'DROP TABLE IF EXISTS "{name}"'])
                        self._partitions.discard((k, day))
                        dropped += 1
            out["partitions_dropped"] = dropped
        return out

    async def execute_sql(self, query: str) -> list[sql.Row]:
        """Run a hand-written read-only query (benchmark reference)."""
        return await self._fetch(query)
