"""Recall notices pushed to a partner's node through the outbox: delivered with the partner's API
key, retried while the endpoint fails, taken once by the receiver, which recalls at once what it
received from the sender; the campaign's progress in percent (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

from gongyun.apps import WorkerContext
from gongyun.apps.trace import outbox
from gongyun.apps.trace.manifest import MANIFEST
from tests.apps.helpers import eps, running_with_apps, tenant_with_users, until_found

APPS = eps(trace="gongyun.apps.trace.manifest:MANIFEST")
API = "/api/v1/apps/trace"
GTIN = "09506000134352"


async def _tenant(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    t = await tenant_with_users(client, name, "tenant-admin")
    h = t["headers"]["tenant-admin"]
    assert (await client.patch("/api/v1/apps/trace", json={"enabled": True}, headers=h)).status_code == 200
    return t["id"], h


async def _ok(r: Any, status: int = 200) -> Any:
    resp = await r
    assert resp.status_code == status, resp.text
    return resp.json()


async def test_pushed_notice_reaches_the_partners_serials(tmp_path: Path, db_url: str) -> None:
    async with running_with_apps(tmp_path, APPS, db_url) as (client, platform):
        _, hs = await _tenant(client, "supplier")
        _, hm = await _tenant(client, "maker")
        key = await _ok(
            client.post("/api/v1/apikeys", json={"name": "notices", "role": "engineer"}, headers=hm), 201
        )
        # the maker knows the supplier; the supplier pushes to the maker's endpoint with that key
        await _ok(client.post(f"{API}/partners", json={"name": "supplier-s"}, headers=hm), 201)
        url = f"http://test{API}/partners/supplier-s/notices"
        bad = await client.post(
            f"{API}/partners", json={"name": "maker-m", "notify_url": "ftp://x"}, headers=hs
        )
        assert bad.status_code == 422
        partner = {"name": "maker-m", "notify_url": url, "notify_key": key["key"]}
        saved = await _ok(client.post(f"{API}/partners", json=partner, headers=hs), 201)
        assert "notify_key" not in saved
        tpl = {
            "name": "lots",
            "kind": "material_lot",
            "scheme": "gtin_lot",
            "gtin": GTIN,
            "pattern": "R{seq:03d}",
        }
        await _ok(client.post(f"{API}/templates", json=tpl, headers=hs), 201)
        lots = (
            await _ok(
                client.post(
                    f"{API}/mint", json={"template": "lots", "count": 2, "receiver": "maker-m"}, headers=hs
                ),
                201,
            )
        )["ids"]
        lot = await _ok(client.get(f"{API}/items/{lots[0]}", headers=hs))
        # the maker received both lots and built the first into three serials
        got = []
        for i in lots:
            k = (await _ok(client.get(f"{API}/items/{i}", headers=hs)))["key"]
            body = {
                "id": f"https://id.example{k}",
                "kind": "material_lot",
                "attrs": {"partner": "supplier-s"},
            }
            got.append((await _ok(client.post(f"{API}/items", json=body, headers=hm), 201))["id"])
        own = {"name": "units", "kind": "serial", "scheme": "own", "pattern": "PUMP-{seq:04d}"}
        await _ok(client.post(f"{API}/templates", json=own, headers=hm), 201)
        serials = (
            await _ok(client.post(f"{API}/mint", json={"template": "units", "count": 3}, headers=hm), 201)
        )["ids"]
        link = {"parents": [str(got[0])], "children": [str(s) for s in serials]}
        await _ok(client.post(f"{API}/links", json=link, headers=hm), 201)

        recall = await _ok(
            client.post(f"{API}/recalls", json={"item": str(lot["id"]), "name": "resin"}, headers=hs), 201
        )
        assert recall["pushed"] == 1
        (notice,) = recall["notices"]
        assert notice["receiver"] == "maker-m" and notice["push"] and notice["keys"] == [lot["key"]]
        assert recall["progress"]["stage"] in {"notifying", "complete"}

        # the deployment's worker posts to http://test (not reachable from it) and retries; a pass with
        # a client that reaches the in-process API delivers it
        ctx = WorkerContext(
            MANIFEST,
            platform.db,
            platform.bus,
            logging.getLogger("test"),
            platform.apps.services,
            platform.settings,
        )

        async def delivered() -> Any:
            await outbox.deliver_once(ctx, client)
            seen = await _ok(client.get(f"{API}/recalls/{recall['id']}", headers=hs))
            return seen if seen["notices"][0]["delivered_at"] else None

        seen = await until_found(delivered, 20)
        assert seen["progress"] == {
            "percent": 0,
            "stage": "acknowledging",
            "notices": 1,
            "done": 0,
            "delivered": 1,
            "acknowledged": 0,
        }
        frozen = {i["id"] for i in await _ok(client.get(f"{API}/items?status=frozen", headers=hm))}
        assert frozen == {got[0], *serials}
        inbox = await _ok(client.get(f"{API}/inbox", headers=hm))
        assert (
            len(inbox) == 1
            and inbox[0]["sender"] == "supplier-s"
            and inbox[0]["remote_notice"] == notice["id"]
        )
        assert inbox[0]["local_recall"] is not None and inbox[0]["acked_at"] is None
        # delivered again (a retry after a lost answer): taken once
        again = {"notice": notice["id"], "recall": recall["id"], "name": "resin", "keys": [lot["key"]]}
        dup = await _ok(
            client.post(f"{API}/partners/supplier-s/notices", json=again, headers={"X-API-Key": key["key"]}),
            201,
        )
        assert dup["duplicate"] and dup["id"] == inbox[0]["id"]
        assert len(await _ok(client.get(f"{API}/recalls", headers=hm))) == 1
        # only what came from that partner is recalled; an unknown sender is refused; no key, no entry
        r = await client.post(f"{API}/partners/nobody/notices", json=again, headers=hm)
        assert (r.status_code, r.json()["code"]) == (404, "trace_enterprise_unknown")
        assert (await client.post(f"{API}/partners/supplier-s/notices", json=again)).status_code == 401
        audit = await _ok(client.get("/api/v1/audit?action=app.trace.recall.notice.delivered", headers=hs))
        assert audit and audit[0]["target"] == str(notice["id"])

        # the maker acknowledges; its node sends that back to the supplier's endpoint with the key
        # the supplier gave it, and the supplier's campaign counts the notice done
        back = await _ok(
            client.post("/api/v1/apikeys", json={"name": "acks", "role": "engineer"}, headers=hs), 201
        )
        supplier = {
            "name": "supplier-s",
            "notify_url": f"http://test{API}/partners/maker-m/notices",
            "notify_key": back["key"],
        }
        await _ok(client.post(f"{API}/partners", json=supplier, headers=hm), 201)
        await _ok(client.post(f"{API}/inbox/{inbox[0]['id']}/ack", json={"apply": True}, headers=hm))

        async def acked() -> Any:
            await outbox.deliver_once(ctx, client)
            seen = await _ok(client.get(f"{API}/recalls/{recall['id']}", headers=hs))
            return seen if seen["notices"][0]["acked_at"] else None

        seen = await until_found(acked, 20)
        assert seen["notices"][0]["acked_by"] == "partner:maker-m"
        assert seen["progress"]["percent"] == 100 and seen["progress"]["stage"] == "complete"
        assert (await _ok(client.get(f"{API}/inbox", headers=hm)))[0]["ack_sent_at"]
        # an acknowledgement of a notice the supplier did not send to that partner is refused
        r = await client.post(
            f"{API}/partners/maker-m/notices/{notice['id'] + 1000}/ack", headers={"X-API-Key": back["key"]}
        )
        assert (r.status_code, r.json()["code"]) == (404, "trace_item_not_found")
        r = await client.post(f"{API}/partners/nobody/notices/{notice['id']}/ack", headers=hs)
        assert (r.status_code, r.json()["code"]) == (404, "trace_enterprise_unknown")

        # an endpoint that does not answer: the notice waits, its error and attempts are kept
        await _ok(
            client.post(
                f"{API}/partners", json={**partner, "notify_url": "http://no-such-node.invalid/x"}, headers=hs
            ),
            201,
        )
        second = await _ok(
            client.post(f"{API}/recalls", json={"item": str(lots[1]), "name": "resin 2"}, headers=hs), 201
        )
        async with httpx.AsyncClient(timeout=2, trust_env=False) as direct:

            async def failed() -> Any:
                await outbox.deliver_once(ctx, direct)
                n = (await _ok(client.get(f"{API}/recalls/{second['id']}", headers=hs)))["notices"][0]
                return n if n["attempts"] >= 1 else None

            n = await until_found(failed, 20)
        assert n["delivered_at"] is None and n["last_error"]
        progress = (await _ok(client.get(f"{API}/recalls/{second['id']}", headers=hs)))["progress"]
        assert progress["percent"] == 0 and progress["stage"] == "notifying"
        assert outbox.pause(1).total_seconds() == 1 and outbox.pause(30).total_seconds() == outbox.MAX_PAUSE_S
