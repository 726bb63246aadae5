"""The quality app on a running platform: charts on a tag and on inspections, frozen limit
versions, a drift that trips a run rule and raises an alarm acknowledged through the alarm API,
CSV inspections, refused inputs, and a second tenant that sees nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.apps.helpers import eps, running_with_apps, tenant_with_users, until_found

QUALITY = eps(quality="gongyun.apps.quality.manifest:MANIFEST")
BASE = "/api/v1/apps/quality"


async def _tag(client: httpx.AsyncClient, h: dict[str, str], device: str, tag: str) -> None:
    dev = await client.post("/api/v1/assets/devices", json={"name": device}, headers=h)
    assert dev.status_code == 201, dev.text
    made = await client.post(f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": tag}, headers=h)
    assert made.status_code == 201, made.text


async def _ingest(client: httpx.AsyncClient, h: dict[str, str], t0: datetime, values: list[float]) -> None:
    samples = [
        {"tag": "packer/fill_weight", "value": float(v), "ts": (t0 + timedelta(seconds=i)).isoformat()}
        for i, v in enumerate(values)
    ]
    r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == len(values), r.text


async def _acme_with_packer(client: httpx.AsyncClient) -> dict[str, Any]:
    """Tenant ``acme`` (its admin) with the quality app enabled and the tag ``packer/fill_weight``."""
    a: dict[str, Any] = await tenant_with_users(client, "acme", "tenant-admin")
    ha = a["headers"]["tenant-admin"]
    await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=ha)
    await _tag(client, ha, "packer", "fill_weight")
    return a


async def test_drift_trips_a_rule_raises_an_alarm_and_the_other_tenant_sees_nothing(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, QUALITY) as (client, _platform):
        a = await tenant_with_users(client, "acme", "tenant-admin", "operator")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        ha, hb, op = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"], a["headers"]["operator"]
        for h in (ha, hb):
            assert (
                await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=h)
            ).status_code == 200
        await _tag(client, ha, "packer", "fill_weight")
        rng = np.random.default_rng(11)
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
        await _ingest(client, ha, t0, list(rng.normal(500.0, 1.0, 100)))
        made = await client.post(
            f"{BASE}/charts",
            json={"name": "Fill weight", "kind": "xbar_r", "tag": "packer/fill_weight",
                  "subgroup": {"by": "count", "size": 5}, "spec": {"lsl": 495, "usl": 505}},
            headers=ha,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        chart = made.json()["id"]
        window = {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=100)).isoformat()}
        preview = (await client.get(f"{BASE}/charts/{chart}/data", params=window, headers=ha)).json()
        assert preview["limits"]["preview"] is True and len(preview["primary"]["points"]) == 20
        assert preview["secondary"]["ucl"][0] > 0 and len(preview["sigma"]) == 20
        v1 = await client.post(
            f"{BASE}/charts/{chart}/limits", json={**window, "note": "baseline"}, headers=ha
        )
        assert v1.status_code == 201 and v1.json()["version"] == 1, v1.text
        v2 = await client.post(f"{BASE}/charts/{chart}/limits", json={**window, "exclude": [3]}, headers=ha)
        assert v2.json()["version"] == 2 and v2.json()["excluded"] == [3]
        versions = (await client.get(f"{BASE}/charts/{chart}/limits", headers=ha)).json()
        assert [v["version"] for v in versions] == [2, 1]
        # an operator cannot freeze limits
        assert (
            await client.post(f"{BASE}/charts/{chart}/limits", json=window, headers=op)
        ).status_code == 403
        # the drift: ten subgroups 3 sigma high
        await _ingest(client, ha, t0 + timedelta(seconds=200), list(rng.normal(503.5, 1.0, 50)))

        async def violation() -> Any:
            rows = (await client.get(f"{BASE}/violations", headers=ha)).json()
            return rows

        found = await until_found(violation)
        assert found[0]["chart_id"] == chart and "N1" in found[0]["rules"]

        async def alarm() -> Any:
            rows = (await client.get("/api/v1/alarms", params={"active": True}, headers=ha)).json()
            return [x for x in rows if x["name"] == "SPC Fill weight"]

        [raised] = await until_found(alarm)
        assert raised["state"] == "unack_active"
        acked = await client.post(f"/api/v1/alarms/{raised['rule_id']}/ack", headers=op)
        assert acked.status_code in (200, 202), acked.text
        ok = await client.post(f"{BASE}/violations/{found[0]['id']}/ack", headers=op)
        assert ok.status_code == 200
        # the other tenant sees none of it
        assert (await client.get(f"{BASE}/charts", headers=hb)).json() == []
        assert (await client.get(f"{BASE}/charts/{chart}", headers=hb)).status_code == 404
        assert (await client.get(f"{BASE}/charts/{chart}/data", headers=hb)).status_code == 404
        assert (await client.get(f"{BASE}/violations", params={"state": ""}, headers=hb)).json() == []
        assert (await client.post(f"{BASE}/violations/{found[0]['id']}/ack", headers=hb)).status_code == 404
        assert [x for x in (await client.get("/api/v1/alarms", headers=hb)).json()] == []
        # a window without data: an empty chart that says so
        old = {"start": "2020-01-01T00:00:00+00:00", "end": "2020-01-02T00:00:00+00:00"}
        empty = (await client.get(f"{BASE}/charts/{chart}/data", params=old, headers=ha)).json()
        assert empty["empty"] is True and empty["message"] == "no data in the window"
        cap = (await client.get(f"{BASE}/charts/{chart}/capability", params=window, headers=ha)).json()
        assert cap["cpk"]["value"] > 1 and cap["histogram"]["counts"]
        nocap = (await client.get(f"{BASE}/charts/{chart}/capability", params=old, headers=ha)).json()
        assert nocap["empty"] is True


async def test_inspections_by_lot_csv_attribute_charts_and_refusals(tmp_path: Path, db_url: str) -> None:
    """On SQLite and PostgreSQL (the app's own migrations on both)."""
    async with running_with_apps(tmp_path, QUALITY, db_url) as (client, _platform):
        a = await tenant_with_users(client, "acme", "tenant-admin", "operator")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        ha, op, hb = a["headers"]["tenant-admin"], a["headers"]["operator"], b["headers"]["tenant-admin"]
        for h in (ha, hb):
            await client.patch("/api/v1/apps/quality", json={"enabled": True}, headers=h)
        csv = "lot,characteristic,sample_size,defects\n" + "\n".join(
            f"L{i:03d},seal,100,{d}" for i, d in enumerate([3, 5, 2, 4, 6, 1, 3, 2, 4, 5])
        )
        up = await client.post(
            f"{BASE}/inspections/csv", content=csv, headers={**op, "Content-Type": "text/csv"}
        )
        assert up.status_code == 201 and up.json() == {"recorded": 10}, up.text
        one = await client.post(
            f"{BASE}/inspections", json=[{"lot": "L100", "characteristic": "len", "value": 9.9}], headers=op
        )
        assert one.status_code == 201
        assert [
            r["lot"]
            for r in (await client.get(f"{BASE}/inspections", params={"lot": "L003"}, headers=ha)).json()
        ] == ["L003"]
        made = await client.post(
            f"{BASE}/charts",
            json={"name": "Seal defects", "kind": "p", "source": "inspection", "characteristic": "seal"},
            headers=ha,
        )
        assert made.status_code == 201, made.text
        data = (await client.get(f"{BASE}/charts/{made.json()['id']}/data", headers=ha)).json()
        assert data["keys"][:2] == ["L000", "L001"] and data["primary"]["points"][0] == 0.03
        assert data["primary"]["cl"][0] == sum([3, 5, 2, 4, 6, 1, 3, 2, 4, 5]) / 1000
        refusals = [
            ({"name": "x", "kind": "xbar_r", "tag": "p/w", "subgroup": {"size": 30}}, "subgroup_size"),
            ({"name": "x", "kind": "xbar_r", "tag": "p/w", "spec": {"lsl": 10, "usl": 1}}, "spec_limits"),
            ({"name": "x", "kind": "p", "tag": "p/w"}, "source"),
            ({"name": "x", "kind": "xbar_r", "tag": "p/w", "rules": ["N9"]}, "rules"),
        ]
        for body, reason in refusals:
            r = await client.post(f"{BASE}/charts", json=body, headers=ha)
            assert r.status_code == 422 and r.json()["code"] == "spc_input_invalid", (body, r.text)
            assert r.json()["reason"] == reason
        bad = await client.post(
            f"{BASE}/inspections",
            json=[{"lot": "L1", "characteristic": "seal", "sample_size": 10, "defects": 11}],
            headers=op,
        )
        assert bad.status_code == 422 and bad.json()["reason"] == "count_exceeds_sample"
        badcsv = await client.post(
            f"{BASE}/inspections/csv",
            content="lot,characteristic,value\nL1,len,abc\n",
            headers={**op, "Content-Type": "text/csv"},
        )
        assert badcsv.status_code == 422 and "line 2" in badcsv.json()["detail"]
        # the other tenant's inspections and charts are its own
        assert (await client.get(f"{BASE}/inspections", headers=hb)).json() == []
        assert (await client.get(f"{BASE}/charts", headers=hb)).json() == []


async def test_time_window_subgroups_come_from_rollups_and_match_the_raw_points(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, QUALITY) as (client, platform):
        a = await _acme_with_packer(client)
        ha = a["headers"]["tenant-admin"]
        t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        rng = np.random.default_rng(3)
        samples = [
            {
                "tag": "packer/fill_weight",
                "value": float(v),
                "ts": (t0 + timedelta(seconds=5 * i)).isoformat(),
            }
            for i, v in enumerate(rng.normal(500, 1, 12 * 30))  # one every 5 s for 30 min
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=ha)
        assert r.status_code == 200, r.text
        made = await client.post(
            f"{BASE}/charts",
            json={
                "name": "w",
                "kind": "xbar_r",
                "tag": "packer/fill_weight",
                "subgroup": {"by": "time", "window_s": 60},
            },
            headers=ha,
        )
        chart = made.json()["id"]
        window = {"start": t0.isoformat(), "end": (t0 + timedelta(minutes=30)).isoformat()}
        fast = (await client.get(f"{BASE}/charts/{chart}/data", params=window, headers=ha)).json()
        from gongyun.apps.quality import service

        assert platform.apps is not None
        async with platform.db.session() as session:
            slow_data, _, _ = await service.chart_data(
                session,
                platform.apps.services,
                a["id"],
                await service.chart_row(session, a["id"], chart),
                t0,
                t0 + timedelta(minutes=30),
                rollups=False,
            )
        assert len(fast["primary"]["points"]) == 30 == len(slow_data)
        assert fast["primary"]["points"] == pytest.approx(list(slow_data.means))
        assert fast["secondary"]["points"] == pytest.approx(list(slow_data.ranges))


def test_the_live_window_keeps_yesterday_for_late_points_and_the_first_hour() -> None:
    from gongyun.apps.quality.worker import window_start

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    midday = at("2026-12-07T12:00:00")
    assert window_start(midday, midday) == at("2026-12-07T00:00:00")  # a live batch: today
    # forwarded points of yesterday evening: their own day
    assert window_start(midday, at("2026-12-06T23:50:00")) == at("2026-12-06T00:00:00")
    # just after midnight a live batch still sees yesterday (the run rules' history)
    assert window_start(at("2026-12-07T00:05:00"), at("2026-12-07T00:05:00")) == at("2026-12-06T00:00:00")
    assert window_start(at("2026-12-07T01:05:00"), at("2026-12-07T01:05:00")) == at("2026-12-07T00:00:00")
    # an old backlog is not re-judged from its day: two days back at most
    assert window_start(midday, at("2026-11-01T08:00:00")) == at("2026-12-05T00:00:00")
    assert window_start(midday, midday + timedelta(hours=3)) == at("2026-12-07T00:00:00")  # clock skew


async def test_a_drift_just_before_midnight_is_judged_when_it_arrives_after(tmp_path: Path) -> None:
    """Points of yesterday's last minutes (a gateway's backlog) trip the rule though today has begun."""
    async with running_with_apps(tmp_path, QUALITY) as (client, _platform):
        a = await _acme_with_packer(client)
        ha = a["headers"]["tenant-admin"]
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        t0 = midnight - timedelta(minutes=10)
        rng = np.random.default_rng(5)
        await _ingest(client, ha, t0, list(rng.normal(500.0, 1.0, 100)))
        made = await client.post(
            f"{BASE}/charts",
            json={"name": "Fill weight", "kind": "xbar_r", "tag": "packer/fill_weight",
                  "subgroup": {"by": "count", "size": 5}},
            headers=ha,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        window = {"start": t0.isoformat(), "end": (t0 + timedelta(seconds=100)).isoformat()}
        frozen = await client.post(f"{BASE}/charts/{made.json()['id']}/limits", json=window, headers=ha)
        assert frozen.status_code == 201, frozen.text
        await _ingest(client, ha, t0 + timedelta(seconds=200), list(rng.normal(503.5, 1.0, 50)))

        async def violation() -> Any:
            return (await client.get(f"{BASE}/violations", headers=ha)).json()

        found = await until_found(violation, timeout_s=20.0)
        assert found[0]["chart_id"] == made.json()["id"] and "N1" in found[0]["rules"]
