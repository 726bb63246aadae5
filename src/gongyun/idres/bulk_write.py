"""The storage side of bulk import: COPY on PostgreSQL, executemany on SQLite.

Records arrive already validated and encoded as rows in the column order of ``REC_COLS`` and
``VAL_COLS``. A writer keeps one transaction open for the whole import; identifiers already in
the registry are skipped (one indexed look-up per batch), the others are written directly into
``idres_records`` and ``idres_values`` (COPY where the layout allows, which it does: the rows
are complete). A row that a concurrent writer registered between the look-up and the COPY
makes PostgreSQL refuse the batch; the writer rolls back to the batch's savepoint, looks again
and retries once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

REC_COLS = (
    "handle_norm",
    "tenant_id",
    "handle",
    "prefix_norm",
    "values_json",
    "public_json",
    "all_public",
    "min_ttl",
    "version",
    "created_at",
    "updated_at",
)
VAL_COLS = ("handle_norm", "idx", "tenant_id", "type", "value_key", "public")

RecRow = tuple[Any, ...]
ValRow = tuple[Any, ...]

_LOOKUP_CHUNK = 5000


class Writer(ABC):
    """Writes batches of encoded rows inside one open transaction (one subclass per backend)."""

    def __init__(self, session: AsyncSession, raw: Any) -> None:
        self.session = session
        self.raw = raw

    @abstractmethod
    async def existing(self, norms: list[str]) -> set[str]:
        """The normalised identifiers of ``norms`` already registered (any tenant)."""

    @abstractmethod
    async def write(self, recs: Sequence[RecRow], vals: Sequence[ValRow]) -> None:
        """Insert the rows (none of which exists)."""

    async def write_new(self, batch: dict[str, tuple[RecRow, list[ValRow]]]) -> int:
        """Insert the records of ``batch`` not yet registered; returns how many were inserted."""
        found = await self.existing(list(batch))
        recs = [rec for norm, (rec, _) in batch.items() if norm not in found]
        vals = [v for norm, (_, vs) in batch.items() if norm not in found for v in vs]
        if recs:
            await self.write(recs, vals)
        return len(recs)


class PostgresWriter(Writer):
    """psycopg ``COPY … FROM STDIN`` (text format)."""

    async def existing(self, norms: list[str]) -> set[str]:
        """One ``= ANY(array)`` look-up on the primary key."""
        async with self.raw.cursor() as cur:
            await cur.execute("SELECT handle_norm FROM idres_records WHERE handle_norm = ANY(%s)", (norms,))
            return {r[0] for r in await cur.fetchall()}

    async def _copy(self, table: str, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        # psycopg formats rows in C and sends them in buffers as they fill up
        async with self.raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            for row in rows:
                await cp.write_row(row)

    async def write(self, recs: Sequence[RecRow], vals: Sequence[ValRow]) -> None:
        """COPY both tables under a savepoint (so a refused batch leaves the import usable)."""
        async with self.raw.transaction():
            await self._copy("idres_records", REC_COLS, recs)
            await self._copy("idres_values", VAL_COLS, vals)

    async def _range_taken(self, norms: list[str]) -> bool:
        """Whether any registered identifier sorts between the batch's least and greatest key."""
        async with self.raw.cursor() as cur:
            # the bounds in the database's own collation, then one index probe of that range
            await cur.execute("SELECT min(k), max(k) FROM unnest(%s::text[]) AS k", (norms,))
            lo, hi = (await cur.fetchone()) or (None, None)
            await cur.execute(
                "SELECT 1 FROM idres_records WHERE handle_norm >= %s AND handle_norm <= %s LIMIT 1", (lo, hi)
            )
            return await cur.fetchone() is not None

    async def write_new(self, batch: dict[str, tuple[RecRow, list[ValRow]]]) -> int:
        """As ``Writer.write_new``; a batch whose key range is free is written without look-ups
        (a fresh import), and one refused by a concurrent writer is looked up and retried."""
        import psycopg.errors

        if not await self._range_taken(list(batch)):
            try:
                await self.write(
                    [rec for rec, _ in batch.values()], [v for _, vs in batch.values() for v in vs]
                )
                return len(batch)
            except psycopg.errors.UniqueViolation:
                pass
        try:
            return await super().write_new(batch)
        except psycopg.errors.UniqueViolation:
            return await super().write_new(batch)


class SqliteWriter(Writer):
    """aiosqlite ``executemany`` with prepared statements, in the import's one transaction."""

    async def existing(self, norms: list[str]) -> set[str]:
        """Chunked ``IN`` look-ups on the primary key."""
        found: set[str] = set()
        for start in range(0, len(norms), _LOOKUP_CHUNK):
            chunk = norms[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT handle_norm FROM idres_records WHERE handle_norm IN ({marks})"  # noqa: S608
            async with self.raw.execute(sql, chunk) as cur:
                found.update(r[0] for r in await cur.fetchall())
        return found

    async def write_new(self, batch: dict[str, tuple[RecRow, list[ValRow]]]) -> int:
        """As ``Writer.write_new``; a batch whose key range is free is written without look-ups
        (SQLite compares text by code point, as Python does, so the bounds are Python's)."""
        async with self.raw.execute(
            "SELECT 1 FROM idres_records WHERE handle_norm >= ? AND handle_norm <= ? LIMIT 1",
            (min(batch), max(batch)),
        ) as cur:
            taken = await cur.fetchone() is not None
        if taken:
            return await super().write_new(batch)
        await self.write([rec for rec, _ in batch.values()], [v for _, vs in batch.values() for v in vs])
        return len(batch)

    async def write(self, recs: Sequence[RecRow], vals: Sequence[ValRow]) -> None:
        """Two ``executemany`` calls (the statements are the module's constants, never input)."""
        for table, cols, rows in (("idres_records", REC_COLS, recs), ("idres_values", VAL_COLS, vals)):
            marks = ", ".join("?" for _ in cols)
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
            await self.raw.executemany(sql, rows)


async def open_writer(session: AsyncSession, dialect: str) -> Writer:
    """The writer for the session's backend (the session's transaction is begun)."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    return PostgresWriter(session, raw) if dialect == "postgresql" else SqliteWriter(session, raw)
