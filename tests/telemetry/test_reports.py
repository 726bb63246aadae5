"""Cleaning reports live in the metadata database: bounded per tag, per tenant, across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gongyun.db import Database
from gongyun.errors import NotFound, ValidationFailed
from gongyun.telemetry import reports
from gongyun.telemetry.cleaning import CleaningReport
from tests.apphelp import admin_headers, running_app

S = 1_000_000


async def test_history_is_bounded_per_tag_and_tenant(db: Database) -> None:
    for i in range(5):
        async with db.session() as s:
            await reports.save_report(
                s, "t1", CleaningReport("d/a", input_count=i), i * S, (i + 1) * S, keep=3
            )
    async with db.session() as s:
        await reports.save_report(s, "t1", CleaningReport("d/b", input_count=9), 0, S, keep=3)
        await reports.save_report(s, "t2", CleaningReport("d/a", input_count=7), 0, S, keep=3)
    async with db.session() as s:
        rows = await reports.history(s, "t1", "d/a")
        assert [r.input_count for r in rows] == [4, 3, 2]
        assert (await reports.latest(s, "t1", "d/b")).input_count == 9
        assert (await reports.latest(s, "t2", "d/a")).input_count == 7
        with pytest.raises(NotFound):
            await reports.latest(s, "t3", "d/a")
        with pytest.raises(ValidationFailed):
            await reports.history(s, "t1", "d/a", limit=0)
    doc = reports.report_dict(rows[0])
    assert doc["tag"] == "d/a" and doc["start"].startswith("1970-01-01T00:00:04")


async def test_cleaning_report_survives_a_restart(tmp_path: Path, db_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    window = {
        "start": (now - timedelta(minutes=2)).isoformat(),
        "end": (now + timedelta(seconds=1)).isoformat(),
    }
    async with running_app(tmp_path, db_url) as (client, _):
        h = await admin_headers(client)
        missing = await client.get("/api/v1/telemetry/clean/report", params={"tag": "pump1/temp"}, headers=h)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        dev = await client.post(
            "/api/v1/assets/devices", json={"name": "pump1", "protocol": "modbus"}, headers=h
        )
        assert dev.status_code == 201, dev.text
        tag = await client.post(
            f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "temp"}, headers=h
        )
        assert tag.status_code == 201, tag.text
        samples = [
            {"tag": "pump1/temp", "value": v, "ts": (now - timedelta(seconds=10 - i)).isoformat()}
            for i, v in enumerate([20.0, 21.0, 99.0, 22.0])
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
        for high in (90, 95):
            body = {"tag": "pump1/temp", **window, "config": {"high": high}}
            cl = await client.post("/api/v1/telemetry/clean", json=body, headers=h)
            assert cl.status_code == 200 and cl.json()["counts"] == {"out_of_range": 1}, cl.text
        before = (
            await client.get("/api/v1/telemetry/clean/report", params={"tag": "pump1/temp"}, headers=h)
        ).json()
    async with running_app(tmp_path, db_url) as (client, _):
        h = await admin_headers(client)
        after = await client.get("/api/v1/telemetry/clean/report", params={"tag": "pump1/temp"}, headers=h)
        assert after.status_code == 200 and after.json() == before
        assert after.json()["output_count"] == 3 and after.json()["changes"][0]["old"] == 99.0
        hist = await client.get("/api/v1/telemetry/clean/reports", params={"tag": "pump1/temp"}, headers=h)
        assert hist.status_code == 200 and len(hist.json()) == 2 and hist.json()[0] == before
