"""The registry's change feed: every process learns which records changed, within a second.

A write announces the normalised identifiers it changed inside its own transaction, so an
announcement exists exactly when its write is committed:

* PostgreSQL: ``NOTIFY gy_idres_changes`` with a JSON list of identifiers, delivered at commit
  and in commit order to every listening connection (every worker of every node on the
  database);
* SQLite: one row per identifier in ``idres_changes`` (SQLite has one writer at a time, so the
  sequence is commit order), polled by every process every ``POLL_S`` seconds.

``ChangeWatcher`` runs in each worker process and calls its listener with each changed
identifier, or with ``None`` ("forget everything") when it may have missed announcements (a
lost PostgreSQL connection, a pruned SQLite log). Bulk import announces ``*`` (forget
everything) when it committed new records: it may add thousands, and derived answers (a GS1 key
that fell back to a product record) may change with any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from gongyun.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
CHANNEL = "gy_idres_changes"
POLL_S = 0.2
KEEP = 20_000  # SQLite log rows kept; a process further behind forgets everything
_PAYLOAD = 7_000  # NOTIFY payloads are limited to 8,000 bytes
_BATCH = 2_000
Listener = Callable[[str | None], None]


async def announce(session: AsyncSession, norms: Iterable[str]) -> None:
    """Announce changed identifiers inside the write's transaction (seen by others at commit)."""
    changed = sorted(set(norms))
    if not changed:
        return
    if session.get_bind().dialect.name == "postgresql":
        chunk: list[str] = []
        size = 2
        for norm in changed:
            if chunk and size + len(norm) + 3 > _PAYLOAD:
                await _notify(session, chunk)
                chunk, size = [], 2
            chunk.append(norm)
            size += len(orjson.dumps(norm)) + 1
        await _notify(session, chunk)
        return
    await session.execute(
        text("INSERT INTO idres_changes (handle_norm) VALUES (:n)"), [{"n": n} for n in changed]
    )
    await session.execute(
        text("DELETE FROM idres_changes WHERE seq <= (SELECT max(seq) FROM idres_changes) - :keep"),
        {"keep": KEEP},
    )


async def _notify(session: AsyncSession, norms: list[str]) -> None:
    if len(orjson.dumps(norms)) > _PAYLOAD:  # one enormous identifier: tell everyone to forget all
        norms = ["*"]
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": orjson.dumps(norms).decode()})


class ChangeWatcher:
    """Follows the change feed of one database and tells ``listener`` about every change."""

    def __init__(self, db_url: str, listener: Listener, poll_s: float = POLL_S) -> None:
        self.url = make_url(db_url)
        self.listeners: list[Listener] = [listener]
        self.poll_s = poll_s
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.seen = 0  # identifiers announced to this process (for operators and tests)

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (LISTEN/NOTIFY), False on SQLite (polled log)."""
        return self.url.get_backend_name() == "postgresql"

    def _tell(self, norm: str | None) -> None:
        self.seen += 1
        for listener in self.listeners:
            listener(None if norm == "*" else norm)

    async def start(self) -> None:
        """Start following; returns once the feed is being followed."""
        run = self._listen if self.postgres else self._poll
        self.task = asyncio.create_task(run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        """Stop following."""
        await cancel_and_wait(self.task)

    async def _listen(self) -> None:
        import psycopg

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._tell(None)  # anything cached before now may have missed a change
                    self.ready.set()
                    delay = 0.1
                    async for note in conn.notifies():
                        try:
                            norms = orjson.loads(note.payload)
                        except orjson.JSONDecodeError:
                            norms = ["*"]
                        for norm in norms if isinstance(norms, list) else ["*"]:
                            self._tell(str(norm))
            except (psycopg.Error, OSError) as exc:
                log.warning("identifier change feed lost (%s); forgetting cached records", exc)
                self._tell(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _poll(self) -> None:
        path = self.url.database
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            row = conn.execute("SELECT max(seq) FROM idres_changes").fetchone()
            last = int(row[0] or 0)
            self.ready.set()
            while True:
                await asyncio.sleep(self.poll_s)
                try:
                    rows = conn.execute(
                        "SELECT seq, handle_norm FROM idres_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                        (last, _BATCH + 1),
                    ).fetchall()
                except sqlite3.Error as exc:
                    log.warning("identifier change log unreadable (%s); forgetting cached records", exc)
                    self._tell(None)
                    continue
                if not rows:
                    continue
                if rows[0][0] != last + 1 or len(rows) > _BATCH:
                    self._tell(None)  # pruned past us, or too many to name one by one
                    last = int(conn.execute("SELECT max(seq) FROM idres_changes").fetchone()[0] or 0)
                    continue
                for seq, norm in rows:
                    self._tell(norm)
                    last = seq
        finally:
            conn.close()
