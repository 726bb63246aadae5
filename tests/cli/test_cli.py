"""The gongyun command: accounts, db upgrade, one-line errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

GONGYUN = str(Path(sys.executable).with_name("gongyun"))


def _run(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GONGYUN_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    proc = subprocess.run([GONGYUN, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_version(tmp_path: Path) -> None:
    out = _run(tmp_path, "--version").stdout
    assert out.startswith("gongyun ")


def test_accounts_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "var"
    assert "up to date" in _run(data, "db", "upgrade").stdout
    _run(data, "tenant", "add", "plant-1", "--display-name", "Plant One")
    assert "plant-1" in _run(data, "tenant", "list").stdout
    _run(
        data,
        "user",
        "add",
        "carol",
        "--tenant",
        "plant-1",
        "--role",
        "engineer",
        "--password",
        "carol-password",
    )
    listing = _run(data, "user", "list").stdout
    assert "carol" in listing and "engineer" in listing
    _run(data, "user", "passwd", "carol", "--password", "carol-password-2")
    _run(data, "user", "disable", "carol")
    assert "yes" in _run(data, "user", "list").stdout
    created = _run(data, "apikey", "create", "historian", "--tenant", "plant-1", "--role", "viewer").stdout
    key = created.strip().splitlines()[-1]
    assert key.startswith("gy_")
    listed = _run(data, "apikey", "list", "--tenant", "plant-1").stdout
    assert "historian" in listed and key not in listed
    _run(data, "apikey", "revoke", "historian", "--tenant", "plant-1")
    assert "20" in _run(data, "apikey", "list", "--tenant", "plant-1").stdout  # revoked timestamp shown


def test_account_changes_are_audited_like_the_api(tmp_path: Path) -> None:
    import asyncio

    from sqlalchemy import select

    from gongyun.db import Database
    from gongyun.security.audit import AuditEvent, verify
    from gongyun.security.models import Tenant

    data = tmp_path / "var"
    _run(data, "tenant", "add", "plant-2")
    _run(
        data,
        "user",
        "add",
        "erin",
        "--tenant",
        "plant-2",
        "--role",
        "operator",
        "--password",
        "erin-password",
    )
    _run(data, "user", "passwd", "erin", "--password", "erin-password-2")
    _run(data, "user", "disable", "erin")
    _run(data, "user", "disable", "erin", "--enable")
    _run(data, "apikey", "create", "scada", "--tenant", "plant-2")
    _run(data, "apikey", "revoke", "scada", "--tenant", "plant-2")
    _run(data, "apikey", "revoke", "scada", "--tenant", "plant-2")  # already revoked: no new event

    async def trail() -> tuple[list[tuple[str, str, str, object]], bool]:
        db = Database(f"sqlite+aiosqlite:///{data / 'gongyun.db'}")
        try:
            async with db.session() as s:
                tid = (await s.execute(select(Tenant.id).where(Tenant.name == "plant-2"))).scalar_one()
                rows = (
                    await s.execute(
                        select(AuditEvent).where(AuditEvent.tenant_id == tid).order_by(AuditEvent.seq)
                    )
                ).scalars()
                events = [
                    (e.actor, e.action, e.target, e.detail.get("disabled", e.detail.get("password")))
                    for e in rows
                ]
                return events, (await verify(s, tid)).ok
        finally:
            await db.dispose()

    events, intact = asyncio.run(trail())
    assert intact
    assert events == [
        ("cli", "user.create", "erin", None),
        ("cli", "user.update", "erin", "changed"),
        ("cli", "user.update", "erin", True),
        ("cli", "user.update", "erin", False),
        ("cli", "apikey.create", "scada", None),
        ("cli", "apikey.revoke", "scada", None),
    ]


def test_failures_are_one_line_without_traceback(tmp_path: Path) -> None:
    data = tmp_path / "var"
    _run(data, "tenant", "add", "dup")
    dup = _run(data, "tenant", "add", "dup", check=False)
    assert dup.returncode != 0
    assert "Traceback" not in dup.stderr
    assert "conflict" in dup.stderr and "already exists" in dup.stderr
    missing = _run(data, "user", "passwd", "nobody", "--password", "whatever-password", check=False)
    assert missing.returncode != 0 and "not_found" in missing.stderr and "Traceback" not in missing.stderr
    weak = _run(data, "user", "add", "dan", "--password", "short", check=False)
    assert weak.returncode != 0 and "at least" in weak.stderr
    debug = _run(data, "--debug", "tenant", "add", "dup", check=False)
    assert "Traceback" in debug.stderr


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "GONGYUN_DATA_DIR": str(tmp_path), "GONGYUN_PROFILE": "server"}
    proc = subprocess.run([GONGYUN, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "config_invalid" in proc.stderr and "database_url" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_prints_generated_password_once_and_listens_on_both_loopbacks(tmp_path: Path) -> None:
    from tests.integration.test_crash_durability import _wait_ready
    from tests.services import free_port

    port = free_port()
    env = {**os.environ, "GONGYUN_DATA_DIR": str(tmp_path / "var")}
    env.pop("GONGYUN_ADMIN_PASSWORD", None)
    proc = subprocess.Popen(
        [GONGYUN, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)  # type: ignore[arg-type]
        assert httpx.get(f"http://[::1]:{port}/healthz", timeout=5).status_code == 200
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "<form" in login.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "First admin created" in out
    password = out.split("password", 1)[1].split()[0]
    assert len(password) >= 16
    assert password not in err  # never in the logs


def test_edge_drivers_lists_the_built_ins_from_entry_points(tmp_path: Path) -> None:
    import json

    found = json.loads(_run(tmp_path, "edge", "drivers", "--json").stdout)
    by_name = {m["name"]: m for m in found}
    assert set(by_name) >= {"modbus", "opcua", "mqtt", "sparkplug"}
    assert by_name["modbus"]["entry_point"] == "gongyun.edge.drivers.modbus:ModbusDriver"
    assert by_name["modbus"]["library"].startswith("pymodbus==")
    assert all("error" not in m for m in found)
    table = _run(tmp_path, "edge", "drivers").stdout
    assert "sparkplug" in table and "opcua" in table
