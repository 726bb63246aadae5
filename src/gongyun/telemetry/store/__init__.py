"""Time-series stores: DuckDB (embedded) and PostgreSQL (server) behind one protocol."""

from __future__ import annotations

from pathlib import Path

from gongyun.errors import ConfigError
from gongyun.telemetry.store.base import Point, RetentionPolicy, TimeSeriesStore, from_us, to_us


def open_store(url: str) -> TimeSeriesStore:
    """A store for ``duckdb:///path/file.duckdb``, ``duckdb://:memory:`` or a PostgreSQL URL.

    The store is not opened yet: ``await store.open()``.
    """
    if url.startswith("duckdb://"):
        from gongyun.telemetry.store.duckdb import DuckDBStore

        rest = url[len("duckdb://") :]
        return DuckDBStore(":memory:" if rest in ("", ":memory:", "/:memory:") else Path(rest))
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        from gongyun.telemetry.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(f"unknown time-series store URL {url!r}: use duckdb:///file or postgresql://...")


def store_url_for(data_dir: Path, database_url: str | None) -> str:
    """The default store URL: PostgreSQL when the metadata DB is PostgreSQL, else DuckDB in data_dir."""
    if database_url and database_url.startswith(("postgresql", "postgres://")):
        return database_url
    return f"duckdb://{(data_dir / 'telemetry.duckdb').resolve()}"


__all__ = ["Point", "RetentionPolicy", "TimeSeriesStore", "from_us", "open_store", "store_url_for", "to_us"]
