"""Point reads of records on PostgreSQL: a few persistent connections per worker, batched, no ORM.

A node's resolution is one primary-key read. Opening an ORM session per request (pool
checkout, pre-ping, transaction begin and commit) costs far more than the query, and so does
one round trip through psycopg per identifier when a worker has dozens of requests in flight.
Here each worker keeps ``size`` autocommit psycopg connections; the identifiers asked for in
one turn of the event loop are read together, one prepared
``SELECT ... WHERE handle_norm = ANY(%s)`` per batch (DataLoader style): a connection that
finishes a batch takes everything that waits, and another joins in only when ``SPLIT`` or more
wait. Concurrent reads of the same identifier share one future (single flight); a failed read
answers every identifier of its batch with ``DatabaseUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.engine import make_url

from gongyun.errors import DatabaseUnavailable
from gongyun.idres.registry import RawRecord

log = logging.getLogger(__name__)
_ROWS = (
    "SELECT handle_norm, handle, values_json, public_json, min_ttl, tenant_id "
    "FROM idres_records WHERE handle_norm = ANY(%s)"
)
MAX_BATCH = 1_000  # identifiers in one query
# another connection joins in only for this many waiting identifiers: a few larger batches cost
# the database and this process less than many small ones, and one batch takes one round trip
SPLIT = 16


class PointReader:
    """Reads ``(handle, values_json, public_json, min_ttl, tenant)`` by normalised identifier."""

    def __init__(self, db_url: str, tenant_id: str | None, size: int = 4) -> None:
        self.conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.tenant_id = tenant_id
        self.size = max(size, 1)
        # the tenant is checked here, not in SQL: a generic plan of "handle_norm = ANY($1) AND
        # tenant_id = $2" may AND the primary key with the tenant index (every row of the tenant)
        self.sql = _ROWS
        self.idle: list[Any] = []
        self.lanes = 0  # batches being read (each on its own connection)
        self.flights: dict[str, asyncio.Future[RawRecord | None]] = {}
        self.waiting: list[str] = []  # asked for, not yet in a batch
        self.scheduled = False
        self.queries = 0  # queries run (for operators and tests)
        self.read = 0  # identifiers read

    def want(self, norm: str) -> asyncio.Future[RawRecord | None]:
        """A future of one identifier's stored row (None: not found), read with others asked for now."""
        fut = self.flights.get(norm)
        if fut is not None:
            return fut
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.flights[norm] = fut
        self.waiting.append(norm)
        if not self.scheduled and self._room():
            self.scheduled = True
            loop.call_soon(self._dispatch)
        return fut

    async def get(self, norm: str) -> RawRecord | None:
        """The stored row of one identifier, or None."""
        return await asyncio.shield(self.want(norm))

    def _dispatch(self) -> None:
        """Start a batch on each free connection while identifiers wait."""
        self.scheduled = False
        while self.waiting and self._room():
            self.lanes += 1
            asyncio.get_running_loop().create_task(self._lane(self._take()))

    def _room(self) -> bool:
        """True when a new batch should start now on another connection."""
        return self.lanes == 0 or (self.lanes < self.size and len(self.waiting) >= SPLIT)

    def _take(self) -> list[str]:
        batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
        return batch

    async def _lane(self, batch: list[str]) -> None:
        """Read batches on one connection until nothing waits."""
        conn = None
        try:
            while batch:
                if conn is None:
                    conn = await self._connect(batch)
                    if conn is None:
                        return
                try:
                    ok = await self._read(conn, batch)
                except BaseException:
                    conn = None  # closed by _read
                    raise
                if not ok:
                    conn = None
                    return
                # a turn of the loop lets the waiters run and ask for more before the next batch
                await asyncio.sleep(0)
                batch = self._take() if self.waiting else []
        finally:
            self.lanes -= 1
            if conn is not None:
                self.idle.append(conn)
            if self.waiting and not self.scheduled and self._room():
                self.scheduled = True
                asyncio.get_running_loop().call_soon(self._dispatch)

    async def _connect(self, batch: list[str]) -> Any:
        import psycopg

        if self.idle:
            return self.idle.pop()
        try:
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, prepare_threshold=0)
        except (psycopg.Error, OSError) as exc:
            self._fail(batch, DatabaseUnavailable(f"database not reachable: {type(exc).__name__}"))
            return None
        except BaseException:
            self._fail(batch, DatabaseUnavailable("the read was cancelled"))
            raise

    async def _read(self, conn: Any, batch: list[str]) -> bool:
        """Answer every identifier of ``batch``; False when the connection failed (and is closed)."""
        import psycopg

        self.queries += 1
        self.read += len(batch)
        try:
            cur = await conn.execute(self.sql, (batch,), prepare=True)
            rows = await cur.fetchall()
        except (psycopg.Error, OSError) as exc:
            self._fail(batch, DatabaseUnavailable(f"database read failed: {type(exc).__name__}"))
            await _close(conn)
            return False
        except BaseException:
            self._fail(batch, DatabaseUnavailable("the read was cancelled"))
            await _close(conn)
            raise
        tenant = self.tenant_id
        found = {
            r[0]: (r[1], r[2], r[3] or r[2], int(r[4]), r[5])
            for r in rows
            if tenant is None or r[5] == tenant
        }
        flights = self.flights
        for norm in batch:
            fut = flights.pop(norm, None)
            if fut is not None and not fut.done():
                fut.set_result(found.get(norm))
        return True

    def _fail(self, batch: list[str], exc: DatabaseUnavailable) -> None:
        for norm in batch:
            fut = self.flights.pop(norm, None)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: a waiter may have gone

    async def close(self) -> None:
        """Close every idle connection."""
        log.info("point reads: %d identifiers in %d queries", self.read, self.queries)
        conns, self.idle = self.idle, []
        for conn in conns:
            await _close(conn)


async def _close(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:  # closing a broken connection
        log.debug("closing a PostgreSQL read connection failed", exc_info=True)
