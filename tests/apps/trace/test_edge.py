"""Genealogy captured from the edge: a machine's batch and lot tags, stored through ingest, become
batches linked to the lots they consumed with the machine and the time window; a batch's record
holds the process data of its window and the quality app's inspections of its lot (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.apps.helpers import eps, running_with_apps, tenant_with_users, until_found

APPS = eps(trace="gongyun.apps.trace.manifest:MANIFEST", quality="gongyun.apps.quality.manifest:MANIFEST")
API = "/api/v1/apps/trace"
PACKS, FILM = "04012345000016", "09506000134352"


async def _ok(r: Any, status: int = 200) -> Any:
    got = await r
    assert got.status_code == status, got.text
    return got.json()


async def test_batches_and_lots_from_machine_tags(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, _platform):
        h = (await tenant_with_users(client, "packer", "tenant-admin"))["headers"]["tenant-admin"]
        for app in ("trace", "quality"):
            await _ok(client.patch(f"/api/v1/apps/{app}", json={"enabled": True}, headers=h))
        for name, kind, gtin, pattern in (
            ("packs", "batch", PACKS, "PK{seq}"),
            ("film", "material_lot", FILM, "F{seq}"),
        ):
            body = {"name": name, "kind": kind, "scheme": "gtin_lot", "gtin": gtin, "pattern": pattern}
            await _ok(client.post(f"{API}/templates", json=body, headers=h), 201)  # fmt: skip
        line = {
            "machine": "k1",
            "batch_tag": "k1/batch",
            "batch_template": "packs",
            "lot_tags": {"k1/film": "film"},
        }
        r = await client.patch(
            "/api/v1/apps/trace", json={"settings": {"edge_lines": [{**line, "batch_tag": "k1"}]}}, headers=h
        )
        assert r.status_code == 422, r.text  # a batch tag is device/tag
        await _ok(client.patch("/api/v1/apps/trace", json={"settings": {"edge_lines": [line]}}, headers=h))
        dev = await _ok(client.post("/api/v1/assets/devices", json={"name": "k1"}, headers=h), 201)
        for tag in ("batch", "film", "fill_weight"):
            await _ok(
                client.post(f"/api/v1/assets/devices/{dev['id']}/tags", json={"name": tag}, headers=h), 201
            )

        # batches 101..104 a minute each; film lot 7 loaded before 101 began, lot 8 in the middle of 102
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        at = lambda s: (t0 + timedelta(seconds=s)).isoformat()  # noqa: E731
        samples = [
            {"tag": "k1/film", "value": 7, "ts": at(-30)},
            {"tag": "k1/film", "value": 8, "ts": at(90)},
        ]
        samples += [{"tag": "k1/batch", "value": 101 + i, "ts": at(60 * i)} for i in range(4)]
        samples += [
            {"tag": "k1/fill_weight", "value": 500.0 + (i % 5), "ts": at(i)} for i in range(0, 240, 2)
        ]
        await _ok(client.post("/api/v1/telemetry/ingest", json={"samples": samples}, headers=h))

        async def batches() -> list[dict[str, Any]]:
            got = (await client.get(f"{API}/items?kind=batch", headers=h)).json()
            return got if len(got) >= 3 else []

        made = {b["lot"]: b for b in await until_found(batches)}
        assert set(made) == {"PK101", "PK102", "PK103"}  # 104 is still running
        assert made["PK102"]["key"] == f"/01/{PACKS}/10/PK102" and made["PK102"]["machine"] == "k1"

        async def parents(lot: str) -> list[str]:
            back = (await client.get(f"{API}/trace/backward/{made[lot]['id']}", headers=h)).json()
            return sorted(n["lot"] for n in back["nodes"] if n["kind"] == "material_lot")

        assert await parents("PK101") == ["F7"]
        assert await parents("PK102") == ["F7", "F8"]
        assert await parents("PK103") == ["F8"]
        forward = (await client.get(f"{API}/trace/forward//01/{FILM}/10/F7", headers=h)).json()
        assert sorted(n["lot"] for n in forward["nodes"] if n["kind"] == "batch") == ["PK101", "PK102"]

        # the batch's record: the window, the process data of that window, the inspections of its lot
        await _ok(
            client.post(
                "/api/v1/apps/quality/inspections",
                json=[{"lot": "PK102", "characteristic": "seal strength", "value": 41.5}],
                headers=h,
            ),
            201,
        )
        rec = await _ok(client.get(f"{API}/lifecycle/{made['PK102']['id']}", headers=h))
        [made_from] = {(p["machine"], p["start_at"], p["end_at"]) for p in rec["production"]}
        assert made_from == ("k1", at(60), at(120))
        [window] = rec["process"]
        fill = next(t for t in window["tags"] if t["tag"] == "k1/fill_weight")
        assert fill["count"] == 30 and fill["min"] == 500.0 and fill["max"] == 504.0
        assert [(i["lot"], i["value"]) for i in rec["inspections"]] == [("PK102", 41.5)]
