"""The live (server-sent events) endpoints over real HTTP: auth, tenant scoping, framing, disconnect.

The app runs under uvicorn on a free port in the test's event loop (httpx's in-process ASGI
transport buffers whole responses, so it cannot follow an endless stream), which also lets the
tests look at the server's listeners and tasks once a client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gongyun.api.app import create_app
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.platform.data import TelemetryService
from tests.apphelp import admin_headers, login, make_settings
from tests.services import free_port

POINTS = "/api/v1/telemetry/stream"
ALARMS = "/api/v1/alarms/stream"
WAIT_S = 10.0


@asynccontextmanager
async def served_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """The real app under uvicorn on 127.0.0.1, and an httpx client speaking HTTP to it."""
    settings = make_settings(tmp_path)
    await prepare_database(settings)
    runtime = await start_platform(settings)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, platform=runtime),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(), name="test-uvicorn")
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                assert not serving.done(), "uvicorn exited before it started"
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client:
            yield client, runtime
    finally:
        server.should_exit = True
        await serving
        await runtime.close()


@dataclass
class Tenant:
    """A tenant with a tenant admin's headers and its tenant id."""

    id: str
    headers: dict[str, str]


async def make_tenant(client: httpx.AsyncClient, root: dict[str, str], name: str) -> Tenant:
    """A tenant, its admin signed in, a device ``pump1`` with the float tags ``temp`` and ``flow``."""
    r = await client.post("/api/v1/tenants", json={"name": name}, headers=root)
    assert r.status_code == 201, r.text
    tenant_id = r.json()["id"]
    password = f"{name}-admin-password"
    r = await client.post(
        "/api/v1/users",
        json={"username": f"{name}-admin", "password": password, "role": "tenant-admin"},
        headers={**root, "X-Tenant": tenant_id},
    )
    assert r.status_code == 201, r.text
    h = await login(client, f"{name}-admin", password)
    r = await client.post("/api/v1/assets/devices", json={"name": "pump1"}, headers=h)
    assert r.status_code == 201, r.text
    for tag in ("temp", "flow"):
        t = await client.post(f"/api/v1/assets/devices/{r.json()['id']}/tags", json={"name": tag}, headers=h)
        assert t.status_code == 201, t.text
    return Tenant(tenant_id, h)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Platform, Tenant, Tenant]]:
    """The served app with two tenants that both have ``pump1/temp`` and ``pump1/flow``."""
    async with served_app(tmp_path) as (client, runtime):
        root = await admin_headers(client)
        a = await make_tenant(client, root, "alpha")
        b = await make_tenant(client, root, "beta")
        yield client, runtime, a, b


class EventReader:
    """Reads one SSE response block by block (blocks end with a blank line)."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        self._chunks = response.aiter_bytes()
        self._buffer = b""

    async def block(self) -> list[tuple[str, str]]:
        """The next block's lines as (field, value); a comment line has the field ``""``."""
        async with asyncio.timeout(WAIT_S):
            while b"\n\n" not in self._buffer:
                self._buffer += await anext(self._chunks)
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        lines: list[tuple[str, str]] = []
        for line in raw.decode().split("\n"):
            assert "\r" not in line
            field, sep, value = line.partition(":")
            assert sep, f"an SSE line without a colon: {line!r}"
            lines.append((field, value.removeprefix(" ")))
        return lines

    async def connected(self) -> None:
        """The greeting comment the server sends as soon as it listens."""
        assert await self.block() == [("", "connected")]

    async def event(self) -> tuple[str, Any]:
        """The next event (comments such as keep-alives are skipped): its name and its JSON data."""
        while True:
            lines = await self.block()
            fields = [(f, v) for f, v in lines if f]
            if not fields:
                continue
            names = [v for f, v in fields if f == "event"]
            data = [v for f, v in fields if f == "data"]
            assert len(names) == 1 and len(data) == 1, f"unexpected SSE block {lines!r}"
            assert {f for f, _ in fields} <= {"event", "data", "id"}, f"unexpected SSE fields {lines!r}"
            return names[0], orjson.loads(data[0])


