"""Editing, removing and retiring an OEE machine through the API, on SQLite and PostgreSQL: an edit
is checked like an addition, all are scoped to the tenant and audited, and a machine with recorded
stops is kept (its removal refused) and retired instead, so that its history stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.apps.helpers import running_with_apps, tenant_with_users, until_found
from tests.apps.oee.test_oee_app import BASE, OEE, _device


def _machine(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "line": "L1", "ideal_cycle_s": 1.0,
            "mapping": {"mode": "running_flag", "tag": f"{name}/running"}, **extra}  # fmt: skip


def ts(t0: datetime, i: int) -> str:
    return (t0 + timedelta(seconds=i)).isoformat()


async def test_edit_and_remove_a_machine(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, OEE, db_url) as (client, _platform):
        a = await tenant_with_users(client, "acme", "tenant-admin", "operator")
        b = await tenant_with_users(client, "bolt", "tenant-admin")
        ha, hb, op = a["headers"]["tenant-admin"], b["headers"]["tenant-admin"], a["headers"]["operator"]
        for h in (ha, hb):
            assert (
                await client.patch("/api/v1/apps/oee", json={"enabled": True}, headers=h)
            ).status_code == 200
        made = await client.post(f"{BASE}/machines", json=_machine("filler"), headers=ha)
        other = await client.post(f"{BASE}/machines", json=_machine("capper"), headers=ha)
        assert made.status_code == 201 and other.status_code == 201, made.text
        mid = made.json()["id"]
        url = f"{BASE}/machines/{mid}"

        # an edit is checked as an addition is
        undefined = _machine(
            "filler", mapping={"mode": "state_tag", "tag": "filler/state", "codes": {"2": "idle"}}
        )
        r = await client.put(url, json=undefined, headers=ha)
        assert r.status_code == 422 and r.json()["reason"] == "state_mapping", r.text
        r = await client.put(url, json=_machine("filler", ideal_cycle_s=0), headers=ha)
        assert r.status_code == 422 and "ideal_cycle_s" in r.text, r.text
        r = await client.put(url, json=_machine("capper"), headers=ha)
        assert r.status_code == 409 and "capper" in r.json()["detail"], r.text
        assert (await client.put(url, json=_machine("filler 2"), headers=op)).status_code == 403

        edited = _machine("filler 2", line="L2", ideal_cycle_s=1.5, micro_stop_s=30, good_tag="filler/good")
        r = await client.put(url, json=edited, headers=ha)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["name"], r.json()["line"]) == (mid, "filler 2", "L2")
        listed = {m["id"]: m for m in (await client.get(f"{BASE}/machines", headers=ha)).json()}
        assert listed[mid]["ideal_cycle_s"] == 1.5 and listed[mid]["micro_stop_s"] == 30
        assert listed[mid]["good_tag"] == "filler/good"

        # another tenant neither sees, edits nor removes it
        assert (await client.put(url, json=_machine("x"), headers=hb)).status_code == 404
        assert (await client.delete(url, headers=hb)).status_code == 404
        assert (await client.get(f"{BASE}/machines", headers=ha)).json()[1]["name"] == "filler 2"

        # a machine without stops is removed; one with recorded stops is kept
        assert (await client.delete(url, headers=ha)).status_code == 204
        assert (await client.delete(url, headers=ha)).status_code == 404
        assert [m["name"] for m in (await client.get(f"{BASE}/machines", headers=ha)).json()] == ["capper"]

        cid = other.json()["id"]
        await _device(client, ha, "capper", "running")
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        samples = [
            {"tag": "capper/running", "value": 0.0 if 10 <= i < 20 else 1.0, "ts": ts(t0, i)}
            for i in range(30)
        ]
        r = await client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=ha)
        assert r.status_code == 200, r.text

        async def closed() -> Any:
            rows = (await client.get(f"{BASE}/stops", params={"machine_id": cid}, headers=ha)).json()
            return [s for s in rows if s.get("duration_s")]

        await until_found(closed)
        r = await client.delete(f"{BASE}/machines/{cid}", headers=ha)
        assert r.status_code == 409 and r.json()["reason"] == "machine_has_stops", r.text
        assert r.json()["stops"] == 1
        assert [m["id"] for m in (await client.get(f"{BASE}/machines", headers=ha)).json()] == [cid]

        # ... and retired instead: out of service, its stops and its OEE before retirement kept
        retire = f"{BASE}/machines/{cid}/retire"
        assert (await client.post(retire, headers=op)).status_code == 403
        assert (await client.post(retire, headers=hb)).status_code == 404
        r = await client.post(retire, headers=ha)
        assert r.status_code == 200 and r.json()["retired_at"] is not None, r.text
        r = await client.post(retire, headers=ha)
        assert r.status_code == 409 and r.json()["reason"] == "machine_retired", r.text
        r = await client.put(f"{BASE}/machines/{cid}", json=_machine("capper"), headers=ha)
        assert r.status_code == 409 and r.json()["reason"] == "machine_retired", r.text
        assert (await client.get(f"{BASE}/machines", headers=ha)).json() == []
        kept = (await client.get(f"{BASE}/machines", params={"retired": True}, headers=ha)).json()
        assert [m["id"] for m in kept] == [cid]
        stops = (await client.get(f"{BASE}/stops", params={"machine_id": cid}, headers=ha)).json()
        assert len(stops) == 1 and stops[0]["duration_s"] == 10
        pareto = (await client.get(f"{BASE}/pareto", params={"by": "machine"}, headers=ha)).json()
        assert [x["key"] for x in pareto["items"]] == ["capper"]
        window = {"start": (t0 - timedelta(minutes=1)).isoformat(), "end": datetime.now(UTC).isoformat()}
        before = (await client.get(f"{BASE}/lines/L1/oee", params=window, headers=ha)).json()
        assert list(before["machines"]) == ["capper"] and before["periods"][0]["bottleneck"] == "capper"
        later = datetime.now(UTC) + timedelta(seconds=1)
        after = {"start": later.isoformat(), "end": (later + timedelta(hours=1)).isoformat()}
        assert (await client.get(f"{BASE}/lines/L1/oee", params=after, headers=ha)).status_code == 404

        events = (await client.get("/api/v1/audit?limit=200", headers=ha)).json()
        done = [(e["action"], e["target"]) for e in events if e["action"].startswith("app.oee.machine.")]
        assert ("app.oee.machine.edit", mid) in done and ("app.oee.machine.remove", mid) in done
        assert sum(1 for x in done if x[0] == "app.oee.machine.edit") == 1
        assert ("app.oee.machine.retire", cid) in done
