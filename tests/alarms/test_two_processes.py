"""Two full runtimes sharing PostgreSQL and NATS JetStream, as two ``gongyun serve`` processes
would: both ingest and answer queries, only the elected one runs the alarm engine, and
acknowledge/shelve requests sent to the other one still reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gongyun.alarms.models import AlarmRuleRow
from gongyun.alarms.states import State
from gongyun.api.app import create_app
from gongyun.errors import ServiceUnavailable
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.telemetry.cleaning import CleaningConfig
from gongyun.telemetry.store import Point
from gongyun.telemetry.store.base import to_us
from tests.apphelp import admin_headers, make_settings
from tests.services import NATS_URL, fresh_alarm_streams, require_service, scratch_postgres_database

S = 1_000_000
LONG = {"wait_s": 25}  # a loaded CI machine may take a while; the answer comes as soon as it is applied


@asynccontextmanager
async def client_of(runtime: Platform) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, platform=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def _until(check: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():  # type: ignore[operator]
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


async def test_ack_sent_to_the_process_without_the_engine(tmp_path: Path) -> None:
    require_service("nats")
    await fresh_alarm_streams()
    with scratch_postgres_database() as url:
        common = {"bus_url": NATS_URL, "profile": "server"}
        engine_settings = make_settings(tmp_path / "a", url, **common)
        api_settings = make_settings(tmp_path / "b", url, **common)
        await prepare_database(engine_settings)
        engine_rt = await start_platform(engine_settings)  # first up: elected to run the alarm engine
        api_rt = await start_platform(api_settings)  # a full process too: ingest and queries
        try:
            with pytest.raises(ServiceUnavailable):
                api_rt.running_telemetry().alarms  # noqa: B018 (the engine runs in the other process)
            assert api_rt.running_telemetry().commands is None
            engine = engine_rt.running_telemetry().alarms
            async with client_of(api_rt) as api:
                h = await admin_headers(api)
                r = await api.post(
                    "/api/v1/alarms/rules",
                    json={"kind": "threshold", "name": "hot", "tag": "pump/temp", "limit": 80},
                    headers=h,
                )
                assert r.status_code == 201, r.text
                rid = r.json()["id"]
                async with engine_rt.db.session() as s:
                    tenant = (await s.execute(select(AlarmRuleRow.tenant_id))).scalar_one()
                await _until(lambda: any(a["rule_id"] == rid for a in engine.alarms(tenant)), 25)
                now = to_us(datetime.now(UTC))
                await engine.on_points(tenant, [Point("pump/temp", now, 95.0)])
                assert engine.state(tenant, rid) is State.unack_active
                await engine.flush()  # saved (in the background) before the other process reads it
                current = (await api.get("/api/v1/alarms", params={"active": True}, headers=h)).json()
                assert [(a["rule_id"], a["state"]) for a in current] == [(rid, "unack_active")]

                r = await api.post(f"/api/v1/alarms/{rid}/ack", params=LONG, headers=h)
                assert r.status_code == 200, r.text
                assert r.json()["state"] == "ack_active" and r.json()["changed_by"] == "admin"
                assert engine.state(tenant, rid) is State.ack_active
                again = await api.post(f"/api/v1/alarms/{rid}/ack", params=LONG, headers=h)
                assert again.status_code == 409 and again.json()["code"] == "alarm_transition_invalid"
                hist = (await api.get("/api/v1/alarms/history", params={"rule_id": rid}, headers=h)).json()
                assert [(e["cause"], e["user"]) for e in hist] == [
                    ("acknowledged", "admin"),
                    ("activated", None),
                ]

                # the engine's command consumer is down: the request is kept and answered 202
                worker = engine_rt.running_telemetry().commands
                assert worker is not None
                await worker.stop()
                r = await api.post(
                    f"/api/v1/alarms/{rid}/shelve",
                    params={"wait_s": 0.3},
                    json={"duration_s": 600},
                    headers=h,
                )
                assert r.status_code == 202, r.text
                href = r.json()["href"]
                assert r.headers["location"] == href
                assert (await api.get(href, headers=h)).json()["status"] == "pending"
                assert engine.state(tenant, rid) is State.ack_active
                await worker.start()  # back: the durable consumer redelivers, the sweep would too
                await _until(lambda: engine.state(tenant, rid) is State.shelved, 25)
                done = (await api.get(href, headers=h)).json()
                assert done["status"] == "applied" and done["alarm"]["state"] == "shelved"
                r = await api.post(f"/api/v1/alarms/{rid}/unshelve", params=LONG, headers=h)
                assert r.status_code == 200 and r.json()["state"] == "unack_active"  # condition still on

                # a cleaning report made by the engine's process is served by the other one
                svc = engine_rt.running_telemetry()
                await svc.store.write(
                    tenant, [Point("pump/temp", now - S, 50.0), Point("pump/temp", now, 95.0)]
                )
                await svc.clean(tenant, "pump/temp", now - 60 * S, now + S, CleaningConfig(high=90))
                rep = await api.get("/api/v1/telemetry/clean/report", params={"tag": "pump/temp"}, headers=h)
                assert rep.status_code == 200, rep.text
                assert rep.json()["counts"] == {"out_of_range": 1} and rep.json()["output_count"] == 1
        finally:
            await api_rt.close()
            await engine_rt.close()
