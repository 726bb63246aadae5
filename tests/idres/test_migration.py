"""The idres migration creates exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import gongyun.platform.models  # noqa: F401
from gongyun.db import upgrade
from gongyun.db.base import Base


def _ours(diff: Any) -> bool:
    text = repr(diff)
    return "idres_" in text


async def test_models_match_migration(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert [d for d in diffs if _ours(d)] == []
