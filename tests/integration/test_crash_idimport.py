"""kill -9 ``gongyun id import`` midway: nothing of the file is committed, a re-run imports it all.

The import validates every row and writes the whole file in one transaction (all-or-nothing,
docs/operations.md), so a run killed while it streams rows to the database must leave no record
and no value behind: the database rolls the open transaction back (PostgreSQL when the client's
connection drops, SQLite from its journal on the next open). The re-run then inserts every row,
exactly once. The moment to kill is read from the import's own progress bar (rows streamed so
far), so the kill lands between the first batches and the commit on a slow or a fast machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.crashhelp import GONGYUN
from tests.services import scratch_postgres_database

Counts = Callable[[], tuple[int, int, int]]

ROWS = 100_000
BATCH = 2_000
PREFIX = "88.100.7"

COUNT = "SELECT count(*), count(DISTINCT handle_norm) FROM idres_records"
VALUES = "SELECT count(*) FROM idres_values"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Counts]]:
    """The import's environment and a reader of (records, distinct handles, values)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    env = {**keep, "GONGYUN_DATA_DIR": str(tmp_path / "var"), "GONGYUN_ADMIN_PASSWORD": "admin-Passw0rd!"}
    if request.param == "sqlite":
        db = tmp_path / "var" / "gongyun.db"

        def sqlite_counts() -> tuple[int, int, int]:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
                records, distinct = conn.execute(COUNT).fetchone()
                return int(records), int(distinct), int(conn.execute(VALUES).fetchone()[0])

        yield env, sqlite_counts
        return
    with scratch_postgres_database() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")

        def pg_counts() -> tuple[int, int, int]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(COUNT).fetchone()
                values = conn.execute(VALUES).fetchone()
                assert row is not None and values is not None
                return int(row[0]), int(row[1]), int(values[0])

        yield {**env, "GONGYUN_DATABASE_URL": url}, pg_counts


class _Progress:
    """Reads the import's progress bar (rich, forced to draw into a pipe) on a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.rows = 0
        self.text = b""
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while chunk := self._proc.stdout.read1(4096):
            self.text = (self.text + chunk)[-4096:]
            done = re.findall(rb"(\d+)/" + str(ROWS).encode(), self.text)
            if done:
                self.rows = int(done[-1])


@pytest.mark.slow
def test_kill_9_midway_through_id_import_commits_nothing_and_rerun_imports_all(
    tmp_path: Path, database: tuple[dict[str, str], Counts]
) -> None:
    env, counts = database
    filed = subprocess.run(
        [GONGYUN, "id", "prefix", "add", PREFIX, "--active"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert filed.returncode == 0, filed.stderr
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text(
        "handle,url\n" + "".join(f"{PREFIX}/k{i},https://x.example/k{i}\n" for i in range(ROWS))
    )
    cmd = [GONGYUN, "id", "import", str(csv_file), "--batch-size", str(BATCH)]
    proc = subprocess.Popen(
        cmd, env={**env, "FORCE_COLOR": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        progress = _Progress(proc)
        deadline = time.monotonic() + 120
        while progress.rows < 3 * BATCH:  # batches are streaming into the open transaction
            assert proc.poll() is None, "the import finished before it could be killed: use more rows"
            assert time.monotonic() < deadline, f"no progress from the import: {progress.text[-300:]!r}"
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=10)
        assert 0 < progress.rows < ROWS, f"killed at {progress.rows} rows: not midway"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert counts() == (0, 0, 0), "a killed import left part of the file committed"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"inserted {ROWS}, skipped 0, failed 0" in rerun.stdout, rerun.stdout
    assert counts() == (ROWS, ROWS, ROWS)

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"inserted 0, skipped {ROWS}, failed 0" in again.stdout, again.stdout
    assert counts() == (ROWS, ROWS, ROWS)