@asynccontextmanager
async def follow(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> AsyncIterator[EventReader]:
    """An open stream, past its greeting (so the server is listening when this yields)."""
    async with client.stream("GET", path, headers=headers, params=params) as response:
        reader = EventReader(response)
        await reader.connected()
        yield reader


async def ingest(client: httpx.AsyncClient, t: Tenant, samples: list[tuple[str, float, datetime]]) -> None:
    """Ingest samples and check that all of them were stored."""
    body = {"samples": [{"tag": tag, "value": v, "ts": ts.isoformat()} for tag, v, ts in samples]}
    r = await client.post("/api/v1/telemetry/ingest", json=body, headers=t.headers)
    assert r.status_code == 200 and r.json() == {"accepted": len(samples), "rejected": []}, r.text


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def test_streams_require_authentication(
    live: tuple[httpx.AsyncClient, Platform, Tenant, Tenant],
) -> None:
    client, _, a, _ = live
    for path in (POINTS, ALARMS):
        for headers, code in (
            ({}, "unauthenticated"),
            ({"Authorization": "Bearer not-a-token"}, "token_invalid"),
            ({"X-API-Key": "gy_nope_nope"}, "invalid_credentials"),
        ):
            async with client.stream("GET", path, headers=headers) as r:
                body = orjson.loads(await r.aread())
                assert r.status_code == 401, f"{path} with {headers} answered {r.status_code}"
                assert r.headers["content-type"].startswith("application/problem+json")
                assert body["code"] == code, body
        async with follow(client, path, a.headers):  # the same stream with credentials opens
            pass


async def test_points_stream_framing_and_tenant_scoping(
    live: tuple[httpx.AsyncClient, Platform, Tenant, Tenant],
) -> None:
    client, _, a, b = live
    now = _now()
    async with (
        follow(client, POINTS, a.headers) as stream_a,
        follow(client, POINTS, b.headers) as stream_b,
        follow(client, POINTS, b.headers, tag="pump1/flow") as flow_b,
    ):
        # A writes first, then B, then A again: each stream's next event must be its own tenant's.
        await ingest(client, a, [("pump1/temp", 11.5, now - timedelta(seconds=2)), ("pump1/flow", 1.0, now)])
        await ingest(client, b, [("pump1/temp", 22.5, now), ("pump1/flow", 2.0, now)])
        await ingest(client, a, [("pump1/temp", 13.5, now)])
        assert await stream_a.event() == (
            "points",
            [
                {"tag": "pump1/temp", "ts": (now - timedelta(seconds=2)).isoformat(), "value": 11.5},
                {"tag": "pump1/flow", "ts": now.isoformat(), "value": 1.0},
            ],
        )
        assert await stream_a.event() == (
            "points",
            [{"tag": "pump1/temp", "ts": now.isoformat(), "value": 13.5}],
        )
        assert await stream_b.event() == (
            "points",
            [
                {"tag": "pump1/temp", "ts": now.isoformat(), "value": 22.5},
                {"tag": "pump1/flow", "ts": now.isoformat(), "value": 2.0},
            ],
        )
        # A tag filter narrows the tenant's own points; batches without the tag send nothing.
        await ingest(client, b, [("pump1/temp", 23.5, now + timedelta(seconds=1))])
        await ingest(client, b, [("pump1/flow", 3.0, now + timedelta(seconds=1))])
        assert await flow_b.event() == (
            "points",
            [{"tag": "pump1/flow", "ts": now.isoformat(), "value": 2.0}],
        )
        assert await flow_b.event() == (
            "points",
            [{"tag": "pump1/flow", "ts": (now + timedelta(seconds=1)).isoformat(), "value": 3.0}],
        )
        name, data = await stream_b.event()
        assert (name, [p["value"] for p in data]) == ("points", [23.5])


async def test_alarm_stream_framing_and_tenant_scoping(
    live: tuple[httpx.AsyncClient, Platform, Tenant, Tenant],
) -> None:
    client, _, a, b = live
    rules: dict[str, str] = {}
    for t, name in ((a, "hot-alpha"), (b, "hot-beta")):
        r = await client.post(
            "/api/v1/alarms/rules",
            json={"kind": "threshold", "name": name, "tag": "pump1/temp", "limit": 90, "priority": "high"},
            headers=t.headers,
        )
        assert r.status_code == 201, r.text
        rules[t.id] = r.json()["id"]
    now = _now()
    async with follow(client, ALARMS, a.headers) as stream_a, follow(client, ALARMS, b.headers) as stream_b:
        # A's alarm fires first; B's stream must not carry it, its first event is B's own alarm.
        await ingest(client, a, [("pump1/temp", 95.0, now)])
        await ingest(client, b, [("pump1/temp", 96.0, now)])
        for stream, t, name in ((stream_a, a, "hot-alpha"), (stream_b, b, "hot-beta")):
            event, data = await stream.event()
            assert event == "alarm"
            assert data["tenant"] == t.id and data["rule_id"] == rules[t.id] and data["name"] == name
            assert (data["before"], data["state"]) == ("normal", "unack_active"), data
        # An operator action on A's alarm reaches A's stream only.
        r = await client.post(f"/api/v1/alarms/{rules[a.id]}/ack", headers=a.headers)
        assert r.status_code == 200, r.text
        await ingest(client, b, [("pump1/temp", 10.0, now + timedelta(seconds=1))])  # B returns to normal
        event, data = await stream_a.event()
        assert (event, data["tenant"], data["state"]) == ("alarm", a.id, "ack_active"), data
        event, data = await stream_b.event()
        assert (event, data["tenant"], data["rule_id"]) == ("alarm", b.id, rules[b.id]), data
        assert data["before"] == "unack_active" and data["state"] != "unack_active", data


def _listeners(runtime: Platform) -> tuple[int, int]:
    """How many live queues the points fan-out and the alarm engine feed (private, on purpose)."""
    svc: TelemetryService = runtime.running_telemetry()
    return len(svc._live), len(svc.alarms._listeners)


async def _settled(runtime: Platform, listeners: tuple[int, int], tasks: set[asyncio.Task[Any]]) -> None:
    """Wait until the server is back to the given listeners and tasks (fail after WAIT_S)."""
    me = asyncio.current_task()
    extra: set[asyncio.Task[Any]] = set()
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                extra = {t for t in asyncio.all_tasks() if t not in tasks and t is not me}
                if _listeners(runtime) == listeners and not extra:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"listeners {_listeners(runtime)} (expected {listeners}), tasks left over: {extra}")


@pytest.mark.parametrize("path", [POINTS, ALARMS])
async def test_disconnect_ends_the_stream_without_leaks(
    live: tuple[httpx.AsyncClient, Platform, Tenant, Tenant], path: str
) -> None:
    client, runtime, a, _ = live
    assert (await client.get("/api/v1/me", headers=a.headers)).status_code == 200  # keep-alive is warm
    idle = _listeners(runtime)
    before = set(asyncio.all_tasks())
    for _ in range(3):
        async with (
            httpx.AsyncClient(base_url=client.base_url, timeout=WAIT_S) as own,
            follow(own, path, a.headers),
        ):
            grown = _listeners(runtime)
            assert sum(grown) == sum(idle) + 1, (idle, grown)
            assert set(asyncio.all_tasks()) - before, "the open stream runs in no task we can see"
        # the client hung up mid-stream (no event ever came): the server lets go of everything
        await _settled(runtime, idle, before)
    # Data keeps flowing to nobody, and the server still answers.
    await ingest(client, a, [("pump1/temp", 1.0, _now())])
    assert (await client.get("/api/v1/me", headers=a.headers)).status_code == 200
    await _settled(runtime, idle, before)
