"""The hash-chained audit trail: recorded by the API, verified, tamper detected."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import text

from gongyun.db import Database
from gongyun.platform import Platform
from gongyun.security.audit import record, verify
from tests.apphelp import admin_headers


async def test_chain_verifies_and_detects_tampering(db: Database) -> None:
    for i in range(20):
        async with db.session() as s:
            await record(s, "t1", "alice", "thing.do", f"obj-{i}", n=i, note="日本語 ok")
        async with db.session() as s:
            await record(s, "t2", "bob", "other.do", f"x-{i}")
    async with db.session() as s:
        good = await verify(s, "t1")
    assert good.ok and good.count == 20
    async with db.session() as s:
        await s.execute(text("UPDATE audit_events SET target = 'forged' WHERE tenant_id = 't1' AND seq = 7"))
    async with db.session() as s:
        bad = await verify(s, "t1")
        assert not bad.ok and bad.first_bad_seq == 7 and bad.reason == "event altered"
        assert (await verify(s, "t2")).ok  # other tenants' chains are independent
        await s.execute(text("DELETE FROM audit_events WHERE tenant_id = 't2' AND seq = 20"))
    async with db.session() as s:
        truncated = await verify(s, "t2")
    assert not truncated.ok and truncated.reason == "events removed from the end"


async def test_overlong_actor_and_target_are_kept_whole_in_the_detail(db: Database) -> None:
    actor, target = "apikey:" + "k" * 100, "t" * 250  # longer than the columns
    async with db.session() as s:
        await record(s, "t1", actor, "thing.do", target)
    async with db.session() as s:
        row = (await s.execute(text("SELECT actor, target, detail FROM audit_events"))).one()
        assert len(row.actor) == 100 and row.actor.startswith("apikey:kkk") and row.actor.endswith("…")
        assert len(row.target) == 200
        detail = row.detail if isinstance(row.detail, dict) else json.loads(row.detail)
        assert detail == {"actor_full": actor, "target_full": target}
        assert (await verify(s, "t1")).ok


async def test_concurrent_writers_do_not_fork_the_chain(db: Database) -> None:
    async def one(i: int) -> None:
        for attempt in range(20):
            try:
                async with db.session() as s:
                    await record(s, "tc", f"w{i}", "write", str(i))
                return
            except Exception:  # SQLite may answer 'database is locked' under contention; retry
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("could not record")

    await asyncio.gather(*(one(i) for i in range(30)))
    async with db.session() as s:
        result = await verify(s, "tc")
    assert result.ok and result.count == 30


async def test_api_records_security_events(app_client: tuple[httpx.AsyncClient, Platform]) -> None:
    client, _ = app_client
    await client.post("/api/v1/auth/token", data={"username": "admin", "password": "wrong-password!"})
    headers = await admin_headers(client)
    key = (
        await client.post("/api/v1/apikeys", json={"name": "k1", "role": "auditor"}, headers=headers)
    ).json()
    await client.delete(f"/api/v1/apikeys/{key['id']}", headers=headers)
    events = (await client.get("/api/v1/audit", headers=headers)).json()
    actions = [(e["action"], e["outcome"]) for e in events]
    assert ("auth.login", "failure") in actions
    assert ("auth.login", "success") in actions
    assert ("apikey.create", "success") in actions and ("apikey.revoke", "success") in actions
    assert all("key" not in e["detail"] for e in events)
    verdict = (await client.get("/api/v1/audit/verify", headers=headers)).json()
    assert verdict["ok"] and verdict["count"] == len(events)
