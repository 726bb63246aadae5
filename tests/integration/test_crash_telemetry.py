"""kill -9 the server during a stream of telemetry batches: every acknowledged sample is stored once.

The embedded profile (DuckDB) and the server profile (PostgreSQL, NATS JetStream) each run as a
real ``gongyun serve`` subprocess; writers post batches over HTTP until enough are acknowledged,
the process gets SIGKILL, a new process starts on the same data, and the points are read back.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.config import Settings
from tests.apphelp import ADMIN_PASSWORD
from tests.integration.crashhelp import kill_9, start_server, stop, wait_ready
from tests.services import NATS_URL, free_port, require_service, scratch_postgres_database

BATCH = 20
WRITERS = 4
KILL_AFTER = 40  # acknowledged batches before the kill
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
TAG = "pump1/temp"


async def _headers(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _seed_tag(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    dev = await client.post("/api/v1/assets/devices", json={"name": "pump1"}, headers=headers)
    assert dev.status_code == 201, dev.text
    tag = await client.post(
        f"/api/v1/assets/devices/{dev.json()['id']}/tags", json={"name": "temp"}, headers=headers
    )
    assert tag.status_code == 201, tag.text


async def _stored(client: httpx.AsyncClient, headers: dict[str, str]) -> list[float]:
    params: dict[str, Any] = {
        "tag": TAG,
        "start": (START - timedelta(minutes=1)).isoformat(),
        "end": (START + timedelta(days=1)).isoformat(),
        "limit": 100_000,
    }
    r = await client.get("/api/v1/telemetry/raw", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert not r.json()["truncated"]
    return [float(p["value"]) for p in r.json()["points"]]


@pytest.mark.slow
async def test_kill_9_during_http_ingest_keeps_every_acknowledged_sample_once(
    tmp_path: Path, profile: dict[str, str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path / "var", port, **profile)
    try:
        wait_ready(base, proc)
        acknowledged: list[float] = []
        attempted: list[float] = []
        counter = iter(range(1_000_000))
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            headers = await _headers(client)
            await _seed_tag(client, headers)

            async def writer() -> None:
                while True:
                    first = next(counter) * BATCH
                    values = [float(first + i) for i in range(BATCH)]
                    attempted.extend(values)
                    samples = [
                        {"tag": TAG, "value": v, "ts": (START + timedelta(milliseconds=v)).isoformat()}
                        for v in values
                    ]
                    try:
                        r = await client.post(
                            "/api/v1/telemetry/ingest", json={"samples": samples}, headers=headers
                        )
                    except httpx.HTTPError:
                        return
                    if r.is_success:
                        assert r.json()["accepted"] == BATCH, r.text
                        acknowledged.extend(values)

            tasks = [asyncio.create_task(writer()) for _ in range(WRITERS)]
            deadline = asyncio.get_running_loop().time() + 40
            while len(acknowledged) < KILL_AFTER * BATCH:
                assert asyncio.get_running_loop().time() < deadline, "ingest too slow"
                assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
                await asyncio.sleep(0.01)
            kill_9(proc)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

        proc = start_server(tmp_path / "var", port, **profile)
        wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as client:
            stored = await _stored(client, await _headers(client))
        counts = Counter(stored)
        lost = sorted(set(acknowledged) - counts.keys())
        duplicated = sorted(v for v, n in counts.items() if n > 1)
        assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged samples lost: {lost[:5]}"
        assert not duplicated, f"{len(duplicated)} samples stored twice: {duplicated[:5]}"
        assert counts.keys() <= set(attempted), "points that were never sent"
    finally:
        stop(proc)


# Deployments on one NATS server are isolated only by a deployment id; without one, every other
# server-profile process on the shared test NATS joins the same ingest consumer and takes batches.
NAMESPACED = "deployment_id" in Settings.model_fields


@pytest.fixture
def server_profile() -> Iterator[dict[str, str]]:
    """Settings of a fresh server-profile deployment on a scratch database and the test NATS."""
    require_service("nats")
    with scratch_postgres_database() as url:
        settings = {"profile": "server", "database_url": url, "bus_url": NATS_URL}
        settings["secret_key"] = secrets.token_urlsafe(32)
        if NAMESPACED:
            settings["deployment_id"] = f"crash-{secrets.token_hex(6)}"
        yield settings


@pytest.mark.slow
@pytest.mark.xfail(
    not NAMESPACED,
    reason="issue #16 finding 2: without deployment_id, other deployments on the shared NATS "
    "join the fixed 'telemetry-ingest' consumer and take this deployment's batches",
    strict=False,
)
async def test_kill_9_during_bus_ingest_stores_every_acked_batch_once(
    tmp_path: Path, server_profile: dict[str, str]
) -> None:
    import nats
    import orjson

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path / "var", port, **server_profile)
    nc = await nats.connect(NATS_URL)
    try:
        wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
            headers = await _headers(client)
            await _seed_tag(client, headers)
            me = await client.get("/api/v1/me", headers=headers)
            assert me.status_code == 200, me.text
            tenant = me.json()["tenant_id"]
            js = nc.jetstream()
            prefix = f"{server_profile['deployment_id']}." if NAMESPACED else ""
            acked: list[float] = []

            async def publish(n: int) -> None:
                values = [float(n * BATCH + i) for i in range(BATCH)]
                samples = [
                    {"tag": TAG, "value": v, "ts": (START + timedelta(milliseconds=v)).isoformat()}
                    for v in values
                ]
                body = orjson.dumps({"tenant": tenant, "samples": samples})
                await js.publish(f"{prefix}telemetry.{tenant}.pump1", body)  # raises unless JetStream acked
                acked.extend(values)

            # stream batches until the process has stored some of them, then kill it mid-stream
            n = 0
            deadline = asyncio.get_running_loop().time() + 40
            while not await _stored(client, headers) or n < KILL_AFTER:
                assert asyncio.get_running_loop().time() < deadline, "bus ingest too slow"
                await asyncio.gather(*(publish(n + i) for i in range(WRITERS)))
                n += WRITERS
            for i in range(WRITERS):  # more in flight while it dies
                await publish(n + i)
            kill_9(proc)
            n += WRITERS
            for i in range(10):  # and some while it is down
                await publish(n + i)

        proc = start_server(tmp_path / "var", port, **server_profile)
        wait_ready(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=60, trust_env=False) as client:
            headers = await _headers(client)
            deadline = asyncio.get_running_loop().time() + 40
            while True:
                stored = await _stored(client, headers)
                counts = Counter(stored)
                if set(acked) <= counts.keys() or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
        lost = sorted(set(acked) - counts.keys())
        duplicated = sorted(v for v, k in counts.items() if k > 1)
        assert not lost, f"{len(lost)} of {len(acked)} acked bus samples lost: {lost[:5]}"
        assert not duplicated, f"{len(duplicated)} samples stored twice: {duplicated[:5]}"
        assert counts.keys() <= set(acked)
    finally:
        await nc.close()
        stop(proc)
