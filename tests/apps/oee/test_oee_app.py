"""The OEE app on a running platform: a machine mapped to tags, a jam detected as an uncoded stop,
coded from the tenant's reason tree, the Pareto updating, OEE per shift from the store, refused
inputs, and a second tenant that sees nothing and whose reason codes do not apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apps.helpers import eps, running_with_apps, tenant_with_users, until_found

OEE = eps(oee="gongyun.apps.oee.manifest:MANIFEST")
BASE = "/api/v1/apps/oee"


async def _device(client: httpx.AsyncClient, h: dict[str, str], name: str, *tags: str) -> None:
    dev = await client.post("/api/v1/assets/devices", json={"name": name}, headers=h)
    assert dev.status_code == 201, dev.text
    for t in tags:
        r = await client.post(f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": t}, headers=h)
        assert r.status_code == 201, r.text


async def test_a_jam_becomes_an_uncoded_stop_is_coded_and_the_pareto_updates(tmp_path: Path) -> None:
    async with running_with_apps(tmp_path, OEE) as (client, _platform):
        a = await tenant_with_users(client, "acme", "tenant-admin", "operator")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        ha, hb, op = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"], a["headers"]["operator"]
        for h in (ha, hb):
            assert (
                await client.patch("/api/v1/apps/oee", json={"enabled": True}, headers=h)
            ).status_code == 200
        await _device(client, ha, "packer", "running", "good", "scrap")
        machine = await client.post(
            f"{BASE}/machines",
            json={"name": "packer", "line": "L1", "ideal_cycle_s": 1.0, "good_tag": "packer/good",
                  "scrap_tag": "packer/scrap", "mapping": {"mode": "running_flag", "tag": "packer/running"}},
            headers=ha,
        )  # fmt: skip
        assert machine.status_code == 201, machine.text
        t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
        samples = []
        for i in range(600):  # 10 minutes at 1 Hz; jammed from 5:00 to 7:00
            ts = (t0 + timedelta(seconds=i)).isoformat()
            samples.append({"tag": "packer/running", "value": 0.0 if 300 <= i < 420 else 1.0, "ts": ts})
            samples.append({"tag": "packer/good", "value": float(i // 2), "ts": ts})
            samples.append({"tag": "packer/scrap", "value": float(i // 60), "ts": ts})
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=ha)
        assert r.status_code == 200, r.text

        async def uncoded() -> Any:
            rows = (await client.get(f"{BASE}/stops", params={"uncoded": True}, headers=op)).json()
            return [s for s in rows if s.get("duration_s")]

        [stop] = await until_found(uncoded)
        assert stop["duration_s"] == 120 and stop["state"] == "down_unplanned"
        window = {"start": t0.isoformat(), "end": (t0 + timedelta(minutes=10)).isoformat()}
        before = (await client.get(f"{BASE}/pareto", params=window, headers=op)).json()
        assert before["items"][0]["key"] == "uncoded" and before["items"][0]["seconds"] == 120
        tree = [
            {"code": "mech", "name_en": "Mechanical", "name_zh": "机械"},
            {"code": "jam", "name_en": "Film jam", "name_zh": "卡膜", "parent": "mech", "loss": "breakdowns"},
        ]
        assert (await client.put(f"{BASE}/reasons", json=tree, headers=ha)).status_code == 200
        assert (
            await client.put(
                f"{BASE}/reasons", json=[{"code": "bolt_only", "name_en": "B", "name_zh": "乙"}], headers=hb
            )
        ).status_code == 200
        # a reason code of another tenant is refused
        other = await client.post(f"{BASE}/stops/{stop['id']}/code", json={"reason": "bolt_only"}, headers=op)
        assert other.status_code == 422 and other.json()["reason"] == "reason_code", other.text
        coded = await client.post(f"{BASE}/stops/{stop['id']}/code", json={"reason": "jam"}, headers=op)
        assert coded.status_code == 200 and coded.json()["reason"] == "jam"
        after = (await client.get(f"{BASE}/pareto", params={**window, "lang": "zh-CN"}, headers=op)).json()
        assert after["items"][0] == {
            "key": "jam",
            "seconds": 120.0,
            "share": 1.0,
            "cumulative": 1.0,
            "name": "卡膜",
        }
        by_machine = (
            await client.get(f"{BASE}/pareto", params={**window, "by": "machine"}, headers=op)
        ).json()
        assert by_machine["items"][0]["key"] == "packer"
        oee = (await client.get(f"{BASE}/lines/L1/oee", params=window, headers=op)).json()
        [period] = oee["periods"]
        assert period["bottleneck"] == "packer"
        assert period["availability"] == pytest.approx(480 / 600)
        site = (await client.get(f"{BASE}/site/oee", params={**window, "group": "day"}, headers=op)).json()
        assert site["periods"][0]["availability"] == pytest.approx(480 / 600) and list(site["lines"]) == [
            "L1"
        ]
        [mp] = oee["machines"]["packer"]
        assert mp["good"] == 299 and mp["scrap"] == 9
        assert period["performance"] == pytest.approx((299 + 9) / 480)
        wider = {"start": (t0 - timedelta(minutes=1)).isoformat(), "end": window["end"]}
        url = f"{BASE}/machines/{machine.json()['id']}/timeline"
        tl = (await client.get(url, params=wider, headers=op)).json()
        states = [s["state"] for s in tl["segments"]]
        assert states == ["unknown", "running", "down_unplanned", "running"]
        # the other tenant sees nothing of it and cannot code it
        assert (await client.get(f"{BASE}/machines", headers=hb)).json() == []
        assert (await client.get(f"{BASE}/stops", headers=hb)).json() == []
        assert (
            await client.post(f"{BASE}/stops/{stop['id']}/code", json={"reason": "bolt_only"}, headers=hb)
        ).status_code == 404
        assert (await client.get(f"{BASE}/lines/L1/oee", headers=hb)).status_code == 404
        assert (await client.get(f"{BASE}/site/oee", headers=hb)).json()["lines"] == {}
        assert (
            await client.get(f"{BASE}/machines/{machine.json()['id']}/timeline", headers=hb)
        ).status_code == 404
        assert (await client.get(f"{BASE}/pareto", headers=hb)).json()["items"] == []


async def test_refused_inputs(tmp_path: Path, db_url: str) -> None:
    """On SQLite and PostgreSQL (the app's own migrations on both)."""
    async with running_with_apps(tmp_path, OEE, db_url) as (client, _platform):
        a = await tenant_with_users(client, "acme", "tenant-admin")
        ha = a["headers"]["tenant-admin"]
        await client.patch("/api/v1/apps/oee", json={"enabled": True}, headers=ha)
        codes = {"1": "running", "2": None}
        undefined = {"name": "m", "line": "L", "ideal_cycle_s": 1,
                     "mapping": {"mode": "state_tag", "tag": "m/state", "codes": codes}}  # fmt: skip
        r = await client.post(f"{BASE}/machines", json=undefined, headers=ha)
        assert r.status_code == 422 and "undefined" in r.text, r.text
        overlap = {
            "shifts": [
                {"name": "A", "start": "06:00", "end": "14:00"},
                {"name": "B", "start": "13:00", "end": "22:00"},
            ]
        }
        r = await client.put(f"{BASE}/calendars/L", json=overlap, headers=ha)
        assert r.status_code == 422 and r.json()["reason"] == "overlapping_shifts"
        r = await client.put(f"{BASE}/reasons", json=[{"code": "x", "name_en": "X"}], headers=ha)
        assert r.status_code == 422 and r.json()["code"] == "oee_input_invalid"
        ok = await client.put(
            f"{BASE}/calendars/L",
            json={"shifts": [{"name": "A", "start": "06:00", "end": "14:00"}]},
            headers=ha,
        )
        assert (
            ok.status_code == 200
            and (await client.get(f"{BASE}/calendars/L", headers=ha)).json()["shifts"][0]["name"] == "A"
        )
