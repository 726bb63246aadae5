"""Metadata database: SQLAlchemy 2 (async) engine and sessions, Alembic migrations."""

from gongyun.db.base import Base, utcnow
from gongyun.db.engine import Database, make_engine
from gongyun.db.migrate import downgrade, upgrade

__all__ = ["Base", "Database", "downgrade", "make_engine", "upgrade", "utcnow"]
