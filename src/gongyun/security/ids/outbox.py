"""The sensor's local outbox: a SQLite file that holds what is not yet on the bus.

Everything the sensor ships goes through it: ``put`` appends (durably, WAL), the shipper takes
``batch``es in order, publishes them with message ids derived from the row ids (so a batch
retried after an outage is de-duplicated by the bus) and ``ack``s them. An outage of the bus or
the platform therefore loses nothing: rows wait on disk, and a restarted sensor ships them.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

MAX_ROWS = 2_000_000  # beyond this the oldest records (never events) are dropped, and counted


class Outbox:
    """An append-only queue of (kind, payload) rows on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self.dropped = 0
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
                " payload BLOB NOT NULL)"
            )

    def put(self, kind: str, payload: bytes) -> None:
        """Append one row."""
        self.put_many([(kind, payload)])

    def put_many(self, rows: list[tuple[str, bytes]]) -> None:
        """Append rows in one transaction."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO outbox (kind, payload) VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
            if len(rows) > 1000 and self._depth() > MAX_ROWS:
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = 'records' ORDER BY id"
                    " LIMIT ?)",
                    (MAX_ROWS // 10,),
                )
                self.dropped += cur.rowcount

    def batch(self, limit: int = 200) -> list[tuple[int, str, bytes]]:
        """The oldest rows, in order."""
        with self._lock:
            cur = self._db.execute("SELECT id, kind, payload FROM outbox ORDER BY id LIMIT ?", (limit,))
            return [(int(i), str(k), bytes(p)) for i, k, p in cur.fetchall()]

    def ack(self, ids: list[int]) -> None:
        """Forget rows that are on the bus."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def _depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def depth(self) -> int:
        """Rows waiting."""
        with self._lock:
            return self._depth()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
