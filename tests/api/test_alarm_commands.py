"""Operator actions through the API: who acted (users vs API keys), the audit of request and
outcome, and a local engine failure answered 202 (the sweep applies the command later).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gongyun.alarms import commands
from gongyun.alarms.engine import AlarmEngine
from gongyun.platform import Platform
from gongyun.security.audit import AuditEvent, verify
from gongyun.telemetry.store import Point
from gongyun.telemetry.store.base import to_us
from tests.apphelp import admin_headers, running_app

ALARMS = "/api/v1/alarms"


@pytest.fixture
async def app(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """An app (running the alarm engine) on each backend."""
    async with running_app(tmp_path, db_url) as pair:
        yield pair


async def _active_alarm(client: httpx.AsyncClient, runtime: Platform, h: dict[str, str]) -> tuple[str, str]:
    """A rule whose alarm is active and unacknowledged; return (tenant, rule id)."""
    tenant = (await client.get("/api/v1/me", headers=h)).json()["tenant_id"]
    r = await client.post(
        f"{ALARMS}/rules",
        json={"kind": "threshold", "name": "hot", "tag": "pump/temp", "limit": 80},
        headers=h,
    )
    assert r.status_code == 201, r.text
    rid: str = r.json()["id"]
    engine = runtime.running_telemetry().alarms
    await engine.on_points(tenant, [Point("pump/temp", to_us(datetime.now(UTC)), 95.0)])
    assert any(a["rule_id"] == rid and a["state"] == "unack_active" for a in engine.alarms(tenant))
    return tenant, rid


async def _key(client: httpx.AsyncClient, h: dict[str, str], name: str) -> dict[str, str]:
    r = await client.post("/api/v1/apikeys", json={"name": name, "role": "operator"}, headers=h)
    assert r.status_code == 201, r.text
    return {"X-API-Key": r.json()["key"]}


async def _audit(runtime: Platform, tenant: str, action: str) -> list[tuple[str, str, str]]:
    async with runtime.db.session() as s:
        q = select(AuditEvent).where(AuditEvent.tenant_id == tenant, AuditEvent.action == action)
        rows = (await s.execute(q.order_by(AuditEvent.seq))).scalars().all()
        assert (await verify(s, tenant)).ok
    return [(e.actor, e.outcome, str(e.detail.get("command_id"))) for e in rows]


async def test_an_api_key_named_admin_is_not_the_admin_user(app: tuple[httpx.AsyncClient, Platform]) -> None:
    client, runtime = app
    h = await admin_headers(client)
    tenant, rid = await _active_alarm(client, runtime, h)
    r = await client.post(f"{ALARMS}/{rid}/ack", headers=await _key(client, h, "admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["changed_by"]) == ("ack_active", "apikey:admin")
    cid = r.json()["command_id"]
    history = (await client.get(f"{ALARMS}/history", params={"rule_id": rid}, headers=h)).json()
    assert [(e["cause"], e["user"]) for e in history] == [
        ("acknowledged", "apikey:admin"),
        ("activated", None),
    ]
    assert (await client.get(f"{ALARMS}/commands/{cid}", headers=h)).json()["user"] == "apikey:admin"
    current = (await client.get(ALARMS, headers=h)).json()
    assert [(a["rule_id"], a["changed_by"]) for a in current] == [(rid, "apikey:admin")]

    # The request is audited with the command, under the key's actor name, and the engine
    # audits the outcome in the transaction that applied it.
    assert await _audit(runtime, tenant, "alarm.ack") == [
        ("apikey:admin", "pending", cid),
        ("apikey:admin", "applied", cid),
    ]

    # A key with the longest allowed name still fits the command and history columns.
    long_name = "k" * 100
    r = await client.post(
        f"{ALARMS}/{rid}/shelve", json={"duration_s": 60}, headers=await _key(client, h, long_name)
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed_by"].startswith("apikey:kkk") and len(r.json()["changed_by"]) == 64


async def test_rejections_and_expiries_are_audited_as_such(app: tuple[httpx.AsyncClient, Platform]) -> None:
    client, runtime = app
    h = await admin_headers(client)
    tenant, rid = await _active_alarm(client, runtime, h)
    r = await client.post(f"{ALARMS}/{rid}/unshelve", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "alarm_transition_invalid", r.text
    engine = runtime.running_telemetry().alarms
    async with runtime.db.session() as s:
        late = await commands.create(s, tenant, "ack", rid, "olga")
        late.requested_at -= timedelta(hours=1)
    assert await engine.execute(late.id) == "rejected"
    async with runtime.db.session() as s:
        (rejected,) = (
            await s.execute(
                select(commands.AlarmCommandRow.id).where(commands.AlarmCommandRow.action == "unshelve")
            )
        ).scalars()
    assert await _audit(runtime, tenant, "alarm.unshelve") == [
        ("admin", "pending", rejected),
        ("admin", "rejected", rejected),
    ]
    assert await _audit(runtime, tenant, "alarm.ack") == [("olga", "expired", late.id)]


async def test_a_failing_local_engine_answers_202_and_the_sweep_applies_later(
    app: tuple[httpx.AsyncClient, Platform], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime = app
    h = await admin_headers(client)
    tenant, rid = await _active_alarm(client, runtime, h)
    engine = runtime.running_telemetry().alarms
    real = AlarmEngine.execute
    broken = {"on": True}

    async def flaky(self: AlarmEngine, command_id: str) -> str | None:
        if broken["on"]:
            raise RuntimeError("engine hiccup")
        return await real(self, command_id)

    monkeypatch.setattr(AlarmEngine, "execute", flaky)
    r = await client.post(f"{ALARMS}/{rid}/ack", params={"wait_s": 5}, headers=h)
    assert r.status_code == 202, r.text
    href = r.json()["href"]
    assert r.headers["location"] == href and r.json()["status"] == "pending"
    assert (await client.get(href, headers=h)).json()["status"] == "pending"
    # A rule change while the engine fails is still saved (201), its reload queued.
    r = await client.post(
        f"{ALARMS}/rules", json={"kind": "threshold", "name": "cold", "tag": "pump/t2", "limit": 5}, headers=h
    )
    assert r.status_code == 201, r.text
    cold = r.json()["id"]

    broken["on"] = False  # the engine's sweep now applies both
    doc: dict[str, Any] = {}
    for _ in range(200):
        doc = (await client.get(href, headers=h)).json()
        if doc["status"] != "pending" and any(a["rule_id"] == cold for a in engine.alarms(tenant)):
            break
        await asyncio.sleep(0.05)
    assert doc["status"] == "applied" and doc["alarm"]["state"] == "ack_active", doc
    assert any(a["rule_id"] == cold for a in engine.alarms(tenant))
