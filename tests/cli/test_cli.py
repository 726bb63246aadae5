"""The gongyun command: accounts, db upgrade, one-line errors without tracebacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gongyun.db import Database

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
        ("cli", "user.password_reset", "erin", None),
        ("cli", "user.update", "erin", "changed"),
        ("cli", "user.update", "erin", True),
        ("cli", "user.update", "erin", False),
        ("cli", "apikey.create", "scada", None),
        ("cli", "apikey.revoke", "scada", None),
    ]


def test_the_last_platform_admin_cannot_be_demoted_or_disabled(tmp_path: Path) -> None:
    data = tmp_path / "var"
    for args in (("user", "role", "admin", "operator"), ("user", "disable", "admin")):
        refused = _run(data, *args, check=False)
        assert refused.returncode == 1, refused.stdout
        assert "(last_platform_admin)" in refused.stderr and "Traceback" not in refused.stderr
    assert "platform-admin" in _run(data, "user", "list").stdout
    _run(data, "user", "add", "root2", "--role", "platform-admin", "--password", "root2-password")
    _run(data, "user", "disable", "admin")  # another platform admin remains
    refused = _run(data, "user", "role", "root2", "viewer", check=False)
    assert refused.returncode == 1 and "(last_platform_admin)" in refused.stderr
    _run(data, "user", "disable", "admin", "--enable")
    assert "role changed" in _run(data, "user", "role", "root2", "viewer").stdout


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


async def _cli_trail(db: Database, tenant_name: str) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """(action, detail) of the console's audit events in a tenant, and whether the chain verifies."""
    from sqlalchemy import select

    from gongyun.security.audit import AuditEvent, verify
    from gongyun.security.models import Tenant

    async with db.session() as s:
        tid = (await s.execute(select(Tenant.id).where(Tenant.name == tenant_name))).scalar_one()
        rows = (
            await s.execute(
                select(AuditEvent)
                .where(AuditEvent.tenant_id == tid, AuditEvent.actor == "cli")
                .order_by(AuditEvent.seq)
            )
        ).scalars()
        events = [(e.action, {"target": e.target, **e.detail}) for e in rows]
        return events, (await verify(s, tid)).ok


async def _cli(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_run, data, *args, check=check)


async def test_tenant_disable_ends_sessions_for_good_and_is_audited(tmp_path: Path) -> None:
    from tests.apphelp import running_app

    data = tmp_path / "var"
    async with running_app(tmp_path) as (client, runtime):
        await _cli(data, "tenant", "add", "plant-4")
        await _cli(
            data, "user", "add", "gina", "-t", "plant-4", "--role", "engineer", "--password", "gina-password"
        )
        resp = await client.post("/api/v1/auth/token", data={"username": "gina", "password": "gina-password"})
        assert resp.status_code == 200, resp.text
        access, refresh = resp.json()["access_token"], resp.json()["refresh_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        assert (await client.get("/api/v1/me", headers=bearer)).status_code == 200

        assert "disabled" in (await _cli(data, "tenant", "disable", "plant-4")).stdout
        assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401
        await _cli(data, "tenant", "disable", "plant-4", "--enable")
        # Re-enabling lets gina log in again, but the session from before stays ended.
        me = await client.get("/api/v1/me", headers=bearer)
        assert me.status_code == 401 and me.json()["code"] == "token_invalid"
        assert "session ended" in me.json()["detail"]
        again = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert again.status_code == 401
        assert (
            await client.post("/api/v1/auth/token", data={"username": "gina", "password": "gina-password"})
        ).status_code == 200

        default = await _cli(data, "tenant", "disable", "default", check=False)
        assert default.returncode == 1 and "forbidden" in default.stderr
        assert "Traceback" not in default.stderr

        events, intact = await _cli_trail(runtime.db, "plant-4")
    assert intact
    assert [(a, d.get("target"), d.get("disabled")) for a, d in events] == [
        ("user.create", "gina", None),
        ("tenant.update", "plant-4", True),
        ("tenant.update", "plant-4", False),
    ]


async def test_user_role_demotion_caps_keys_and_is_audited(tmp_path: Path) -> None:
    from tests.apphelp import running_app

    data = tmp_path / "var"
    async with running_app(tmp_path) as (client, runtime):
        await _cli(data, "tenant", "add", "plant-5")
        await _cli(
            data,
            "user",
            "add",
            "hank",
            "-t",
            "plant-5",
            "--role",
            "tenant-admin",
            "--password",
            "hank-password",
        )
        resp = await client.post("/api/v1/auth/token", data={"username": "hank", "password": "hank-password"})
        bearer = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        keys = {}
        for name, role in (("line-bot", "engineer"), ("reader", "viewer")):
            made = await client.post("/api/v1/apikeys", headers=bearer, json={"name": name, "role": role})
            assert made.status_code == 201, made.text
            keys[name] = {"X-API-Key": made.json()["key"]}
        assert (await client.get("/api/v1/me", headers=keys["line-bot"])).json()["role"] == "engineer"

        out = (await _cli(data, "user", "role", "hank", "operator", "--tenant", "plant-5")).stdout
        assert "tenant-admin" in out and "operator" in out
        assert "line-bot" in out and "capped" in out and "reader" in out
        assert (await client.get("/api/v1/me", headers=keys["line-bot"])).json()["role"] == "operator"
        assert (await client.get("/api/v1/me", headers=keys["reader"])).json()["role"] == "viewer"
        assert (await client.get("/api/v1/me", headers=bearer)).json()["role"] == "operator"

        unknown = await _cli(data, "user", "role", "hank", "boss", check=False)
        assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
        assert unknown.stderr.strip().count("\n") == 0
        assert "unknown role 'boss'" in unknown.stderr and "tenant-admin" in unknown.stderr
        elsewhere = await _cli(data, "user", "role", "hank", "viewer", "--tenant", "default", check=False)
        assert elsewhere.returncode == 1 and "not_found" in elsewhere.stderr
        assert (await client.get("/api/v1/me", headers=bearer)).json()["role"] == "operator"

        events, intact = await _cli_trail(runtime.db, "plant-5")
    assert intact
    assert [(a, d["target"]) for a, d in events] == [
        ("user.create", "hank"),
        ("user.demote", "hank"),
        ("apikey.cap", "line-bot"),
        ("user.update", "hank"),
    ]
    demote, cap, update = (d for _, d in events[1:])
    assert (demote["from"], demote["to"]) == ("tenant-admin", "operator")
    assert (cap["role"], cap["effective_role"], cap["reason"]) == ("engineer", "operator", "creator_demoted")
    assert update["role"] == "operator"


def test_only_the_named_room_is_imported_when_run_as_gongyun() -> None:
    from gongyun.cli.main import ROOM_COMMANDS, _rooms_to_load

    every = {name for _, _, name in ROOM_COMMANDS}
    assert _rooms_to_load(["/x/bin/gongyun", "tenant", "list"]) == set()
    assert _rooms_to_load(["/x/bin/gongyun", "--data-dir", "d", "id", "get", "88.1/x"]) == {"id"}
    assert _rooms_to_load(["/x/bin/gongyun", "id", "--help"]) == every
    assert _rooms_to_load(["/x/bin/gongyun"]) == every
    assert _rooms_to_load(["python", "-m", "pytest"]) == every  # imported as a module: all of them
    listed = _run(Path("unused"), "--help").stdout
    assert all(f" {name} " in listed for name in every), listed
