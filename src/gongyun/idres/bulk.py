"""Bulk import of many records: executemany on SQLite, COPY on PostgreSQL.

Rows that already exist are skipped (an import can be re-run after an interruption);
templates and prefixes are not consulted, so importing is an operator's job.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.db import Database
from gongyun.errors import GongyunError, InvalidInput
from gongyun.idres.models import IdRecord
from gongyun.idres.registry import encode_row, value_rows
from gongyun.idres.syntax import parse
from gongyun.idres.values import HandleValue, decode_values, string_value

_REC_COLS = [
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
]
_VAL_COLS = ["handle_norm", "idx", "tenant_id", "type", "value_key", "public"]


@dataclass(slots=True)
class ImportStats:
    """What an import did."""

    inserted: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form (at most the first 100 errors)."""
        return {
            "inserted": self.inserted,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors,
        }


async def _existing(s: AsyncSession, norms: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(norms), 5000):
        chunk = norms[start : start + 5000]
        found.update(
            (await s.execute(select(IdRecord.handle_norm).where(IdRecord.handle_norm.in_(chunk)))).scalars()
        )
    return found


async def _copy(s: AsyncSession, table: str, cols: list[str], rows: list[dict[str, Any]]) -> None:
    conn = await s.connection()
    raw = await conn.get_raw_connection()
    pg: Any = raw.driver_connection
    lines: list[str] = []
    size = 0
    cache: dict[Any, str] = {}
    async with pg.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for row in rows:
            line = "\t".join(_copy_text(row[c], cache) for c in cols)
            lines.append(line)
            size += len(line)
            if size > 1_000_000:
                await cp.write("\n".join(lines) + "\n")
                lines, size = [], 0
        if lines:
            await cp.write("\n".join(lines) + "\n")


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any, cache: dict[Any, str]) -> str:
    """One value in PostgreSQL's COPY text format."""
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    text = cache.get(value)
    if text is None:
        text = cache[value] = value.isoformat() if isinstance(value, datetime) else str(value)
    return text


async def _write(db: Database, rec_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]]) -> None:
    async with db.session() as s:
        if db.dialect == "postgresql":
            await _copy(s, "idres_records", _REC_COLS, rec_rows)
            await _copy(s, "idres_values", _VAL_COLS, val_rows)
        else:
            await _sqlite_many(s, "idres_records", _REC_COLS, rec_rows)
            await _sqlite_many(s, "idres_values", _VAL_COLS, val_rows)


def _sqlite_ts(value: Any) -> Any:
    # the text form SQLAlchemy's SQLite DATETIME type stores (UTC, no zone)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def _sqlite_many(s: AsyncSession, table: str, cols: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    conn = await s.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    # table and column names are this module's constants, never input
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"  # noqa: S608
    stamps = [i for i, c in enumerate(cols) if isinstance(rows[0][c], datetime)]
    formatted: dict[Any, Any] = {}
    params = []
    for row in rows:
        values = [row[c] for c in cols]
        for i in stamps:
            ts = values[i]
            text = formatted.get(ts)
            if text is None:
                text = formatted[ts] = _sqlite_ts(ts)
            values[i] = text
        params.append(values)
    await driver.executemany(sql, params)


async def import_records(
    db: Database,
    tenant_id: str,
    rows: Iterable[tuple[str, list[HandleValue] | list[Any]]],
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> ImportStats:
    """Import ``(handle, values)`` pairs in batches; existing identifiers are skipped."""
    stats = ImportStats()
    pending: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    writer: asyncio.Task[None] | None = None

    async def write(batch: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        async with db.session() as s:
            exists = await _existing(s, list(batch))
        recs, vals = [], []
        for norm, (rec, vrows) in batch.items():
            if norm in exists:
                stats.skipped += 1
            else:
                recs.append(rec)
                vals.extend(vrows)
        if recs:
            await _write(db, recs, vals)
        stats.inserted += len(recs)
        if progress is not None:
            progress(len(batch))

    async def flush() -> None:
        # encoding the next batch overlaps with writing this one (the driver works in
        # its own thread or on the socket); batches are still written one after another
        nonlocal writer, pending
        if writer is not None:
            await writer
            writer = None
        if pending:
            writer = asyncio.create_task(write(pending))
            pending = {}

    for handle, raw_values in rows:
        try:
            h = parse(handle)
            values = (
                raw_values
                if all(isinstance(v, HandleValue) for v in raw_values)
                else decode_values(raw_values)
            )
            typed: list[HandleValue] = [v for v in values if isinstance(v, HandleValue)]
            if h.norm in pending:
                stats.skipped += 1
                continue
            pending[h.norm] = (encode_row(tenant_id, h, typed), value_rows(tenant_id, h.norm, typed))
        except GongyunError as exc:
            stats.failed += 1
            if len(stats.errors) < 100:
                stats.errors.append({"handle": str(handle)[:200], "code": exc.code, "message": exc.message})
            if progress is not None:
                progress(1)
            continue
        if len(pending) >= batch_size:
            await flush()
    await flush()
    await flush()
    return stats


def read_file(path: Path) -> Iterator[tuple[str, list[Any]]]:
    """Rows from CSV (``handle,type,value[,type,value...]`` or ``handle,url``) or JSONL."""
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise InvalidInput(f"{path}:{n}: not JSON") from None
                if not isinstance(obj, dict) or "handle" not in obj:
                    raise InvalidInput(f"{path}:{n}: expected an object with 'handle' and 'values'")
                yield str(obj["handle"]), obj.get("values", [])
        return
    with path.open(newline="", encoding="utf-8") as fh:
        for n, cells in enumerate(csv.reader(fh), 1):
            if not cells or (n == 1 and cells[0].lower() == "handle"):
                continue
            handle, rest = cells[0], cells[1:]
            if len(rest) == 1:
                yield handle, [string_value(1, "URL", rest[0])]
            elif len(rest) % 2 == 0:
                yield handle, [string_value(i // 2 + 1, rest[i], rest[i + 1]) for i in range(0, len(rest), 2)]
            else:
                raise InvalidInput(f"{path}:{n}: expected handle,url or handle,type,value[,type,value...]")


def count_rows(path: Path) -> int:
    """Number of data lines in an import file (for the progress bar)."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())
