"""Bulk import of many records: every record validated, written by COPY or executemany.

Each record is checked as a single registration would be: identifier syntax, value decoding and
size limits, the tenant's active prefix, and the metadata template it names in ``GY_TEMPLATE``.
By default the import is all or nothing: one transaction, and any bad record (reported with its
line number) rolls it back. With ``skip_bad`` the bad records are reported and the good ones
imported. Identifiers already registered are skipped either way, so an import can be re-run.
Storage is in ``gongyun.idres.bulk_write``.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gongyun.db import Database
from gongyun.errors import GongyunError, InvalidInput
from gongyun.idres import prefixes as pfx
from gongyun.idres.bulk_write import RecRow, ValRow, Writer, open_writer
from gongyun.idres.changes import announce
from gongyun.idres.errors import HandleNotFound
from gongyun.idres.registry import Registry
from gongyun.idres.syntax import Handle, fold, parse
from gongyun.idres.templates import Template, template_ref
from gongyun.idres.values import (
    CORE,
    DEFAULT_TTL,
    MAX_RECORD_BYTES,
    MAX_VALUES,
    HandleValue,
    InvalidValue,
    RecordTooLarge,
    decode_values,
    string_value,
)

MAX_ERRORS = 100


@dataclass(slots=True)
class ImportStats:
    """What an import did (``rolled_back``: bad records made an all-or-nothing import refuse)."""

    inserted: int = 0
    skipped: int = 0
    failed: int = 0
    rolled_back: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form (at most the first 100 errors)."""
        return {
            "inserted": self.inserted,
            "skipped": self.skipped,
            "failed": self.failed,
            "rolledBack": self.rolled_back,
            "errors": self.errors,
        }


class _Refused(Exception):
    """Raised inside the import's transaction to roll it back."""


class _Checker:
    """Prefix and template checks, each looked up once per import."""

    def __init__(
        self, registry: Registry, tenant_id: str, writer: Writer, settle: Callable[[], Awaitable[None]]
    ) -> None:
        self.registry = registry
        self.settle = settle
        self.tenant_id = tenant_id
        self.writer = writer
        self.prefixes: dict[str, GongyunError | None] = {}
        self.templates: dict[tuple[str, str, int | None], Template | GongyunError] = {}

    async def check(self, h: Handle, values: list[HandleValue]) -> None:
        """Raise what a single registration of the record would raise."""
        s = self.writer.session
        key = h.prefix_norm
        if key not in self.prefixes:
            await self.settle()
            try:
                await pfx.require_active(s, self.tenant_id, h.prefix)
                self.prefixes[key] = None
            except GongyunError as exc:
                self.prefixes[key] = exc
        refused = self.prefixes[key]
        if refused is not None:
            raise refused
        ref = template_ref(values)
        if ref is None:
            return
        tkey = (key, ref[0], ref[1])
        template = self.templates.get(tkey)
        if template is None:
            await self.settle()
            try:
                template = await self.registry.get_template(self.tenant_id, h.prefix, *ref, session=s)
            except HandleNotFound as exc:
                template = exc
            self.templates[tkey] = template
        if isinstance(template, GongyunError):
            raise template
        template.check(values)


def _stamp(dialect: str) -> str:
    now = datetime.now(UTC)
    # PostgreSQL reads ISO 8601 with its zone; SQLite keeps the text SQLAlchemy's DATETIME writes
    return now.isoformat() if dialect == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")


def _encode(tenant_id: str, h: Handle, values: list[HandleValue], stamp: str) -> tuple[RecRow, list[ValRow]]:
    """The ``idres_records`` row and ``idres_values`` rows of one record (the registry's encoding)."""
    # one pass over the values: this runs once per record of imports of hundreds of millions
    if any(values[i].index > values[i + 1].index for i in range(len(values) - 1)):
        values = sorted(values, key=lambda v: v.index)
    text = f"{h.prefix}/{h.suffix}"
    norm = fold(text)
    full_list: list[dict[str, Any]] = []
    public_list: list[dict[str, Any]] = []
    vals: list[ValRow] = []
    min_ttl = DEFAULT_TTL if not values else values[0].ttl
    for v in values:
        as_json = v.to_json()
        full_list.append(as_json)
        public = v.permissions.public_read
        if public:
            public_list.append(as_json)
        min_ttl = min(min_ttl, v.ttl)
        value = v.value if type(v.value) is str else v.text()
        vals.append((norm, v.index, tenant_id, v.type[:255], value[:255], public))
    full = orjson.dumps(full_list).decode()
    if len(full) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"the record is {len(full)} bytes, at most {MAX_RECORD_BYTES} allowed")
    all_public = len(public_list) == len(full_list)
    public_json = None if all_public else orjson.dumps(public_list).decode()
    rec = (norm, tenant_id, text, fold(h.prefix), full, public_json, all_public, min_ttl, 1, stamp, stamp)
    return rec, vals


def _decoded(raw_values: Any) -> list[HandleValue]:
    if isinstance(raw_values, GongyunError):
        raise raw_values
    if not (isinstance(raw_values, list) and all(isinstance(v, HandleValue) for v in raw_values)):
        return _not_core(decode_values(raw_values))
    if len(raw_values) > MAX_VALUES:
        raise RecordTooLarge(f"a record holds at most {MAX_VALUES} values, got {len(raw_values)}")
    if len({v.index for v in raw_values}) != len(raw_values):
        raise InvalidValue("two values share an index")
    return _not_core(raw_values)


def _not_core(values: list[HandleValue]) -> list[HandleValue]:
    """Refuse core values: the bulk path writes rows directly and does not seal them."""
    for v in values:
        if v.level >= CORE:
            raise InvalidValue(
                "core (level-3) values are registered through the records API, which seals them",
                index=v.index,
                field="classification",
            )
    return values


