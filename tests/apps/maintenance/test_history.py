"""RUL trained from stored telemetry between failures recorded by closed work orders, on both stores:
runs read through the app services, a model registered per equipment, a live estimate since the last
failure; too few failures refused; another tenant sees nothing."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gongyun.apps import WorkerContext
from gongyun.apps.maintenance.errors import DataInvalid
from gongyun.apps.maintenance.estimator import estimate_tenant
from gongyun.apps.maintenance.history import (
    Failure,
    check_runs,
    failures_from_orders,
    resample,
    runs_between,
)
from gongyun.apps.maintenance.manifest import MANIFEST
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

APP = eps(maintenance="gongyun.apps.maintenance.manifest:MANIFEST")
BASE = "/api/v1/apps/maintenance"
TAGS = ["fan/vibration", "fan/temperature", "fan/current"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_failures_runs_and_resampling() -> None:
    orders: list[dict[str, Any]] = [
        {
            "id": 3,
            "state": "done",
            "label": "bearing_wear",
            "evidence": {"window": {"end": "2026-01-01T02:00:00+00:00"}},
        },
        {"id": 2, "state": "done", "label": "normal", "closed_at": T0},
        {"id": 1, "state": "done", "label": "clogging", "evidence": {}, "closed_at": T0.replace(tzinfo=None)},
        {"id": 4, "state": "cancelled", "label": "bearing_wear", "closed_at": T0},
    ]
    found = failures_from_orders(orders)
    assert found == [Failure(T0, "clogging", 1), Failure(T0 + timedelta(hours=2), "bearing_wear", 3)]
    runs = runs_between(found, T0 - timedelta(hours=1))
    assert [(r.start, r.end) for r in runs] == [
        (T0 - timedelta(hours=1), T0),
        (T0 + timedelta(microseconds=1), T0 + timedelta(hours=2)),
    ]
    assert runs_between(found, T0 + timedelta(hours=1))[0].start == T0 + timedelta(hours=1)
    a = [(T0 + timedelta(seconds=s), float(s)) for s in (0, 3, 7)]
    b = [(T0 + timedelta(seconds=2), 10.0)]
    rows = resample([a, b], T0, T0 + timedelta(seconds=8), 2.0)
    assert rows.tolist() == [[0.0, 10.0], [3.0, 10.0], [3.0, 10.0], [7.0, 10.0]]  # t=0 has no b yet
    with pytest.raises(DataInvalid, match="1 recorded failure"):
        check_runs(runs[:1], [rows], 2, "fan")
    with pytest.raises(DataInvalid, match=r"run 2 .*: 4 steps"):
        check_runs(runs, [np.zeros((9, 2)), rows], 5, "fan")


def _run(start: datetime, length: int, seed: int) -> list[dict[str, Any]]:
    """A fan wearing out over ``length`` seconds: vibration and temperature climb, current creeps."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(length):
        wear = math.exp(4 * i / length) / math.exp(4)  # 0.02 -> 1 at the failure
        values = [
            2 + 6 * wear + rng.normal(0, 0.15),
            40 + 25 * wear + rng.normal(0, 0.3),
            5 + 0.8 * wear + rng.normal(0, 0.05),
        ]
        ts = (start + timedelta(seconds=i)).isoformat()
        out += [{"tag": t, "value": float(v), "ts": ts} for t, v in zip(TAGS, values, strict=True)]
    return out


async def _ingest(client: httpx.AsyncClient, h: dict[str, str], samples: list[dict[str, Any]]) -> None:
    for k in range(0, len(samples), 1000):
        chunk = samples[k : k + 1000]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": chunk}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == len(chunk), r.text


async def _record_failure(client: httpx.AsyncClient, h: dict[str, str], at: datetime) -> None:
    """An operator's work order, closed as done with the fault found; the failure instant as evidence."""
    body = {"equipment": "fan", "title": "fan tripped", "evidence": {"window": {"end": at.isoformat()}}}
    r = await client.post(f"{BASE}/work-orders", json=body, headers=h)
    assert r.status_code == 201, r.text
    for step in (
        {"state": "in_progress"},
        {"state": "done", "notes": "bearing seized", "label": "bearing_wear"},
    ):
        r = await client.post(f"{BASE}/work-orders/{r.json()['id']}/transition", json=step, headers=h)
        assert r.status_code == 200, r.text


