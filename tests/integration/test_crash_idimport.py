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
from pathlib import Path

import pytest

from tests.integration.crashhelp import GONGYUN

ROWS = 60_000
BATCH = 2_000


def _env(data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GONGYUN_")}
    return {**keep, "GONGYUN_DATA_DIR": str(data_dir), "GONGYUN_ADMIN_PASSWORD": "admin-Passw0rd!"}


def _counts(db: Path) -> tuple[int, int, int]:
    """(records, distinct handles, records without their value) in the SQLite database."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        records, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT handle_norm) FROM idres_records"
        ).fetchone()
        orphans = conn.execute(
            "SELECT count(*) FROM idres_records r WHERE NOT EXISTS "
            "(SELECT 1 FROM idres_values v WHERE v.handle_norm = r.handle_norm)"
        ).fetchone()[0]
    return int(records), int(distinct), int(orphans)


@pytest.mark.slow
def test_kill_9_midway_through_id_import_keeps_whole_batches_and_rerun_completes(tmp_path: Path) -> None:
    data = tmp_path / "var"
    csv_file = tmp_path / "ids.csv"
    csv_file.write_text(
        "handle,url\n" + "".join(f"88.100.7/k{i},https://x.example/k{i}\n" for i in range(ROWS))
    )
    cmd = [GONGYUN, "id", "import", str(csv_file), "--batch-size", str(BATCH)]
    db = data / "gongyun.db"
    proc = subprocess.Popen(cmd, env=_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 2 * BATCH:  # kill once a couple of batches are in
            assert proc.poll() is None, "the import finished before it could be killed: use more rows"
            assert time.monotonic() < deadline, "import too slow"
            if db.exists():
                try:
                    committed = _counts(db)[0]
                except sqlite3.OperationalError:  # tables not created yet, or the database busy
                    committed = 0
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    records, distinct, orphans = _counts(db)
    assert 0 < records < ROWS and records == distinct
    assert records % BATCH == 0, f"{records} records: a batch was committed in part"
    assert orphans == 0, f"{orphans} records committed without their values"

    rerun = subprocess.run(cmd, env=_env(data), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"inserted {ROWS - records}, skipped {records}, failed 0" in rerun.stdout, rerun.stdout
    assert _counts(db) == (ROWS, ROWS, 0)
