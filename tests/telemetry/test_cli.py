"""``gongyun telemetry``: seed the demo tree, export, rollups, retention (embedded profile)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gongyun.cli.common import STATE
from gongyun.cli.telemetry import telemetry_app
from gongyun.telemetry.store import Point, open_store, store_url_for
from gongyun.telemetry.store.base import US, to_us


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GONGYUN_ADMIN_PASSWORD", "admin-Passw0rd!")
    monkeypatch.setenv("GONGYUN_SECRET_KEY", "test-secret-key-0123456789abcdef0123456789")
    monkeypatch.setattr(STATE, "data_dir", tmp_path / "var")
    return tmp_path / "var"


def test_seed_export_rollups_retention(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = typer.Typer()
    app.add_typer(telemetry_app, name="telemetry")
    r = runner.invoke(app, ["telemetry", "seed-demo"])
    assert r.exit_code == 0, r.output
    assert "3 devices seeded" in r.output
    from gongyun.cli.telemetry import _tenant_id

    tid = asyncio.run(_tenant_id("default"))
    t0 = to_us(datetime(2026, 1, 1, tzinfo=UTC))

    async def put() -> None:
        store = open_store(store_url_for(data_dir, None))
        await store.open()
        await store.write(tid, [Point("pump-station/flow", t0 + i * US, float(i)) for i in range(90)])
        await store.close()

    asyncio.run(put())
    out = tmp_path / "flow.csv"
    r = runner.invoke(
        app,
        [
            "telemetry",
            "export",
            "--tenant",
            "default",
            "--tag",
            "pump-station/flow",
            "--start",
            "2026-01-01T00:00:00",
            "--end",
            "2026-01-02T00:00:00",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 91
    r = runner.invoke(app, ["telemetry", "rollups"])
    assert r.exit_code == 0 and "1 hour(s) of rollups refreshed" in r.output
    r = runner.invoke(app, ["telemetry", "retention"])
    assert r.exit_code == 0 and "ts_raw_points: 0" in r.output
    bad = runner.invoke(
        app,
        [
            "telemetry",
            "export",
            "--tenant",
            "nope",
            "--tag",
            "a/b",
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-02",
            "--out",
            str(out),
        ],
    )
    assert bad.exit_code != 0
