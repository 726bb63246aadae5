"""The shop floor talks back: operators report operations started, finished or late; an operation
not reported finished in time and a machine the OEE app says is down both propose repairs."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gongyun.apps import WorkerContext
from gongyun.apps.scheduling.manifest import MANIFEST
from gongyun.apps.scheduling.progress import Planned, late_operations, state_of
from gongyun.apps.scheduling.worker import check_late, is_down
from tests.apps.helpers import eps, running_with_apps, tenant_with_users

APPS = eps(
    scheduling="gongyun.apps.scheduling.manifest:MANIFEST",
    oee="gongyun.apps.oee.manifest:MANIFEST",
)
API = "/api/v1/apps/scheduling"
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _report(**kw: Any) -> dict[str, Any]:
    return {"started_at": None, "finished_at": None, "expected_end": None, **kw}


def test_late_operations_are_those_past_their_expected_end_and_grace_not_reported_finished() -> None:
    planned = {
        "a": Planned("a", "M1", T0, T0 + 10 * MIN),  # ended at 8:10
        "b": Planned("b", "M1", T0 + 10 * MIN, T0 + 30 * MIN),  # running until 8:30
        "c": Planned("c", "M2", T0, T0 + 5 * MIN),  # finished (reported)
        "d": Planned("d", "M2", T0 + 5 * MIN, T0 + 12 * MIN),  # its operator expects 8:40
        "e": Planned("e", "M2", T0 + 60 * MIN, T0 + 70 * MIN),  # not due yet
    }
    reported = {
        "c": _report(started_at=T0, finished_at=T0 + 6 * MIN),
        "d": _report(started_at=T0 + 5 * MIN, expected_end=T0 + 40 * MIN),
    }
    now = T0 + 20 * MIN
    assert late_operations(planned, reported, now, 5) == {"a": now + 5 * MIN}
    assert late_operations(planned, reported, now, 10) == {}  # 8:10 + 10 min is not past yet
    later = T0 + 50 * MIN
    assert late_operations(planned, reported, later, 5) == {
        "a": later + 5 * MIN,
        "b": later + 5 * MIN,
        "d": later + 5 * MIN,
    }


def test_the_state_an_operator_sees_is_the_reported_one_where_there_is_one() -> None:
    p = Planned("a", "M1", T0, T0 + 10 * MIN)
    assert state_of(p, None, T0 - MIN)["state"] == "queued"
    assert state_of(p, None, T0 + MIN)["state"] == "running"
    planned_done = state_of(p, None, T0 + 11 * MIN)
    assert planned_done["state"] == "done" and planned_done["reported"] is False and not planned_done["late"]
    running = state_of(p, _report(started_at=T0 + MIN), T0 + 12 * MIN)
    assert running["state"] == "running" and running["late"] is True
    done = state_of(p, _report(started_at=T0, finished_at=T0 + 12 * MIN), T0 + 20 * MIN)
    assert done["state"] == "done" and done["late"] is False


def test_an_oee_state_says_down_for_planned_and_unplanned_down_only() -> None:
    assert [is_down(float(code), None) for code in range(6)] == [False, False, False, True, True, False]
    assert is_down(0.0, 0.5) and not is_down(1.0, 0.5)


async def _setup(client: httpx.AsyncClient) -> tuple[str, dict[str, str], dict[str, str]]:
    t = await tenant_with_users(client, "floor", "tenant-admin", "operator", "viewer")
    h = t["headers"]["tenant-admin"]
    settings = {"time_limit_s": 2, "repair_time_limit_s": 2, "workers": 2}
    for name, body in (("scheduling", {"enabled": True, "settings": settings}), ("oee", {"enabled": True})):
        r = await client.patch(f"/api/v1/apps/{name}", json=body, headers=h)
        assert r.status_code == 200, r.text
    return t["id"], h, t["headers"]


async def _publish(
    client: httpx.AsyncClient, h: dict[str, str], machines: list[dict[str, Any]]
) -> dict[str, Any]:
    for m in machines:
        r = await client.put(
            f"{API}/machines/{m['id']}", json={k: v for k, v in m.items() if k != "id"}, headers=h
        )
        assert r.status_code == 200, r.text
    for k in range(3):
        order = {
            "id": f"WO{k}",
            "operations": [
                {"id": "10", "durations": {"CNC": 20 + k}},
                {"id": "20", "durations": {"PACK": 10}},
            ],
        }
        assert (await client.post(f"{API}/orders", json=order, headers=h)).status_code == 201
    v = (await client.post(f"{API}/solve", headers=h)).json()
    r = await client.post(f"{API}/schedules/{v['version']}/accept", headers=h)
    assert r.status_code == 200, r.text
    return r.json()


async def test_operators_report_progress_and_a_late_report_proposes_a_repair(
    tmp_path: Path, db_url: str
) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, _platform):
        _, h, hs = await _setup(client)
        op, viewer = hs["operator"], hs["viewer"]
        v1 = await _publish(client, h, [{"id": "CNC"}, {"id": "PACK"}])
        first = min((o for o in v1["operations"] if o["machine"] == "CNC"), key=lambda o: o["start"])
        url = f"{API}/dispatch/CNC/{first['op']}"
        # a viewer reads the dispatch list but does not report
        assert (await client.post(url, json={"event": "start"}, headers=viewer)).status_code == 403
        r = await client.post(url, json={"event": "start"}, headers=op)
        assert r.status_code == 200 and r.json()["state"] == "running" and r.json()["reported"], r.text
        # refusals: started twice, an operation not on this machine, an unknown event, a late report
        # without its expected end
        assert (await client.post(url, json={"event": "start"}, headers=op)).status_code == 409
        assert (
            await client.post(f"{API}/dispatch/PACK/{first['op']}", json={"event": "start"}, headers=op)
        ).status_code == 404
        assert (await client.post(url, json={"event": "pause"}, headers=op)).status_code == 422
        assert (await client.post(url, json={"event": "late"}, headers=op)).status_code == 409
        # the operator expects it to run 30 minutes past its planned end: a repair is proposed in which
        # it ends then, and everything after it on CNC moves
        expected = datetime.fromisoformat(first["end_at"]) + 30 * MIN
        r = await client.post(url, json={"event": "late", "expected_end": expected.isoformat()}, headers=op)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["repair_version"] and body["expected_end"] == expected.isoformat()
        repair = (await client.get(f"{API}/schedules/{body['repair_version']}", headers=h)).json()
        assert repair["status"] == "proposed" and "running late" in repair["reason"]
        new = {o["op"]: o for o in repair["operations"]}
        assert datetime.fromisoformat(new[first["op"]]["end_at"]) >= expected
        others = [o for o in new.values() if o["machine"] == "CNC" and o["op"] != first["op"]]
        assert all(datetime.fromisoformat(o["start_at"]) >= expected for o in others)
        # finished: the dispatch list shows it done, and it cannot be reported again
        assert (await client.post(url, json={"event": "finish"}, headers=op)).json()["state"] == "done"
        assert (await client.post(url, json={"event": "finish"}, headers=op)).status_code == 409
        listing = (await client.get(f"{API}/dispatch/CNC", headers=op)).json()["operations"]
        mine = next(o for o in listing if o["op"] == first["op"])
        assert mine["state"] == "done" and mine["reported"] and mine["finished_at"]


async def test_an_operation_not_reported_finished_in_time_proposes_a_repair(
    tmp_path: Path, db_url: str
) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, platform):
        tenant, h, _ = await _setup(client)
        v1 = await _publish(client, h, [{"id": "CNC"}, {"id": "PACK"}])
        ctx = WorkerContext(
            MANIFEST,
            platform.db,
            platform.bus,
            logging.getLogger("t"),
            platform.apps.services,
            platform.settings,
        )
        assert await check_late(ctx, tenant) is None  # off by default
        r = await client.patch(
            "/api/v1/apps/scheduling",
            json={"settings": {"late_after_minutes": 5, "repair_time_limit_s": 2}},
            headers=h,
        )
        assert r.status_code == 200, r.text
        first = min((o for o in v1["operations"] if o["machine"] == "CNC"), key=lambda o: o["start"])
        end = datetime.fromisoformat(first["end_at"])
        assert await check_late(ctx, tenant, now=end + 4 * MIN) is None  # within the grace
        version = await check_late(ctx, tenant, now=end + 6 * MIN)
        assert version is not None
        repair = (await client.get(f"{API}/schedules/{version}", headers=h)).json()
        assert repair["kind"] == "repair" and first["op"] in repair["reason"]
        # the same lateness is not proposed twice; once the new expected end passes too, it is
        assert await check_late(ctx, tenant, now=end + 7 * MIN) is None
        assert await check_late(ctx, tenant, now=end + 18 * MIN) is not None


async def test_a_machine_the_oee_app_says_is_down_proposes_a_repair(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, _platform):
        _, h, _ = await _setup(client)
        dev = await client.post("/api/v1/assets/devices", json={"name": "cnc"}, headers=h)
        assert dev.status_code == 201, dev.text
        tag = await client.post(
            f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "running"}, headers=h
        )
        assert tag.status_code == 201, tag.text
        oee = await client.post(
            "/api/v1/apps/oee/machines",
            json={
                "name": "cnc",
                "line": "L1",
                "ideal_cycle_s": 1.0,
                "mapping": {"mode": "running_flag", "tag": "cnc/running"},
            },
            headers=h,
        )
        assert oee.status_code == 201, oee.text
        oee_id = oee.json()["id"]
        v1 = await _publish(client, h, [{"id": "CNC", "oee_machine": oee_id}, {"id": "PACK"}])
        now = datetime.now(UTC)
        samples = [{"tag": "cnc/running", "value": 1.0, "ts": (now - 2 * MIN).isoformat()}]
        samples.append({"tag": "cnc/running", "value": 0.0, "ts": now.isoformat()})
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
        assert r.status_code == 200, r.text
        listing: list[dict[str, Any]] = []
        for _ in range(150):
            listing = (await client.get(f"{API}/schedules", headers=h)).json()
            if listing[0]["version"] > v1["version"]:
                break
            await asyncio.sleep(0.2)
        assert listing[0]["kind"] == "repair" and "CNC" in listing[0]["reason"], listing[0]
        machines = (await client.get(f"{API}/machines", headers=h)).json()
        cnc = next(m for m in machines if m["id"] == "CNC")
        assert cnc["oee_machine"] == oee_id and cnc["down_since"]
        # the OEE state is a tag like any other: its latest value is unplanned down (4)
        ref = f"oee-{oee_id}/state"
        latest = await client.get("/api/v1/telemetry/latest", params={"tag": ref}, headers=h)
        assert latest.status_code == 200 and latest.json()[ref]["value"] == 4.0, latest.text
