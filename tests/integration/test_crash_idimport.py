"""kill -9 ``gongyun id import`` midway: committed batches stay whole, a re-run completes without duplicates.

The import commits one transaction per batch (records and their values together) and reports
its counts only at the end, so what the killed run had committed is read from the database:
it must be whole batches, each record with its value; the re-run skips exactly those and
inserts the rest.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.crashhelp import GONGYUN
from tests.services import scratch_postgres_database

Counts = Callable[[], tuple[int, int, int]]

ROWS = 60_000
BATCH = 2_000


COUNT = "SELECT count(*), count(DISTINCT handle_norm) FROM idres_records"
ORPHANS = (
    "SELECT count(*) FROM idres_records r WHERE NOT EXISTS "
    "(SELECT 1 FROM idres_values v WHERE v.handle_norm = r.handle_norm)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Counts]]:
    """The import's environment and a reader of (records, distinct handles, records without value)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    env = {**keep, "GONGYUN_DATA_DIR": str(tmp_path / "var"), "GONGYUN_ADMIN_PASSWORD": "admin-Passw0rd!"}
    if request.param == "sqlite":
        db = tmp_path / "var" / "gongyun.db"

        def sqlite_counts() -> tuple[int, int, int]:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
                records, distinct = conn.execute(COUNT).fetchone()
                return int(records), int(distinct), int(conn.execute(ORPHANS).fetchone()[0])

        yield env, sqlite_counts
        return
    with scratch_postgres_database() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")

        def pg_counts() -> tuple[int, int, int]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(COUNT).fetchone()
                orphans = conn.execute(ORPHANS).fetchone()
                assert row is not None and orphans is not None
                return int(row[0]), int(row[1]), int(orphans[0])

        yield {**env, "GONGYUN_DATABASE_URL": url}, pg_counts


@pytest.mark.slow
@pytest.mark.skip(
    reason="written for the batch-committing import; the import is now one transaction and needs "
    "an active prefix of the tenant: its kill -9 test (nothing committed, the rerun completes) "
    "is still to be written"
)
def test_kill_9_midway_through_id_import_keeps_whole_batches_and_rerun_completes(
    tmp_path: Path, database: tuple[dict[str, str], Counts]
) -> None:
    env, counts = database
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text(
        "handle,url\n" + "".join(f"88.100.7/k{i},https://x.example/k{i}\n" for i in range(ROWS))
    )
    cmd = [GONGYUN, "id", "import", str(csv_file), "--batch-size", str(BATCH)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 2 * BATCH:  # kill once a couple of batches are in
            assert proc.poll() is None, "the import finished before it could be killed: use more rows"
            assert time.monotonic() < deadline, "import too slow"
            try:
                committed = counts()[0]
            except (sqlite3.Error, psycopg.Error):  # no database or tables yet, or the database busy
                committed = 0
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    records, distinct, orphans = counts()
    assert 0 < records < ROWS and records == distinct
    assert records % BATCH == 0, f"{records} records: a batch was committed in part"
    assert orphans == 0, f"{orphans} records committed without their values"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"inserted {ROWS - records}, skipped {records}, failed 0" in rerun.stdout, rerun.stdout
    assert counts() == (ROWS, ROWS, 0)