class _Import:
    """One import run: validation, batching and the write of the previous batch overlapping."""

    def __init__(self, stats: ImportStats, writer: Writer, progress: Callable[[int], None] | None) -> None:
        self.stats = stats
        self.writer = writer
        self.progress = progress
        self.pending: dict[str, tuple[RecRow, list[ValRow]]] = {}
        self.task: asyncio.Task[int] | None = None
        self.seen = 0
        self.reported = 0

    async def settle(self) -> None:
        """Wait for the batch being written (before the session is used for anything else)."""
        if self.task is not None:
            task, self.task = self.task, None
            self.stats.inserted += await task

    async def flush(self, keep: bool) -> None:
        """Start writing the pending batch (or drop it when ``keep`` is false)."""
        await self.settle()
        batch, self.pending = self.pending, {}
        if batch and keep:
            size = len(batch)
            self.task = asyncio.create_task(self.writer.write_new(batch))
            self.task.add_done_callback(lambda t: self._count(t, size))
        if self.progress is not None and self.seen > self.reported:
            self.progress(self.seen - self.reported)
            self.reported = self.seen

    def _count(self, task: asyncio.Task[int], size: int) -> None:
        if not task.cancelled() and task.exception() is None:
            self.stats.skipped += size - task.result()


async def _run(
    run: _Import,
    checker: _Checker,
    rows: Iterable[tuple[str, Any] | tuple[str, Any, int]],
    tenant_id: str,
    stamp: str,
    batch_size: int,
    skip_bad: bool,
) -> None:
    stats = run.stats
    for n, item in enumerate(rows, 1):
        run.seen = n
        handle, raw_values = item[0], item[1]
        line = item[2] if len(item) > 2 else n
        try:
            h = parse(handle)
            values = _decoded(raw_values)
            await checker.check(h, values)
            encoded = _encode(tenant_id, h, values, stamp)
            norm = encoded[0][0]
            if norm in run.pending:
                stats.skipped += 1
                continue
        except GongyunError as exc:
            stats.failed += 1
            if len(stats.errors) < MAX_ERRORS:
                err = {"line": line, "handle": str(handle)[:200], "code": exc.code, "message": exc.message}
                stats.errors.append(err)
            continue
        if stats.failed and not skip_bad:
            continue  # still validating, to report every bad line; nothing more is written
        run.pending[norm] = encoded
        if len(run.pending) >= batch_size:
            await run.flush(keep=True)
        elif not n % 512:
            await asyncio.sleep(0)  # lets the batch being written go on streaming to the database
    await run.flush(keep=skip_bad or not stats.failed)
    await run.settle()


async def import_records(
    db: Database,
    tenant_id: str,
    rows: Iterable[tuple[str, Any] | tuple[str, Any, int]],
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
    *,
    skip_bad: bool = False,
) -> ImportStats:
    """Import ``(handle, values[, line])`` rows; existing identifiers are skipped.

    ``values`` is a list of ``HandleValue`` or of their JSON form (or the ``GongyunError`` a
    reader raised for a malformed line). Without ``skip_bad`` one bad record rolls back all.
    """
    stats = ImportStats()
    stamp = _stamp(db.dialect)
    try:
        async with db.session() as s:
            writer = await open_writer(s, db.dialect)
            run = _Import(stats, writer, progress)
            checker = _Checker(Registry(db), tenant_id, writer, run.settle)
            try:
                await _run(run, checker, rows, tenant_id, stamp, batch_size, skip_bad)
            finally:
                if run.task is not None and not run.task.done():
                    run.task.cancel()
            if stats.failed and not skip_bad:
                raise _Refused
            if stats.inserted:
                # new records change derived answers that nodes keep (a GS1 key served by a
                # fallback record, a recursive node's "not found"): every node forgets its caches
                await announce(s, ["*"])
    except _Refused:
        stats.rolled_back = True
        stats.skipped = stats.inserted = 0
    return stats


Row = tuple[str, list[Any] | GongyunError, int]


def read_file(path: Path) -> Iterator[Row]:
    """``(handle, values, line)`` from CSV (``handle,url`` or ``handle,type,value[,type,value...]``)
    or JSONL (``{"handle": ..., "values": [...]}``); a malformed line yields its error as values."""
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    yield (
                        raw[:200].decode("utf-8", "replace").strip(),
                        InvalidInput("the line is not JSON"),
                        n,
                    )
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("handle"), str):
                    bad = InvalidInput("expected an object with 'handle' and 'values'")
                    yield raw[:200].decode("utf-8", "replace").strip(), bad, n
                    continue
                yield obj["handle"], obj.get("values", []), n
        return
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        for cells in reader:
            n = reader.line_num
            if not cells or (n == 1 and cells[0].lower() == "handle"):
                continue
            handle, rest = cells[0], cells[1:]
            if len(rest) == 1:
                yield handle, [string_value(1, "URL", rest[0])], n
            elif rest and len(rest) % 2 == 0:
                yield (
                    handle,
                    [string_value(i // 2 + 1, rest[i], rest[i + 1]) for i in range(0, len(rest), 2)],
                    n,
                )
            else:
                yield handle, InvalidInput("expected handle,url or handle,type,value[,type,value...]"), n


def count_rows(path: Path) -> int:
    """Number of data lines in an import file (for the progress bar; a CSV header is not one)."""
    with path.open("rb") as fh:
        first = fh.readline()
        header = (
            path.suffix.lower() not in {".jsonl", ".ndjson"}
            and first.split(b",")[0].strip().lower() == b"handle"
        )
        return sum(1 for line in fh if line.strip()) + (1 if first.strip() and not header else 0)