async def test_rul_from_stored_telemetry_between_failures(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APP, db_url) as (client, platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        b = await tenant_with_users(client, "globex", "tenant-admin")
        ha, hb = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"]
        for h in (ha, hb):
            r = await client.patch("/api/v1/apps/maintenance", json={"enabled": True}, headers=h)
            assert r.status_code == 200, r.text
        dev = (await client.post("/api/v1/assets/devices", json={"name": "fan"}, headers=ha)).json()
        for tag in TAGS:
            r = await client.post(
                f"/api/v1/assets/devices/{dev['id']}/tags", json={"name": tag.split("/")[1]}, headers=ha
            )
            assert r.status_code == 201, r.text
        now = datetime.now(UTC).replace(microsecond=0)
        lengths = [500, 600, 700]
        current = 300  # seconds into the fourth run (600 s to failure), still going: its true RUL is 300 s
        start = now - timedelta(seconds=sum(lengths) + current)
        t, failures = start, []
        for k, n in enumerate(lengths):
            await _ingest(client, ha, _run(t, n, k))
            t += timedelta(seconds=n)
            failures.append(t - timedelta(seconds=1))
        await _ingest(client, ha, _run(t, 600, 9)[: current * len(TAGS)])
        body = {"equipment": "fan", "tags": TAGS, "start": start.isoformat(), "step_s": 5, "window": 10}

        await _record_failure(client, ha, failures[0])
        r = await client.post(f"{BASE}/rul/telemetry-models", json=body, headers=ha)
        assert r.status_code == 400 and "1 recorded failure(s)" in r.json()["detail"], r.text
        for at in failures[1:]:
            await _record_failure(client, ha, at)
        listed = (await client.get(f"{BASE}/equipment/fan/failures", headers=ha)).json()
        assert [f["at"] for f in listed] == [f.isoformat() for f in failures]

        r = await client.post(f"{BASE}/rul/telemetry-models", json={**body, "cap_s": 1200}, headers=ha)
        assert r.status_code == 201, r.text
        model = r.json()
        assert model["kind"] == "rul" and model["equipment"] == "fan" and model["active"], model
        spec = model["meta"]["telemetry"]
        assert [run["steps"] for run in spec["runs"]] == [100, 119, 139], spec  # 5 s steps after each failure
        assert spec["tags"] == TAGS and model["meta"]["training"]["units"] == 3

        last = t + timedelta(seconds=current - 1)  # the last stored sample
        r = await client.post(f"{BASE}/equipment/fan/rul", json={"at": last.isoformat()}, headers=ha)
        assert r.status_code == 200, r.text
        est = r.json()
        truth = 600 - current
        print(f"\nRUL from stored telemetry: {est['rul']} s [{est['low']}-{est['high']}], truth {truth} s")
        assert est["low"] <= est["rul"] <= est["high"], est
        assert abs(est["rul"] - truth) < 120, est
        fan = (await client.get(f"{BASE}/equipment/fan", headers=ha)).json()["equipment"]
        assert fan["rul"] == est["rul"] and fan["health"] is not None

        # the live estimator: tags written, a work order opened under the lead time
        r = await client.patch(
            "/api/v1/apps/maintenance", json={"settings": {"rul_lead_time": 1000}}, headers=ha
        )
        assert r.status_code == 200, r.text
        assert platform.apps is not None
        ctx = WorkerContext(
            MANIFEST, platform.db, platform.bus, logging.getLogger("test"), platform.apps.services
        )
        [live] = await estimate_tenant(ctx, a["id"], last)
        assert live["equipment"] == "fan" and live["low"] <= live["rul"] <= live["high"], live
        latest = (
            await client.get("/api/v1/telemetry/latest", params={"tags": "fan-maintenance/rul"}, headers=ha)
        ).json()
        assert latest["fan-maintenance/rul"]["value"] == live["rul"] == est["rul"], latest
        orders = (await client.get(f"{BASE}/work-orders", params={"state": "open"}, headers=ha)).json()
        assert [o["reason"] for o in orders if o["equipment"] == "fan"][:1] == ["rul"], orders
        assert orders[0]["evidence"]["rul"]["rul"] == live["rul"], orders[0]

        # the other tenant sees no model, no failure, no estimate
        assert (await client.get(f"{BASE}/models", headers=hb)).json() == []
        assert (await client.get(f"{BASE}/equipment/fan/failures", headers=hb)).json() == []
        r = await client.post(f"{BASE}/equipment/fan/rul", headers=hb)
        assert r.status_code == 404, r.text
