"""The maintenance app in a running platform: detector from stored telemetry, live scoring, health,
alarm, work order, registry (activate / roll back, survives a restart), tenant isolation, both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gongyun.apps import AppHost
from gongyun.platform import prepare_database, start_platform
from tests.apphelp import make_settings
from tests.apps.helpers import eps, running_with_apps, tenant_with_users, until_found

APP = eps(maintenance="gongyun.apps.maintenance.manifest:MANIFEST")
BASE = "/api/v1/apps/maintenance"
TAGS = ["pump/flow", "pump/pressure", "pump/vibration"]


async def _pump(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    dev = await client.post("/api/v1/assets/devices", json={"name": "pump"}, headers=h)
    assert dev.status_code == 201, dev.text
    for tag in TAGS:
        r = await client.post(
            f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": tag.split("/")[1]}, headers=h
        )
        assert r.status_code == 201, r.text


async def _ingest(
    client: httpx.AsyncClient, h: dict[str, str], start: datetime, n: int, shift: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        ts = (start + timedelta(seconds=i)).isoformat()
        values = [50 + rng.normal(0, 1), 3 + rng.normal(0, 0.1) - shift, 1 + rng.normal(0, 0.05)]
        samples += [{"tag": t, "value": float(v), "ts": ts} for t, v in zip(TAGS, values, strict=True)]
    for k in range(0, len(samples), 300):
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples[k : k + 300]}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == len(samples[k : k + 300]), r.text


async def _flow(client: httpx.AsyncClient) -> None:
    a = await tenant_with_users(client, "acme", "tenant-admin", "operator")
    b = await tenant_with_users(client, "globex", "tenant-admin")
    ha, op, hb = a["headers"]["tenant-admin"], a["headers"]["operator"], b["headers"]["tenant-admin"]
    for h in (ha, hb):
        r = await client.patch("/api/v1/apps/maintenance", json={"enabled": True}, headers=h)
        assert r.status_code == 200, r.text
    await _pump(client, ha)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(minutes=30)
    await _ingest(client, ha, t0, 200, 0.0, 1)

    # too short a baseline is refused with the minimum needed
    short = {
        "equipment": "pump",
        "tags": TAGS,
        "start": t0.isoformat(),
        "end": (t0 + timedelta(seconds=40)).isoformat(),
    }
    r = await client.post(f"{BASE}/detectors", json=short, headers=ha)
    assert r.status_code == 400 and r.json()["code"] == "maintenance_baseline_too_short", r.text
    assert r.json()["minimum"] == 90
    body = {**short, "end": (t0 + timedelta(seconds=200)).isoformat()}
    first = await client.post(f"{BASE}/detectors", json=body, headers=ha)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1 and first.json()["active"] is True
    second = await client.post(f"{BASE}/detectors", json=body, headers=ha)
    assert second.json()["version"] == 2 and second.json()["active"] is True
    r = await client.post(
        f"{BASE}/models/rollback", json={"kind": "anomaly", "equipment": "pump"}, headers=ha
    )
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    models = (await client.get(f"{BASE}/models", headers=ha)).json()
    assert [(m["version"], m["active"]) for m in models] == [(2, False), (1, True)]
    r = await client.put(f"{BASE}/equipment/pump", json={"path": "plant/area-a/line-1"}, headers=ha)
    assert r.status_code == 200, r.text

    # live points: normal, then a pressure drop that persists
    live = now - timedelta(seconds=120)
    await _ingest(client, ha, live, 40, 0.0, 2)
    await _ingest(client, ha, live + timedelta(seconds=40), 70, 0.6, 3)

    async def opened() -> Any:
        orders = (await client.get(f"{BASE}/work-orders", headers=ha)).json()
        return orders if orders else None

    orders = await until_found(opened)
    order = orders[0]
    assert order["reason"] == "anomaly" and order["state"] == "open" and order["equipment"] == "pump"
    assert order["evidence"]["contributors"][0]["tag"] == "pump/pressure", order["evidence"]
    assert max(order["evidence"]["scores"]) > 1.0

    async def alarmed() -> Any:
        alarms = (await client.get("/api/v1/alarms", params={"active": True}, headers=ha)).json()
        return [x for x in alarms if x["name"] == "pump health low"]

    await until_found(alarmed)

    async def health_low() -> Any:
        params = {"tags": "pump-maintenance/health"}
        latest = (await client.get("/api/v1/telemetry/latest", params=params, headers=ha)).json()
        return latest.get("pump-maintenance/health", {}).get("value", 100) < 40

    await until_found(health_low)  # the score is a tag like any other
    fleet = (await client.get(f"{BASE}/equipment", headers=ha)).json()
    assert fleet["equipment"][0]["name"] == "pump" and fleet["equipment"][0]["health"] < 40
    groups = {g["path"]: g for g in fleet["groups"]}
    assert set(groups) == {"", "plant", "plant/area-a", "plant/area-a/line-1"}
    assert groups["plant"]["worst_equipment"] == "pump"

    # the operator works the order; closing needs notes, which become a label
    url = f"{BASE}/work-orders/{order['id']}/transition"
    r = await client.post(url, json={"state": "done"}, headers=op)
    assert r.status_code == 409 and r.json()["code"] == "maintenance_order_transition"
    for step in ({"state": "assigned", "assignee": "acme-operator"}, {"state": "in_progress"}):
        r = await client.post(url, json=step, headers=op)
        assert r.status_code == 200, r.text
    r = await client.post(
        url, json={"state": "done", "notes": "inlet valve half closed", "label": "valve"}, headers=op
    )
    assert r.status_code == 200 and r.json()["closed_at"], r.text
    labels = (await client.get(f"{BASE}/labels", headers=ha)).json()
    assert labels[0]["label"] == "valve" and labels[0]["window"]["start"]
    r = await client.post(url, json={"state": "open"}, headers=op)
    assert r.status_code == 409

    # the other tenant sees none of it
    assert (await client.get(f"{BASE}/models", headers=hb)).json() == []
    assert (await client.get(f"{BASE}/work-orders", headers=hb)).json() == []
    assert (await client.get(f"{BASE}/equipment", headers=hb)).json()["equipment"] == []
    r = await client.post(f"{BASE}/models/{first.json()['id']}/activate", headers=hb)
    assert r.status_code == 404
    r = await client.post(
        f"{BASE}/work-orders/{order['id']}/transition", json={"state": "cancelled"}, headers=hb
    )
    assert r.status_code == 404


async def test_live_scoring_work_order_registry_isolation(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APP, db_url) as (client, _):
        await _flow(client)
    # the registry survives a restart of the platform
    settings = make_settings(tmp_path, db_url)
    await prepare_database(settings)
    platform = await start_platform(settings, apps=AppHost.discover(APP))
    try:
        from gongyun.api.app import create_app
        from tests.apphelp import login

        transport = httpx.ASGITransport(app=create_app(settings, platform=platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            h = await login(client, "acme-tenant-admin", "acme-tenant-admin-passw0rd")
            models = (await client.get(f"{BASE}/models", headers=h)).json()
            assert [(m["version"], m["active"]) for m in models] == [(2, False), (1, True)]
            orders = (await client.get(f"{BASE}/work-orders", headers=h)).json()
            assert orders[0]["state"] == "done"
    finally:
        await platform.close()
