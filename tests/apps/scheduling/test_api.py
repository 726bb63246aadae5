"""The scheduling app through its API: machines, orders, solve, accept, dispatch, repair, isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gongyun.apps.scheduling.domain.model import Assignment, Schedule
from gongyun.apps.scheduling.domain.parsers import instance_from_json
from gongyun.apps.scheduling.domain.validate import violations
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

APPS = eps(scheduling="gongyun.apps.scheduling.manifest:MANIFEST")
API = "/api/v1/apps/scheduling"


async def _tenant(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str], dict[str, str]]:
    t = await tenant_with_users(client, name, "tenant-admin", "operator")
    h = t["headers"]["tenant-admin"]
    settings = {"time_limit_s": 2, "repair_time_limit_s": 2, "workers": 2}
    r = await client.patch("/api/v1/apps/scheduling", json={"enabled": True, "settings": settings}, headers=h)
    assert r.status_code == 200, r.text
    return t["id"], h, t["headers"]["operator"]


async def _plan(client: httpx.AsyncClient, h: dict[str, str]) -> None:
    for m in ("CNC1", "CNC2", "PAINT"):
        r = await client.put(
            f"{API}/machines/{m}", json={"name": m, "watch_tag": f"{m.lower()}/running"}, headers=h
        )
        assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    for k in range(4):
        order = {
            "id": f"WO{k}",
            "product": "pump",
            "due_at": (now + timedelta(minutes=60 + 10 * k)).isoformat(),
            "lot": f"LOT-{k}",
            "operations": [
                {"id": "10", "durations": {"CNC1": 20 + k, "CNC2": 25 + k}},
                {"id": "20", "durations": {"PAINT": 10}},
                {"id": "30", "durations": {"CNC1": 5, "CNC2": 6}},
            ],
        }
        r = await client.post(f"{API}/orders", json=order, headers=h)
        assert r.status_code == 201, r.text


async def test_plan_solve_publish_repair_and_isolation(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, platform):
        a, h, op = await _tenant(client, "plant-a")
        b, hb, _ = await _tenant(client, "plant-b")
        await _plan(client, h)
        # refusals: unknown machine, no machine, non-positive time, due before release, a cycle
        bad = [
            {"id": "X", "operations": [{"id": "1", "durations": {"LATHE": 5}}]},
            {"id": "X", "operations": [{"id": "1", "durations": {}}]},
            {"id": "X", "operations": [{"id": "1", "durations": {"CNC1": 0}}]},
            {
                "id": "X",
                "release_at": "2030-01-02T00:00:00Z",
                "due_at": "2030-01-01T00:00:00Z",
                "operations": [{"id": "1", "durations": {"CNC1": 3}}],
            },
            {
                "id": "X",
                "operations": [
                    {"id": "1", "durations": {"CNC1": 3}, "predecessors": ["2"]},
                    {"id": "2", "durations": {"CNC1": 3}, "predecessors": ["1"]},
                ],
            },
        ]
        words = [
            "unknown machine 'LATHE'",
            "no eligible machine",
            "not positive",
            "before the release",
            "cycle",
        ]
        for body, word in zip(bad, words, strict=True):
            r = await client.post(f"{API}/orders", json=body, headers=h)
            assert r.status_code == 422 and r.json()["code"] == "scheduling_instance_invalid", r.text
            assert word in r.json()["detail"], (word, r.text)
        # an operator reads but cannot plan
        assert (await client.post(f"{API}/solve", headers=op)).status_code == 403
        r = await client.post(f"{API}/solve", headers=h)
        assert r.status_code == 201, r.text
        v1 = r.json()
        assert v1["status"] == "proposed" and len(v1["operations"]) == 12 and v1["critical_path"]
        inst = instance_from_json((await _raw(platform, a, v1["version"]))["instance"])
        sched = Schedule(
            inst.name, [Assignment(o["op"], o["machine"], o["start"], o["end"]) for o in v1["operations"]]
        )
        assert violations(inst, sched) == []
        progress = (await client.get(f"{API}/progress", headers=op)).json()
        assert progress["history"] and progress["running"] is False
        r = await client.post(f"{API}/schedules/{v1['version']}/accept", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "published"
        again = await client.post(f"{API}/schedules/{v1['version']}/accept", headers=h)
        assert again.status_code == 409
        d = (await client.get(f"{API}/dispatch/CNC1", headers=op)).json()
        assert d["version"] == v1["version"] and all(x["lot"].startswith("LOT-") for x in d["operations"])
        # a breakdown asked by hand, then accepted
        r = await client.post(f"{API}/repair", json={"machine": "CNC1"}, headers=h)
        assert r.status_code == 201, r.text
        v2 = r.json()
        assert v2["kind"] == "repair" and v2["base_version"] == v1["version"]
        down = v2["stats"]["down"]
        assert "stability" in v2["stats"] and down["machine"] == "CNC1"
        on_cnc1 = [o for o in v2["operations"] if o["machine"] == "CNC1" and o["start"] >= down["from"]]
        assert all(o["start"] >= down["until"] for o in on_cnc1)
        r = await client.post(f"{API}/schedules/{v2['version']}/accept", headers=h)
        assert r.status_code == 200
        listing = (await client.get(f"{API}/schedules", headers=h)).json()
        assert [(x["version"], x["status"]) for x in listing] == [(2, "published"), (1, "superseded")]
        # the watched tag of CNC2 stops: the worker proposes a repair
        services = platform.apps.services  # type: ignore[union-attr]
        await services.ensure_device(a, "cnc2")
        tag = await services.ensure_tag(a, "cnc2", "running")
        await asyncio.sleep(0.2)
        await services.write(a, [(tag, datetime.now(UTC), 0.0)])
        for _ in range(100):
            listing = (await client.get(f"{API}/schedules", headers=h)).json()
            if listing[0]["version"] == 3:
                break
            await asyncio.sleep(0.2)
        assert (
            listing[0]["version"] == 3
            and listing[0]["kind"] == "repair"
            and "cnc2" in listing[0]["reason"].lower()
        )
        r = await client.post(f"{API}/schedules/3/reject", headers=h)
        assert r.json()["status"] == "rejected"
        # a rush order arrives: fitted into the published schedule without a breakdown
        rush = {
            "id": "RUSH",
            "weight": 5,
            "due_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
            "operations": [
                {"id": "10", "durations": {"CNC1": 5, "CNC2": 6}},
                {"id": "20", "durations": {"PAINT": 4}},
            ],
        }
        assert (await client.post(f"{API}/orders", json=rush, headers=h)).status_code == 201
        r = await client.post(f"{API}/repair", json={}, headers=h)
        assert r.status_code == 201, r.text
        v4 = r.json()
        assert v4["reason"] == "new orders" and {"RUSH.10", "RUSH.20"} <= {c["op"] for c in v4["changes"]}
        # tenant isolation: plant-b sees nothing of plant-a
        assert (await client.get(f"{API}/machines", headers=hb)).json() == []
        assert (await client.get(f"{API}/orders", headers=hb)).json() == []
        assert (await client.get(f"{API}/schedules", headers=hb)).json() == []
        assert (await client.get(f"{API}/schedules/1", headers=hb)).status_code == 404
        assert (await client.get(f"{API}/schedules/current", headers=hb)).status_code == 404
        assert (await client.post(f"{API}/schedules/2/reject", headers=hb)).status_code == 404
        assert (await client.get(f"{API}/progress", headers=hb)).json()["history"] == []
        assert b != a


async def _raw(platform: Any, tenant: str, version: int) -> dict[str, Any]:
    from gongyun.apps.scheduling import store

    async with platform.db.session() as session:
        return await store.row(session, tenant, version)
