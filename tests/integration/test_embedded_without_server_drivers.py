"""The embedded profile (``make run`` installs no server extras) starts without PostgreSQL drivers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, sys
sys.modules["psycopg"] = None  # as if the server extras were not installed: importing it fails
from gongyun.config import load_settings
from gongyun.platform import prepare_database, start_platform

async def main():
    settings = load_settings(data_dir=sys.argv[1], mqtt_embedded="off")
    await prepare_database(settings)
    runtime = await start_platform(settings)
    await runtime.close()
    print("started")

asyncio.run(main())
"""


def test_embedded_runtime_starts_without_psycopg(tmp_path: Path) -> None:
    env = {**os.environ, "GONGYUN_SECRET_KEY": "s" * 40}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "var")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("started")
