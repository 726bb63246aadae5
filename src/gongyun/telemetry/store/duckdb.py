"""Embedded time-series store: one DuckDB file in the data directory."""

# ruff: noqa: S608  (SQL is assembled from fixed table names and integer ids; values are bound)

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from gongyun.errors import ServiceUnavailable
from gongyun.telemetry.store import sql
from gongyun.telemetry.store.base import SeriesKind
from gongyun.telemetry.store.common import F64, I16, I32, I64, SqlStore

T = TypeVar("T")

_SERIES_DDL = [
    "CREATE SEQUENCE IF NOT EXISTS ts_series_seq START 1",
    """CREATE TABLE IF NOT EXISTS ts_series (
        sid INTEGER PRIMARY KEY DEFAULT nextval('ts_series_seq'),
        tenant VARCHAR NOT NULL, tag VARCHAR NOT NULL, UNIQUE (tenant, tag))""",
]


class DuckDBStore(SqlStore):
    """``TimeSeriesStore`` in a DuckDB file (``:memory:`` for a throw-away store)."""

    kind = "duckdb"
    dialect = sql.DUCKDB

    def __init__(self, path: str | Path, *, threads: int = 2) -> None:
        super().__init__()
        self.path = str(path)
        self.threads = threads
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._alock = asyncio.Lock()

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        """The open connection."""
        if self._conn is None:
            raise ServiceUnavailable("the DuckDB store is not open")
        return self._conn

    async def _call(self, fn: Callable[[], T]) -> T:
        async with self._alock:
            return await asyncio.to_thread(self._locked, fn)

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    async def open(self) -> None:
        """Open (creating) the file and the schema."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(self.path, config={"threads": self.threads})
        except duckdb.IOException as exc:  # another process holds the file (one writer per file)
            raise ServiceUnavailable(f"the telemetry store {self.path} cannot be opened: {exc}") from exc
        ddl = [*_SERIES_DDL, *sql.common_schema()]
        for k in ("raw", "clean"):
            ddl += sql.schema(self.dialect, k)
        await self._run(ddl)

    async def close(self) -> None:
        """Close the file."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._call(conn.close)

    def _run_sync(self, statements: Sequence[str], params: dict[str, Any] | None) -> list[int]:
        c = self.conn
        counts: list[int] = []
        c.execute("BEGIN TRANSACTION")
        try:
            for stmt in statements:
                used = {k: v for k, v in (params or {}).items() if f"${k}" in stmt}
                res = c.execute(stmt, used) if used else c.execute(stmt)
                # fetch to the end: DuckDB refuses new work while a result is unfinished
                rows = res.fetchall() if res.description else []
                row = rows[0] if rows else None
                counts.append(int(row[0]) if row and isinstance(row[0], int) else 0)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return counts

    async def _run(self, statements: Sequence[str], params: dict[str, Any] | None = None) -> list[int]:
        return await self._call(lambda: self._run_sync(statements, params))

    async def _fetch(self, query: str, params: dict[str, Any] | None = None) -> list[sql.Row]:
        def go() -> list[sql.Row]:
            used = {k: v for k, v in (params or {}).items() if f"${k}" in query}
            return [tuple(r) for r in self.conn.execute(query, used).fetchall()]

        return await self._call(go)

    async def _register(self, tenant: str, tags: Sequence[str]) -> None:
        def go() -> None:
            self.conn.execute(
                "INSERT INTO ts_series (tenant, tag) SELECT $tenant, unnest($tags) "
                "ON CONFLICT (tenant, tag) DO NOTHING",
                {"tenant": tenant, "tags": list(tags)},
            ).fetchall()

        await self._call(go)

    async def _merge(
        self, series: SeriesKind, sid: I32, ts: I64, value: F64, quality: I16, flags: I16
    ) -> None:
        batch = pa.table(  # DuckDB reads this local variable by name; numpy columns are not copied
            {
                "sid": pa.array(sid, pa.int32()),
                "ts": pa.array(ts, pa.int64()),
                "value": pa.array(value, pa.float64()),
                "quality": pa.array(quality, pa.int16()),
                "flags": pa.array(flags, pa.int16()),
            }
        )

        def go() -> None:
            c = self.conn
            c.register("batch", batch)
            try:
                self._run_sync(sql.merge_batch(self.dialect, series, "batch"), None)
            finally:
                c.unregister("batch")

        await self._call(go)

    async def _refresh_span(self, series: SeriesKind, lo: int, hi: int) -> int:
        def go() -> int:
            c = self.conn
            c.execute(
                f"CREATE OR REPLACE TEMP TABLE snap AS SELECT sid, hour, gen FROM ts_{series}_dirty "
                f"WHERE hour >= {int(lo)} AND hour < {int(hi)}"
            ).fetchall()
            row = c.execute("SELECT count(*) FROM snap").fetchall()[0]
            n = int(row[0]) if row else 0
            if n:
                self._run_sync(sql.refresh(self.dialect, series, lo, hi), None)
            return n

        return await self._call(go)

    async def execute_sql(self, query: str) -> list[sql.Row]:
        """Run a hand-written read-only query (benchmark reference)."""
        return await self._call(lambda: [tuple(r) for r in self.conn.execute(query).fetchall()])
