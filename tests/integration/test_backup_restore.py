"""The documented backup (pg_dump -Fc) taken while writing, restored into a new database.

A writer streams telemetry batches and asset creations into a running server-profile process;
the backup block of docs/operations.md runs meanwhile; the restore block loads the dump into a
new database; a process started on it must serve logins and hold every write that was
acknowledged before the backup began.
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.opsdoc import DocShell, doc_deployment, login, stop_pid, wait_ready
from tests.services import free_port

BATCH = 50
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class Writer:
    """Telemetry batches and asset creations, each noted with the moment it was acknowledged."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base = base
        self.headers = headers
        self.stop = threading.Event()
        self.batches: list[tuple[float, list[float]]] = []  # (acknowledged at, values)
        self.assets: list[tuple[float, str]] = []
        self.errors: list[str] = []

    def telemetry(self) -> None:
        """Ingest batches of BATCH samples with unique values and timestamps until stopped."""
        n = 0
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30, trust_env=False) as c:
            while not self.stop.is_set():
                values = [float(n + i) for i in range(BATCH)]
                samples = [
                    {"tag": "pump1/temp", "value": v, "ts": (START + timedelta(milliseconds=v)).isoformat()}
                    for v in values
                ]
                n += BATCH
                r = c.post("/api/v1/telemetry/ingest", json={"samples": samples})
                if r.status_code == 200 and r.json()["accepted"] == BATCH:
                    self.batches.append((time.monotonic(), values))
                else:
                    self.errors.append(f"ingest {r.status_code} {r.text[:200]}")

    def creations(self) -> None:
        """Create assets with unique names until stopped."""
        n = 0
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30, trust_env=False) as c:
            while not self.stop.is_set():
                name = f"Site {n:05d}"
                n += 1
                r = c.post("/api/v1/assets", json={"level": "enterprise", "name": name, "parent_id": None})
                if r.status_code == 201:
                    self.assets.append((time.monotonic(), name))
                else:
                    self.errors.append(f"asset {r.status_code} {r.text[:200]}")


def _seed_tag(base: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False) as c:
        dev = c.post("/api/v1/assets/devices", json={"name": "pump1"})
        assert dev.status_code == 201, dev.text
        tag = c.post(f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "temp"})
        assert tag.status_code == 201, tag.text


def _serve_restored(shell: DocShell) -> tuple[subprocess.Popen[bytes], str]:
    """``gongyun --config server.toml serve`` with database_url naming the restored database."""
    env = {**shell.env(), **shell.secrets()}
    home = Path(env["GONGYUN_HOME"])
    env["GONGYUN_DATABASE_URL"] = (
        f"postgresql+psycopg://{env['GONGYUN_DB']}@127.0.0.1:5432/{env['GONGYUN_RESTORE_DB']}"
    )
    port = free_port()
    log = (home / "restored.log").open("ab")
    proc = subprocess.Popen(
        ["gongyun", "--config", "server.toml", "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    return proc, f"http://127.0.0.1:{port}"


def _stored_values(base: str, headers: dict[str, str]) -> set[float]:
    params: dict[str, Any] = {
        "tag": "pump1/temp",
        "start": (START - timedelta(minutes=1)).isoformat(),
        "end": (START + timedelta(days=1)).isoformat(),
        "limit": 100_000,
    }
    r = httpx.get(f"{base}/api/v1/telemetry/raw", params=params, headers=headers, timeout=60, trust_env=False)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["truncated"]
    return {float(p["value"]) for p in body["points"]}


@pytest.mark.slow
def test_backup_while_writing_restores_every_acknowledged_write(tmp_path: Path) -> None:
    with doc_deployment(tmp_path) as shell:
        for step in ("variables", "database", "config", "secrets", "upgrade", "start"):
            shell.run(step)
        env = shell.env()
        home = Path(env["GONGYUN_HOME"])
        base = f"http://127.0.0.1:{env['GONGYUN_PORT_1']}"
        wait_ready(base, pid=int((home / "api-1.pid").read_text()))
        wait_ready(f"http://127.0.0.1:{env['GONGYUN_PORT_2']}", pid=int((home / "api-2.pid").read_text()))
        password = shell.secrets()["GONGYUN_ADMIN_PASSWORD"]
        headers = login(base, password)
        _seed_tag(base, headers)

        writer = Writer(base, headers)
        threads = [threading.Thread(target=writer.telemetry), threading.Thread(target=writer.creations)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 120
            while len(writer.batches) < 20 or len(writer.assets) < 20:
                assert time.monotonic() < deadline, f"writes too slow: {writer.errors[:3]}"
                time.sleep(0.1)
            backup_began = time.monotonic()
            shell.run("backup")
            dump_done = time.monotonic()
            # keep writing a little after the dump: those writes must not disturb anything
            time.sleep(1.0)
        finally:
            writer.stop.set()
            for t in threads:
                t.join(timeout=60)
        assert not writer.errors, writer.errors[:5]
        before_values = {v for at, vs in writer.batches if at < backup_began for v in vs}
        before_assets = {name for at, name in writer.assets if at < backup_began}
        during = sum(1 for at, _ in writer.batches if backup_began <= at < dump_done)
        assert len(before_values) >= 20 * BATCH and len(before_assets) >= 20
        assert Path(env["GONGYUN_BACKUP"]).stat().st_size > 0

        shell.run("stop")
        shell.run("restore")
        proc, restored = _serve_restored(shell)
        try:
            wait_ready(restored, pid=proc.pid)
            headers = login(restored, password)  # the restored platform serves logins
            stored = _stored_values(restored, headers)
            lost = before_values - stored
            assert not lost, f"{len(lost)} samples acknowledged before the backup are missing"
            r = httpx.get(f"{restored}/api/v1/assets", headers=headers, timeout=60, trust_env=False)
            assert r.status_code == 200, r.text
            names = {a["name"] for a in r.json()}
            missing = before_assets - names
            assert not missing, f"assets acknowledged before the backup are missing: {sorted(missing)[:5]}"
            # nothing appears in the dump that was never acknowledged (or is torn)
            acked = {v for _, vs in writer.batches for v in vs}
            assert stored <= acked, sorted(stored - acked)[:5]
            print(
                f"backup: {len(before_values)} samples and {len(before_assets)} assets acknowledged "
                f"before the dump all restored; {during} batches acknowledged during it"
            )
        finally:
            stop_pid(proc.pid)
            proc.wait(timeout=30)
