"""Durable store-and-forward buffer: a SQLite file in WAL mode holding samples under sequence numbers.

Every sample appended gets the next sequence number (never reused, also across restarts). The
uplink reads in sequence order and acknowledges what the platform has; acknowledged samples are
deleted. Bounds: ``max_bytes`` and ``max_age_s``. Drop policy, logged at WARNING with the
range dropped and counted in ``dropped``: when a bound is exceeded the OLDEST unacknowledged
samples are dropped first (fresh data is worth more than stale data on a plant floor).
A committed append survives ``kill -9`` (WAL, ``synchronous=NORMAL``; ``FULL`` also survives
power loss).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gongyun.core.types import Quality, Sample, TagRef

log = logging.getLogger(__name__)
ROW_OVERHEAD = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    tag TEXT NOT NULL,
    value TEXT NOT NULL,
    ts REAL NOT NULL,
    quality TEXT NOT NULL,
    added REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_STATS = "SELECT MIN(seq), MAX(seq), COUNT(*), COALESCE(SUM(size), 0) FROM samples"
_DROP = {
    "age": (f"{_STATS} WHERE added < ?", "DELETE FROM samples WHERE added < ?"),
    "size": (f"{_STATS} WHERE seq <= ?", "DELETE FROM samples WHERE seq <= ?"),
}


class Buffer:
    """The gateway's durable, bounded, ordered sample queue."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(_SCHEMA)
        self.epoch = self._meta("epoch")
        if not self.epoch:  # identifies this buffer file: sequence numbers are unique per epoch
            self.epoch = secrets.randbits(62) or 1
            self._set_meta("epoch", self.epoch)
        last = self._meta("last_seq")
        top = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM samples").fetchone()[0]
        self.next_seq = max(last, top) + 1
        self.acked = self._meta("acked")
        self.size = int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM samples").fetchone()[0])
        self.depth = int(self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        self.dropped = {"age": self._meta("dropped_age"), "size": self._meta("dropped_size")}
        self.appended = 0

    def _meta(self, key: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )

    def append(self, samples: list[Sample]) -> list[Sample]:
        """Store samples durably in one transaction; return them stamped with their sequence numbers."""
        if not samples:
            return []
        now = time.time()
        rows, out = [], []
        seq = self.next_seq
        added_size = 0
        for sample in samples:
            value = json.dumps(sample.value)
            size = len(value) + len(sample.tag.device) + len(sample.tag.tag) + ROW_OVERHEAD
            added_size += size
            rows.append(
                (
                    seq,
                    sample.tag.device,
                    sample.tag.tag,
                    value,
                    sample.ts.timestamp(),
                    str(sample.quality),
                    now,
                    size,
                )
            )
            out.append(Sample(sample.tag, sample.value, sample.ts, sample.quality, seq, sample.received))
            seq += 1
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._set_meta("last_seq", seq - 1)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.next_seq = seq
        self.size += added_size
        self.depth += len(rows)
        self.appended += len(rows)
        if self.size > self.max_bytes:
            self.enforce()
        return out

    def read(self, after: int, limit: int) -> list[Sample]:
        """Up to ``limit`` samples with seq greater than ``after``, in sequence order."""
        rows = self.db.execute(
            "SELECT seq, device, tag, value, ts, quality, added FROM samples "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            Sample(
                TagRef(device, tag),
                json.loads(value),
                datetime.fromtimestamp(ts, UTC),
                Quality(quality),
                seq,
                datetime.fromtimestamp(added, UTC),
            )
            for seq, device, tag, value, ts, quality, added in rows
        ]

    def ack(self, upto: int) -> int:
        """The platform has everything up to ``upto``: delete it; return how many rows went."""
        if upto <= self.acked:
            return 0
        self.db.execute("BEGIN IMMEDIATE")
        freed, count = self.db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM samples WHERE seq <= ?", (upto,)
        ).fetchone()
        self.db.execute("DELETE FROM samples WHERE seq <= ?", (upto,))
        self._set_meta("acked", upto)
        self.db.execute("COMMIT")
        self.acked = upto
        self.size -= int(freed)
        self.depth -= int(count)
        return int(count)

    def _drop(self, reason: str, bound: float | int) -> None:
        select, delete = _DROP[reason]
        first, last, count, freed = self.db.execute(select, (bound,)).fetchone()
        if not count:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(delete, (bound,))
        self.dropped[reason] += int(count)
        self._set_meta(f"dropped_{reason}", self.dropped[reason])
        self.db.execute("COMMIT")
        self.size -= int(freed)
        self.depth -= int(count)
        log.warning(
            "store-and-forward buffer full (%s): dropped %d oldest samples, seq %d..%d (policy drop-oldest)",
            reason,
            count,
            first,
            last,
        )

    def enforce(self) -> None:
        """Apply the age and size bounds, dropping the oldest samples first."""
        self._drop("age", time.time() - self.max_age_s)
        if self.size > self.max_bytes:
            # free 10 % headroom so that a full buffer does not drop on every append
            target = self.size - int(self.max_bytes * 0.9)
            cutoff = self.db.execute(
                "SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq) AS run FROM samples) "
                "WHERE run >= ? ORDER BY seq LIMIT 1",
                (target,),
            ).fetchone()
            if cutoff:
                self._drop("size", int(cutoff[0]))

    def stats(self) -> dict[str, int | float]:
        """Depth, size and counters for status pages."""
        return {
            "epoch": self.epoch,
            "depth": self.depth,
            "bytes": self.size,
            "next_seq": self.next_seq,
            "acked": self.acked,
            "appended": self.appended,
            "dropped_age": self.dropped["age"],
            "dropped_size": self.dropped["size"],
        }

    def close(self) -> None:
        """Close the database."""
        self.db.close()
