"""Synchronous point reads of an SQLite registry on one persistent read-only connection.

On the embedded backend a resolution reads one or two rows of a local file: a few
microseconds with the ``sqlite3`` module, against hundreds through an async session (a
thread hop, an ORM statement, a transaction). Each worker process opens one read-only
connection lazily and keeps it; the lean server's fast paths and the handlers share it.
SQLite gives every statement outside a transaction the latest committed state, so a write
of any process is seen by the next read.
"""

from __future__ import annotations

import sqlite3

from gongyun.db import Database
from gongyun.idres.registry import RawRecord

_RECORD = (
    "SELECT handle, values_json, public_json, min_ttl, tenant_id FROM idres_records WHERE handle_norm = ?"
)
# the records carrying one public value: what a GS1, OID or Ecode key resolves through
_BY_VALUE = (
    "SELECT r.handle, COALESCE(r.public_json, r.values_json), r.min_ttl FROM idres_values v "
    "JOIN idres_records r ON r.handle_norm = v.handle_norm "
    "WHERE v.type = ? AND v.value_key = ? AND v.public = 1"
)
_HOMED = "SELECT 1 FROM idres_prefixes WHERE prefix_norm IN ({marks})"


class SqliteReader:
    """Point reads of one tenant's records (every tenant's with ``tenant_id`` None)."""

    def __init__(self, path: str, tenant_id: str | None) -> None:
        self.path = path
        self.tenant_id = tenant_id
        self._conn: sqlite3.Connection | None = None
        tenant = "" if tenant_id is None else " AND tenant_id = ?"
        self._record = _RECORD + tenant
        self._by_value = _BY_VALUE + ("" if tenant_id is None else " AND v.tenant_id = ?")
        self._by_value += " ORDER BY r.handle LIMIT ?"
        self._tenant = () if tenant_id is None else (tenant_id,)
        self._homed_tail = tenant + " LIMIT 1"

    @classmethod
    def of(cls, db: Database, tenant_id: str | None) -> SqliteReader | None:
        """A reader of the database's file, or None when it is not a SQLite file."""
        path = db.engine.url.database
        if db.dialect != "sqlite" or path in (None, "", ":memory:"):
            return None
        return cls(str(path), tenant_id)

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened on first use (after the node's database exists)."""
        if self._conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA mmap_size=2147483648")
            conn.execute("PRAGMA cache_size=-131072")
            self._conn = conn
        return self._conn

    def record(self, norm: str) -> RawRecord | None:
        """``(handle, values_json, public_json, min_ttl, tenant)`` of one identifier, or None."""
        row = self.conn.execute(self._record, (norm, *self._tenant)).fetchone()
        return None if row is None else (row[0], row[1], row[2] or row[1], row[3], row[4])

    def by_value(self, vtype: str, key: str, limit: int = 50) -> list[tuple[str, str, int]]:
        """``(handle, public_json, min_ttl)`` of the records with a public value of that type and key."""
        return self.conn.execute(self._by_value, (vtype, key, *self._tenant, limit)).fetchall()

    def homed(self, chain: list[str]) -> bool:
        """True when a filing covers one of the normalised prefixes of ``chain``."""
        sql = _HOMED.format(marks=",".join("?" * len(chain))) + self._homed_tail
        return self.conn.execute(sql, (*chain, *self._tenant)).fetchone() is not None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
