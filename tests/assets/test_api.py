"""The platform-data API end to end: assets, ingest over HTTP, queries, cleaning, alarms, export."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from gongyun.platform import Platform
from gongyun.platform.data import TelemetryService
from gongyun.security.models import User
from tests.apphelp import admin_headers, running_app


@pytest.fixture
async def api(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], TelemetryService, Platform]]:
    async with running_app(tmp_path) as (client, runtime):
        svc = runtime.running_telemetry()  # the runtime starts platform data itself
        yield client, await admin_headers(client), svc, runtime


async def seed(client: httpx.AsyncClient, h: dict[str, str]) -> dict[str, Any]:
    parent = None
    ids: dict[str, Any] = {}
    for level, name in [
        ("enterprise", "Acme"),
        ("site", "S1"),
        ("area", "A1"),
        ("line", "L1"),
        ("equipment", "Pump 1"),
    ]:
        r = await client.post(
            "/api/v1/assets", json={"level": level, "name": name, "parent_id": parent}, headers=h
        )
        assert r.status_code == 201, r.text
        ids[level] = parent = r.json()["id"]
    r = await client.post("/api/v1/assets/devices", json={"name": "pump1", "equipment_id": parent}, headers=h)
    assert r.status_code == 201, r.text
    ids["device"] = r.json()["id"]
    r = await client.post(
        f"/api/v1/assets/devices/{ids['device']}/tags",
        json={"name": "temp", "unit": "degC", "low": -20, "high": 200},
        headers=h,
    )
    assert r.status_code == 201, r.text
    ids["tag"] = r.json()
    return ids


async def test_routes_need_credentials(api: Any) -> None:
    client, _, _, _ = api
    for path in ("/api/v1/assets/tree", "/api/v1/telemetry/latest", "/api/v1/alarms"):
        assert (await client.get(path)).status_code == 401


async def test_assets_api(api: Any) -> None:
    client, h, _, _ = api
    ids = await seed(client, h)
    assert ids["tag"]["ref"] == "pump1/temp" and ids["tag"]["identifier"].startswith("88.100.1/gy.tag.")
    tree = (await client.get("/api/v1/assets/tree", headers=h)).json()
    assert tree[0]["name"] == "Acme"
    bad = await client.post(
        "/api/v1/assets", json={"level": "area", "name": "x", "parent_id": ids["enterprise"]}, headers=h
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    dup = await client.post("/api/v1/assets/devices", json={"name": "pump1"}, headers=h)
    assert dup.status_code == 409
    assert (await client.get("/api/v1/assets/0123", headers=h)).status_code == 404
    extra = await client.post("/api/v1/assets", json={"level": "enterprise", "name": "E", "x": 1}, headers=h)
    assert extra.status_code == 422
    r = await client.patch(f"/api/v1/assets/tags/{ids['tag']['id']}", json={"high": 150}, headers=h)
    assert r.json()["high"] == 150
    assert len((await client.get("/api/v1/assets/tags", headers=h)).json()) == 1
    assert (await client.delete(f"/api/v1/assets/{ids['line']}", headers=h)).status_code == 409


async def test_ingest_query_clean_alarm_export(api: Any) -> None:
    client, h, _, _ = api
    await seed(client, h)
    now = datetime.now(UTC).replace(microsecond=0)
    rule = await client.post(
        "/api/v1/alarms/rules",
        headers=h,
        json={
            "kind": "threshold",
            "name": "hot pump",
            "tag": "pump1/temp",
            "limit": 90,
            "deadband": 5,
            "priority": "high",
        },
    )
    assert rule.status_code == 201, rule.text
    rid = rule.json()["id"]
    samples = [
        {"tag": "pump1/temp", "value": 20.0 + i, "ts": (now - timedelta(seconds=60 - i)).isoformat()}
        for i in range(60)
    ]
    samples += [
        {"tag": "pump1/temp", "value": 95.0, "ts": now.isoformat()},
        {"tag": "pump1/temp", "value": "hot", "ts": now.isoformat()},
        {"tag": "pump1/nope", "value": 1, "ts": now.isoformat()},
        {"tag": "pump1/temp", "value": 1, "ts": "not a time"},
    ]
    r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
    body = r.json()
    assert r.status_code == 200 and body["accepted"] == 61
    assert sorted(x["reason"] for x in body["rejected"]) == ["malformed", "unknown_tag", "wrong_type"]
    stats = (await client.get("/api/v1/telemetry/stats", headers=h)).json()
    assert stats["pump1/temp"]["rejected"] == {"wrong_type": 1, "malformed": 1}
    latest = (await client.get("/api/v1/telemetry/latest", headers=h)).json()
    assert latest["pump1/temp"]["value"] == 95.0
    q = {
        "tag": "pump1/temp",
        "start": (now - timedelta(minutes=2)).isoformat(),
        "end": (now + timedelta(seconds=1)).isoformat(),
    }
    raw = (await client.get("/api/v1/telemetry/raw", params=q, headers=h)).json()
    assert len(raw["points"]) == 61
    ds = (await client.get("/api/v1/telemetry/downsample", params={**q, "buckets": 4}, headers=h)).json()
    assert sum(b["count"] for b in ds["buckets"]) == 61 and ds["source"] == "raw"
    al = (
        await client.get("/api/v1/telemetry/aligned", params={**q, "buckets": 2, "agg": "max"}, headers=h)
    ).json()
    assert al["values"]["pump1/temp"][-1] == 95.0
    alarms = (await client.get("/api/v1/alarms", params={"active": True}, headers=h)).json()
    assert [(a["name"], a["state"]) for a in alarms] == [("hot pump", "unack_active")]
    r = await client.post(f"/api/v1/alarms/{rid}/ack", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "ack_active"
    again = await client.post(f"/api/v1/alarms/{rid}/ack", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "alarm_transition_invalid"
    hist = (await client.get("/api/v1/alarms/history", headers=h)).json()
    assert [e["cause"] for e in hist] == ["acknowledged", "activated"] and hist[0]["user"] == "admin"
    cl = await client.post(
        "/api/v1/telemetry/clean",
        headers=h,
        json={"tag": "pump1/temp", "start": q["start"], "end": q["end"], "config": {"high": 90}},
    )
    assert cl.status_code == 200 and cl.json()["counts"] == {"out_of_range": 1}
    rep = (await client.get("/api/v1/telemetry/clean/report", params={"tag": "pump1/temp"}, headers=h)).json()
    assert rep["output_count"] == 60
    clean = (await client.get("/api/v1/telemetry/raw", params={**q, "series": "clean"}, headers=h)).json()
    assert len(clean["points"]) == 60
    csv = await client.get("/api/v1/telemetry/export", params={**q, "format": "csv"}, headers=h)
    assert csv.status_code == 200 and csv.text.count("\n") == 62
    pq = await client.get("/api/v1/telemetry/export", params={**q, "format": "parquet"}, headers=h)
    assert pq.content[:4] == b"PAR1"
    r = await client.put("/api/v1/telemetry/retention", json={"raw_days": 30, "rollup_days": 365}, headers=h)
    assert r.status_code == 200
    assert (await client.get("/api/v1/telemetry/retention", headers=h)).json()[0]["rollup_days"] == 365
    assets = {a["level"]: a["id"] for a in (await client.get("/api/v1/assets", headers=h)).json()}
    r = await client.put(
        "/api/v1/telemetry/retention",
        headers=h,
        json={"asset_id": assets["area"], "raw_days": 7, "rollup_days": 90},
    )
    assert r.status_code == 200 and r.json()["tags"] == ["pump1/temp"]
    pol = {
        p["tag"]: p["raw_days"] for p in (await client.get("/api/v1/telemetry/retention", headers=h)).json()
    }
    assert pol == {None: 30, "pump1/temp": 7}
    bad = await client.put("/api/v1/telemetry/retention", headers=h, json={"raw_days": 9, "rollup_days": 1})
    assert bad.status_code == 400 and bad.json()["code"] == "telemetry_query_invalid"
    bad_rule = await client.post(
        "/api/v1/alarms/rules",
        headers=h,
        json={
            "kind": "expression",
            "name": "x",
            "expression": "__import__('os')",
            "inputs": {"a": "pump1/temp"},
        },
    )
    assert bad_rule.status_code == 422


async def test_bus_to_store_to_alarm(api: Any) -> None:
    client, h, _, runtime = api
    await seed(client, h)
    await client.post(
        "/api/v1/alarms/rules",
        headers=h,
        json={"kind": "stale", "name": "quiet", "tag": "pump1/temp", "max_age_s": 0.3},
    )
    assert (await client.get("/api/v1/alarms", headers=h)).json()[0]["state"] == "normal"
    async with runtime.db.session() as s:
        tid = (await s.execute(select(User.tenant_id).where(User.username == "admin"))).scalar_one()
    now = datetime.now(UTC)
    await runtime.bus.publish(
        f"telemetry.{tid}.pump1",
        orjson.dumps({"samples": [{"tag": "pump1/temp", "value": 33.0, "ts": now.isoformat()}]}),
    )
    for _ in range(100):
        latest = (await client.get("/api/v1/telemetry/latest", headers=h)).json()
        if latest:
            break
        await asyncio.sleep(0.05)
    assert latest["pump1/temp"]["value"] == 33.0
    for _ in range(100):
        alarms = (await client.get("/api/v1/alarms", headers=h)).json()
        if alarms[0]["state"] == "unack_active":
            break
        await asyncio.sleep(0.05)
    assert alarms[0]["state"] == "unack_active"
