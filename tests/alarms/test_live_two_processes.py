"""Live SSE across processes: two runtimes sharing PostgreSQL and NATS JetStream; the API process
without ingest and alarm engine serves the live streams under uvicorn, fed over the bus.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gongyun.api.app import create_app
from gongyun.bus import Message
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.telemetry.live import FLUSH_S, LiveHub
from tests.alarms.test_two_processes import _until, client_of
from tests.api.test_sse_live import ALARMS, POINTS, WAIT_S, Tenant, _now, follow, ingest, make_tenant
from tests.apphelp import admin_headers, make_settings
from tests.services import (
    NATS_URL,
    free_port,
    fresh_alarm_streams,
    require_service,
    scratch_postgres_database,
)


@dataclass
class Pair:
    """The engine process (in-process client) and the API-only process (served over HTTP)."""

    engine_rt: Platform
    api_rt: Platform
    eng: httpx.AsyncClient
    api: httpx.AsyncClient


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    require_service("nats")
    await fresh_alarm_streams()
    with scratch_postgres_database() as url:
        common = {"bus_url": NATS_URL, "profile": "server"}
        engine_settings = make_settings(tmp_path / "a", url, **common)
        api_settings = make_settings(tmp_path / "b", url, **common)
        await prepare_database(engine_settings)
        engine_rt = await start_platform(engine_settings)
        api_rt = await start_platform(api_settings, services=False)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(api_settings, platform=api_rt),
                host="127.0.0.1",
                port=port,
                lifespan="off",
                log_level="warning",
                timeout_graceful_shutdown=5,
            )
        )
        serving = asyncio.create_task(server.serve(), name="test-uvicorn")
        try:
            async with asyncio.timeout(WAIT_S):
                while not server.started:
                    assert not serving.done(), "uvicorn exited before it started"
                    await asyncio.sleep(0.01)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as api,
                client_of(engine_rt) as eng,
            ):
                yield Pair(engine_rt, api_rt, eng, api)
        finally:
            server.should_exit = True
            await serving
            await api_rt.close()
            await engine_rt.close()


async def _tenants(p: Pair) -> tuple[Tenant, Tenant]:
    root = await admin_headers(p.api)
    return await make_tenant(p.api, root, "alpha"), await make_tenant(p.api, root, "beta")


async def test_sse_of_the_process_without_the_engine(pair: Pair) -> None:
    p = pair
    assert p.api_rt.telemetry is None
    a, b = await _tenants(p)
    rules: dict[str, str] = {}
    for t, name in ((a, "hot-alpha"), (b, "hot-beta")):
        r = await p.api.post(
            "/api/v1/alarms/rules",
            json={"kind": "threshold", "name": name, "tag": "pump1/temp", "limit": 90},
            headers=t.headers,
        )
        assert r.status_code == 201, r.text
        rules[t.id] = r.json()["id"]
    svc = p.engine_rt.running_telemetry()
    engine, publisher = svc.alarms, svc.publisher
    assert publisher is not None
    await _until(
        lambda: all(any(x["rule_id"] == rules[t.id] for x in engine.alarms(t.id)) for t in (a, b)), 25
    )

    # Published before the API process follows the bus: its clients never see this backlog.
    now = _now()
    await ingest(p.eng, a, [("pump1/temp", 95.0, now)])
    await _until(lambda: publisher.alarm_messages >= 1 and publisher.point_messages >= 1)

    async with (
        follow(p.api, ALARMS, a.headers) as alarms_a,
        follow(p.api, ALARMS, b.headers) as alarms_b,
        follow(p.api, POINTS, a.headers) as points_a,
        follow(p.api, POINTS, b.headers) as points_b,
    ):
        await ingest(p.eng, a, [("pump1/temp", 10.0, now + timedelta(seconds=1))])  # A returns to normal
        event, data = await alarms_a.event()
        assert (event, data["tenant"], data["rule_id"], data["name"]) == (
            "alarm",
            a.id,
            rules[a.id],
            "hot-alpha",
        )
        assert (data["before"], data["state"], data["value"]) == ("unack_active", "unack_rtn", 10.0), data
        ts = (now + timedelta(seconds=1)).isoformat()
        assert await points_a.event() == ("points", [{"tag": "pump1/temp", "ts": ts, "value": 10.0}])

        # B's alarm fires after A's events went over the bus: B's streams carry only B's.
        await ingest(p.eng, b, [("pump1/temp", 96.0, now)])
        event, data = await alarms_b.event()
        assert (event, data["tenant"], data["rule_id"]) == ("alarm", b.id, rules[b.id]), data
        assert (data["before"], data["state"], data["value"]) == ("normal", "unack_active", 96.0), data
        assert await points_b.event() == (
            "points",
            [{"tag": "pump1/temp", "ts": now.isoformat(), "value": 96.0}],
        )
        # and A's next events are A's again (nothing of B's came in between)
        await ingest(p.eng, a, [("pump1/flow", 4.5, now + timedelta(seconds=2))])
        name, pts = await points_a.event()
        assert (name, [(x["tag"], x["value"]) for x in pts]) == ("points", [("pump1/flow", 4.5)])
        r = await p.api.post(f"/api/v1/alarms/{rules[a.id]}/ack", params={"wait_s": 25}, headers=a.headers)
        assert r.status_code == 200, r.text
        event, data = await alarms_a.event()
        assert (data["tenant"], data["before"], data["state"]) == (a.id, "unack_rtn", "normal"), data
        assert (data["cause"], data["user"]) == ("acknowledged", "alpha-admin"), data
    hub = p.api_rt.live
    assert isinstance(hub, LiveHub) and hub.rejected == 0

    # The alarm list of this process shows the latest sample beside the state.
    await ingest(p.eng, b, [("pump1/temp", 97.5, now + timedelta(seconds=3))])
    current = (await p.api.get("/api/v1/alarms", headers=b.headers)).json()
    assert [(x["rule_id"], x["state"], x["value"]) for x in current] == [(rules[b.id], "unack_active", 97.5)]
    hist = (await p.api.get("/api/v1/alarms/history", headers=b.headers)).json()
    assert [e["value"] for e in hist] == [96.0]  # the value at the last state change
    current_a = (await p.api.get("/api/v1/alarms", headers=a.headers)).json()
    assert [(x["state"], x["value"]) for x in current_a] == [("normal", 10.0)]


async def test_live_points_are_coalesced_on_the_bus(pair: Pair) -> None:
    p = pair
    a, _ = await _tenants(p)
    publisher = p.engine_rt.running_telemetry().publisher
    assert publisher is not None
    seen: list[list[Any]] = []

    async def count(msg: Message) -> None:
        seen.append(orjson.loads(msg.data))
        await msg.ack()

    sub = await p.engine_rt.bus.subscribe(
        f"live.points.{a.id}", durable=f"count-{uuid.uuid4().hex[:12]}", handler=count, forget_after_s=60
    )
    try:
        async with follow(p.api, POINTS, a.headers) as stream:
            loop = asyncio.get_running_loop()
            start = loop.time()
            now = _now()
            total = 10_000
            for batch in range(10):
                samples = [
                    ("pump1/temp", float(i), now + timedelta(milliseconds=i))
                    for i in range(batch * 1000, (batch + 1) * 1000)
                ]
                await ingest(p.eng, a, samples)
            events = 0
            last: float | None = None
            while last != total - 1:
                name, pts = await stream.event()
                events += 1
                assert name == "points" and len(pts) == 1, pts  # one tag: its latest point only
                last = pts[0]["value"]
            elapsed = loop.time() - start
        bound = math.ceil(elapsed / FLUSH_S) + 2
        await _until(lambda: len(seen) >= events)
        await asyncio.sleep(2 * FLUSH_S)
        assert events <= len(seen) <= bound, (events, len(seen), elapsed)
        assert len(seen) < total // 100
        assert all(len(body) == 1 and body[0][0] == "pump1/temp" for body in seen)
        assert seen[-1][0][2] == total - 1
    finally:
        await sub.close()


def _hub_listeners(rt: Platform) -> tuple[int, int]:
    hub = rt.live
    assert isinstance(hub, LiveHub)
    return len(hub.points), len(hub.alarms)


def _leftovers(before: set[asyncio.Task[Any]], queues: set[object]) -> set[asyncio.Task[Any]]:
    """Tasks started since ``before``, except the short waits of the bus's pull fetchers.

    A fetcher waits with ``wait_for(queue.get())`` (or an event), a new task each time; a wait on
    one of ``queues`` (the streams' own queues) is never excused.
    """
    me = asyncio.current_task()
    out = set()
    for t in asyncio.all_tasks():
        if t in before or t is me:
            continue
        coro: Any = t.get_coro()
        frame = getattr(coro, "cr_frame", None)
        owner = frame.f_locals.get("self") if frame is not None else None
        if coro.__qualname__ in ("Queue.get", "Event.wait") and owner is not None and owner not in queues:
            continue
        out.add(t)
    return out


async def test_disconnect_leaks_nothing_in_the_api_process(pair: Pair) -> None:
    p = pair
    a, _ = await _tenants(p)
    async with follow(p.api, ALARMS, a.headers):  # the first stream makes the hub follow the bus
        pass
    publisher = p.engine_rt.running_telemetry().publisher
    assert publisher is not None
    await ingest(p.eng, a, [("pump1/temp", 2.0, _now())])  # the bus client's first batch publish
    await _until(lambda: _hub_listeners(p.api_rt) == (0, 0) and publisher.point_messages == 1)
    hub = p.api_rt.live
    assert isinstance(hub, LiveHub)
    before = set(asyncio.all_tasks())
    queues: set[object] = set()
    for path in (POINTS, ALARMS, POINTS, ALARMS):
        async with (
            httpx.AsyncClient(base_url=p.api.base_url, timeout=WAIT_S) as own,
            follow(own, path, a.headers),
        ):
            assert sum(_hub_listeners(p.api_rt)) == 1
            queues.update(hub.points | hub.alarms)
            assert _leftovers(before, queues), "the open stream runs in no task we can see"
        await _until(lambda: _hub_listeners(p.api_rt) == (0, 0) and not _leftovers(before, queues))
    assert len(queues) == 4
    # live data keeps flowing to nobody, and the process still answers
    await ingest(p.eng, a, [("pump1/temp", 1.0, _now())])
    await asyncio.sleep(2 * FLUSH_S)
    assert (await p.api.get("/api/v1/me", headers=a.headers)).status_code == 200
    assert _hub_listeners(p.api_rt) == (0, 0) and not _leftovers(before, queues)
