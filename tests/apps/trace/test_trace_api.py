"""The trace app through its API: templates, minting, genealogy, traces, recall, tenant isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.apps.helpers import eps, running_with_apps, tenant_with_users

APPS = eps(trace="gongyun.apps.trace.manifest:MANIFEST")
GTIN_LOT = "09506000134352"
GTIN_SERIAL = "04012345000016"
API = "/api/v1/apps/trace"


async def _tenant(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    t = await tenant_with_users(client, name, "tenant-admin")
    h = t["headers"]["tenant-admin"]
    r = await client.patch("/api/v1/apps/trace", json={"enabled": True}, headers=h)
    assert r.status_code == 200, r.text
    return t["id"], h


async def _mint(client: httpx.AsyncClient, h: dict[str, str], template: str, n: int, **kw: Any) -> list[int]:
    r = await client.post(f"{API}/mint", json={"template": template, "count": n, **kw}, headers=h)
    assert r.status_code == 201, r.text
    return list(r.json()["ids"])


async def _link(
    client: httpx.AsyncClient, h: dict[str, str], parents: list[int], children: list[int]
) -> httpx.Response:
    return await client.post(
        f"{API}/links",
        json={
            "parents": [str(p) for p in parents],
            "children": [str(c) for c in children],
            "kind": "assembly",
        },
        headers=h,
    )


async def test_genealogy_trace_and_recall(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, _):
        _, h = await _tenant(client, "maker")
        customer, hc = await _tenant(client, "buyer")
        bad = await client.post(
            f"{API}/templates",
            json={"name": "x", "kind": "serial", "scheme": "gtin_serial", "gtin": "04012345000017"},
            headers=h,
        )
        assert bad.status_code == 422 and bad.json()["code"] == "trace_template_invalid"
        assert bad.json()["errors"][0]["field"] == "gtin"
        for tpl in (
            {
                "name": "lots",
                "kind": "material_lot",
                "scheme": "gtin_lot",
                "gtin": GTIN_LOT,
                "pattern": "L{seq:04d}",
            },
            {"name": "batches", "kind": "batch", "scheme": "own", "pattern": "B-{seq:04d}"},
            {
                "name": "units",
                "kind": "serial",
                "scheme": "gtin_serial",
                "gtin": GTIN_SERIAL,
                "pattern": "S{seq:05d}",
                "links": ["gs1:pip https://maker.example/pump"],
            },
            {"name": "ship", "kind": "shipment", "scheme": "sscc", "company_prefix": "4012345"},
        ):
            r = await client.post(f"{API}/templates", json=tpl, headers=h)
            assert r.status_code == 201, r.text
        lots = await _mint(client, h, "lots", 3)
        batches = await _mint(client, h, "batches", 2, machine="line-1")
        units = await _mint(client, h, "units", 10)
        ships = await _mint(client, h, "ship", 2, receiver=customer)
        for parents, children in (
            (lots[:2], batches[:1]),
            (lots[2:], batches[1:]),
            (batches[:1], units[:6]),
            (batches[1:], units[6:]),
            (units[:3], ships[:1]),
            (units[6:7], ships[1:]),
        ):
            assert (await _link(client, h, parents, children)).status_code == 201
        # a cycle (a unit that would contain its own lot) and a lot containing itself: refused, nothing kept
        r = await _link(client, h, [units[0]], [lots[0]])
        assert r.status_code == 422 and r.json()["code"] == "trace_genealogy_cycle"
        r = await _link(client, h, [lots[0]], [lots[0]])
        assert r.status_code == 422 and r.json()["code"] == "trace_genealogy_cycle"
        back = (await client.get(f"{API}/trace/backward/{units[0]}", headers=h)).json()
        assert {n["id"] for n in back["nodes"]} == {units[0], batches[0], lots[0], lots[1]}
        assert {(e["parent"], e["child"]) for e in back["edges"]} == {
            (batches[0], units[0]),
            (lots[0], batches[0]),
            (lots[1], batches[0]),
        }
        unit = await client.get(f"{API}/items/{units[0]}", headers=h)
        key = unit.json()["key"]
        assert key == f"/01/{GTIN_SERIAL}/21/S00001" and unit.json()["handle"].endswith("/gy.trace" + key)
        # by identifier too: a Digital Link and an EPC URI
        dl = await client.get(f"{API}/trace/backward/https://id.example{key}?depth=1", headers=h)
        assert dl.json()["count"] == 2
        epc = await client.get(f"{API}/items/urn:epc:id:sgtin:4012345.000001.S00001", headers=h)
        assert epc.json()["id"] == units[0]
        fwd = (await client.get(f"{API}/trace/forward/{lots[0]}", headers=h)).json()
        assert {n["id"] for n in fwd["nodes"]} == {lots[0], batches[0], *units[:6], ships[0]}
        assert {n["id"]: n["depth"] for n in fwd["nodes"]}[ships[0]] == 3  # lot, batch, unit, shipment
        assert (
            max(
                n["depth"]
                for n in (await client.get(f"{API}/trace/forward/{lots[0]}?depth=2", headers=h)).json()[
                    "nodes"
                ]
            )
            == 2
        )
        # the customer sees nothing of the maker's
        assert (await client.get(f"{API}/items", headers=hc)).json() == []
        assert (await client.get(f"{API}/trace/forward/{lots[0]}", headers=hc)).status_code == 404
        # the customer received the shipment's units and built them into its own product
        for u in (units[0], units[1]):
            key_u = (await client.get(f"{API}/items/{u}", headers=h)).json()["key"]
            r = await client.post(
                f"{API}/items", json={"id": "https://id.example" + key_u, "kind": "serial"}, headers=hc
            )
            assert r.status_code == 201, r.text
        r = await client.post(f"{API}/items", json={"id": "own:PUMPSET-1", "kind": "serial"}, headers=hc)
        mine = r.json()["id"]
        got = (await client.get(f"{API}/items?kind=serial", headers=hc)).json()
        received = [i["id"] for i in got if i["key"].startswith("/01/")]
        assert (await _link(client, hc, received, [mine])).status_code == 201
        # recall of one material lot at the maker
        r = await client.post(f"{API}/recalls", json={"item": str(lots[0]), "name": "bad resin"}, headers=h)
        assert r.status_code == 201, r.text
        campaign = r.json()
        assert campaign["affected"] == 9
        assert campaign["by_kind"] == {"material_lot": 1, "batch": 1, "serial": 6, "shipment": 1}
        assert [n["receiver"] for n in campaign["notices"]] == [customer]
        frozen = (await client.get(f"{API}/items?status=frozen", headers=h)).json()
        assert len(frozen) == 9
        # a trace tells frozen items (the database writes its JSON); a cut trace keeps its links inside
        fwd = (await client.get(f"{API}/trace/forward/{lots[0]}", headers=h)).json()
        assert {n["status"] for n in fwd["nodes"]} == {"frozen"} and fwd["count"] == 9
        assert fwd["nodes"][0]["attrs"] == {} and fwd["nodes"][0]["created_at"].endswith("+00:00")
        other = (await client.get(f"{API}/trace/forward/{lots[2]}", headers=h)).json()
        assert {n["status"] for n in other["nodes"]} == {"active"}
        cut = (await client.get(f"{API}/trace/forward/{lots[0]}?limit=3", headers=h)).json()
        assert cut["truncated"] and cut["count"] == 3
        inside = {n["id"] for n in cut["nodes"]}
        assert cut["edges"] and all({e["parent"], e["child"]} <= inside for e in cut["edges"])
        # the customer acknowledges and recalls what it holds
        inbox = (await client.get(f"{API}/inbox", headers=hc)).json()
        assert len(inbox) == 1 and inbox[0]["acked_at"] is None
        ack = await client.post(f"{API}/inbox/{inbox[0]['id']}/ack", json={"apply": True}, headers=hc)
        assert ack.status_code == 200, ack.text
        assert (await client.get(f"{API}/items/{mine}", headers=hc)).json()["status"] == "frozen"
        seen = (await client.get(f"{API}/recalls/{campaign['id']}", headers=h)).json()
        assert seen["notices"][0]["acked_at"] is not None
        # the maker's recall is not the customer's to read
        assert (await client.get(f"{API}/recalls/{campaign['id']}", headers=hc)).status_code == 404


async def test_labels_and_lifecycle(tmp_path: Path) -> None:
    import segno

    async with running_with_apps(tmp_path, APPS) as (client, _):
        _, h = await _tenant(client, "labels")
        await client.patch(
            "/api/v1/apps/trace", json={"settings": {"resolver_url": "https://id.maker.example/"}}, headers=h
        )
        tpl = {
            "name": "units",
            "kind": "serial",
            "scheme": "gtin_serial",
            "gtin": GTIN_SERIAL,
            "pattern": "S/{seq}",
        }
        assert (await client.post(f"{API}/templates", json=tpl, headers=h)).status_code == 201
        lot_tpl = {"name": "lots", "kind": "material_lot", "scheme": "gtin_lot", "gtin": GTIN_LOT}
        assert (await client.post(f"{API}/templates", json=lot_tpl, headers=h)).status_code == 201
        (unit,) = await _mint(client, h, "units", 1, machine="press-2")
        (lot,) = await _mint(client, h, "lots", 1)
        r = await client.post(
            f"{API}/links",
            json={
                "parents": [str(lot)],
                "children": [str(unit)],
                "machine": "press-2",
                "operator": "op-7",
                "start_at": "2026-03-01T08:00:00Z",
                "end_at": "2026-03-01T08:05:00Z",
            },
            headers=h,
        )
        assert r.status_code == 201
        uri = f"https://id.maker.example/01/{GTIN_SERIAL}/21/S%2F1"
        svg = await client.get(f"{API}/labels/{unit}", headers=h)
        assert svg.headers["content-type"] == "image/svg+xml" and svg.headers["x-digital-link"] == uri
        assert b"<svg" in svg.content
        expected = segno.make_qr(uri, error="m")
        assert expected.designator in {"1-M", "2-M", "3-M", "4-M"}
        pdf = await client.get(f"{API}/labels/{unit}?format=pdf", headers=h)
        assert pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
        life = (await client.get(f"{API}/lifecycle/{unit}", headers=h)).json()
        assert life["label"] == uri
        assert life["production"][0]["machine"] == "press-2" and life["production"][0]["operator"] == "op-7"
        assert [c["id"] for c in life["components"]] == [lot]
