"""The trace app's branch: a recall's per-item rows become id ranges (trace_0003) and come back on
downgrade; the migrated tables match the app's table definitions (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gongyun.apps.migrations import _config, version_table
from gongyun.apps.trace.manifest import MANIFEST
from gongyun.apps.trace.tables import metadata
from gongyun.db.engine import make_engine

assert MANIFEST.migrations is not None
HERE = Path(MANIFEST.migrations)


def _steps(conn: Connection) -> dict[str, object]:
    cfg = _config(conn, "trace", HERE)
    command.upgrade(cfg, "trace_0002")
    conn.execute(
        text(
            "INSERT INTO trace_items (id, tenant_id, kind, key, status, created_at) VALUES "
            "(5, 't', 'serial', 'own:a', 'frozen', '2026-01-01'), (6, 't', 'serial', 'own:b', 'frozen', "
            "'2026-01-01'), (9, 't', 'serial', 'own:c', 'frozen', '2026-01-01')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO trace_recall_items (recall_id, item_id, previous_status) "
            "VALUES (1, 5, 'active'), (1, 6, 'active'), (1, 9, 'active')"
        )
    )
    command.upgrade(cfg, "heads")
    ranges = conn.execute(text("SELECT lo, hi, n FROM trace_recall_ranges ORDER BY lo")).all()
    ctx = MigrationContext.configure(conn, opts={"version_table": version_table("trace")})
    diff = [d for d in compare_metadata(ctx, metadata) if "alembic_version" not in str(d)]
    command.downgrade(cfg, "trace_0002")
    back = conn.execute(text("SELECT item_id FROM trace_recall_items ORDER BY item_id")).scalars().all()
    return {"ranges": [tuple(r) for r in ranges], "diff": diff, "back": list(back)}


async def test_recall_rows_become_ranges_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            got = await conn.run_sync(_steps)
    finally:
        await engine.dispose()
    assert got["ranges"] == [(5, 5, 1), (6, 6, 1), (9, 9, 1)]
    assert got["diff"] == []
    assert got["back"] == [5, 6, 9]
