"""Point reads of records on PostgreSQL: a few persistent connections per worker, no ORM.

A node's resolution is one primary-key read. Opening an ORM session per request (pool
checkout, pre-ping, transaction begin and commit) costs far more than the query; here each
worker keeps ``size`` autocommit psycopg connections and runs one prepared statement on
whichever is free. Concurrent reads of the same identifier share one query (single flight).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.engine import make_url

from gongyun.errors import DatabaseUnavailable
from gongyun.idres.registry import RawRecord

log = logging.getLogger(__name__)
_ROW = "SELECT handle, values_json, public_json, min_ttl, tenant_id FROM idres_records WHERE handle_norm = %s"


class PointReader:
    """Reads ``(handle, values_json, public_json, min_ttl, tenant)`` by normalised identifier."""

    def __init__(self, db_url: str, tenant_id: str | None, size: int = 4) -> None:
        self.conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.tenant_id = tenant_id
        self.size = size
        self.sql = _ROW if tenant_id is None else _ROW + " AND tenant_id = %s"
        self.idle: list[Any] = []
        self.opened = 0
        self.freed = asyncio.Condition()
        self.flights: dict[str, asyncio.Future[RawRecord | None]] = {}
        self.queries = 0

    async def _acquire(self) -> Any:
        import psycopg

        async with self.freed:
            while not self.idle and self.opened >= self.size:
                await self.freed.wait()
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        try:
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, prepare_threshold=0)
        except (psycopg.Error, OSError) as exc:
            await self._release(None)
            raise DatabaseUnavailable(f"database not reachable: {type(exc).__name__}") from exc

    async def _release(self, conn: Any) -> None:
        async with self.freed:
            if conn is None:
                self.opened -= 1
            else:
                self.idle.append(conn)
            self.freed.notify()

    async def _query(self, norm: str) -> RawRecord | None:
        import psycopg

        conn = await self._acquire()
        params = (norm,) if self.tenant_id is None else (norm, self.tenant_id)
        try:
            self.queries += 1
            cur = await conn.execute(self.sql, params, prepare=True)
            row = await cur.fetchone()
        except (psycopg.Error, OSError) as exc:
            await conn.close()
            await self._release(None)
            raise DatabaseUnavailable(f"database read failed: {type(exc).__name__}") from exc
        await self._release(conn)
        return None if row is None else (row[0], row[1], row[2], int(row[3]), row[4])

    async def get(self, norm: str) -> RawRecord | None:
        """The stored row of one identifier, or None."""
        flight = self.flights.get(norm)
        if flight is not None:
            return await asyncio.shield(flight)
        fut: asyncio.Future[RawRecord | None] = asyncio.get_running_loop().create_future()
        self.flights[norm] = fut
        try:
            row = await self._query(norm)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self.flights.pop(norm, None)
        fut.set_result(row)
        return row

    async def close(self) -> None:
        """Close every connection."""
        async with self.freed:
            conns, self.idle = self.idle, []
        for conn in conns:
            await conn.close()
