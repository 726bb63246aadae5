"""Observability: Prometheus metrics that move with ingest, and a readiness probe that never waits."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from gongyun.platform import Platform
from tests.api.test_sse_live import make_tenant
from tests.apphelp import admin_headers, running_app
from tests.services import free_port, port_open, require_path


def _samples(text: str) -> dict[str, float]:
    """``name{label="v",...}`` -> value of every sample of an exposition."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def _scrape(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, float]:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return _samples(r.text)


async def test_metrics_move_with_an_ingested_batch(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _platform):
        root = await admin_headers(client)
        assert (await client.get("/metrics")).status_code == 401  # authenticated, as before
        tenant = await make_tenant(client, root, "observed")
        rule = {"kind": "threshold", "name": "hot", "tag": "pump1/temp", "limit": 90, "priority": "high"}
        r = await client.post("/api/v1/alarms/rules", json=rule, headers=tenant.headers)
        assert r.status_code == 201, r.text
        before = await _scrape(client, root)
        now = datetime.now(UTC).isoformat()
        body = {
            "samples": [
                {"tag": "pump1/temp", "value": 95.5, "ts": now},
                {"tag": "pump1/flow", "value": 3.0, "ts": now},
                {"tag": "pump1/nope", "value": 1.0, "ts": now},
            ]
        }
        r = await client.post("/api/v1/telemetry/ingest", json=body, headers=tenant.headers)
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
        after = await _scrape(client, root)

        def moved(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        assert moved("gongyun_telemetry_ingest_accepted_total") == 2
        assert moved('gongyun_telemetry_ingest_rejected_total{reason="unknown_tag"}') == 1
        assert moved("gongyun_telemetry_ingest_batch_samples_count") == 1
        assert moved("gongyun_telemetry_ingest_batch_samples_sum") == 3
        assert moved("gongyun_telemetry_store_points_total") == 2
        assert moved("gongyun_telemetry_store_write_seconds_count") >= 1
        assert moved("gongyun_telemetry_ingest_lag_seconds_count") >= 1
        assert after["gongyun_telemetry_ingest_queue_chunks"] == 0
        assert after["gongyun_alarms_leader"] == 1  # one process: the engine runs here
        assert after['gongyun_platform_dependency_up{dependency="database"}'] == 1
        assert moved("gongyun_alarms_evaluated_total") == 1  # the one sample of a tag with a rule
        deadline = time.monotonic() + 5
        while moved("gongyun_alarms_saved_total") < 1:  # the raised alarm is saved in the background
            assert time.monotonic() < deadline, "the alarm transition was not saved"
            await asyncio.sleep(0.05)
            after = await _scrape(client, root)


@contextmanager
def private_nats(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A NATS JetStream server of this test only (its own port and store), killed at the end."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    require_path(binary, "nats-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "nats")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port, 0.2):
            assert time.monotonic() < deadline and proc.poll() is None, "nats-server did not start"
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait()


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


async def _bus_batch_moves_metrics(client: httpx.AsyncClient, platform: Platform) -> None:
    """A batch published on the (private) bus is delivered, ingested and counted."""
    root = await admin_headers(client)
    tenant = await make_tenant(client, root, "bus-observed")
    before = await _scrape(client, root)
    now = datetime.now(UTC).isoformat()
    body = {"tenant": tenant.id, "samples": [{"tag": "pump1/temp", "value": 1.5, "ts": now}]}
    await platform.bus.publish(f"telemetry.{tenant.id}.pump1", orjson.dumps(body))
    deadline = time.monotonic() + 10
    while True:
        after = await _scrape(client, root)
        accepted = _total(after, "gongyun_telemetry_ingest_accepted_total") - _total(
            before, "gongyun_telemetry_ingest_accepted_total"
        )
        if accepted >= 1:
            break
        assert time.monotonic() < deadline, "the bus batch was not ingested"
        await asyncio.sleep(0.1)
    assert _total(after, "gongyun_bus_delivered_total") > _total(before, "gongyun_bus_delivered_total")
    assert any(k.startswith("gongyun_bus_pending_messages{") for k in after)
    assert _total(after, "gongyun_bus_consumer_members") >= 1


async def _timed_readyz(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = await client.get("/readyz")
    return r, time.monotonic() - started


async def test_readyz_answers_at_once_during_a_bus_outage(tmp_path: Path) -> None:
    with private_nats(tmp_path) as (url, nats_proc):
        async with running_app(tmp_path, bus_url=url) as (client, platform):
            r, took = await _timed_readyz(client)
            assert r.status_code == 200 and took < 1.0, r.text
            assert r.json()["checks"] == {"database": "ok", "bus": "ok"}
            assert 0 <= r.json()["age_s"]["bus"] < 5
            await _bus_batch_moves_metrics(client, platform)
            nats_proc.kill()
            nats_proc.wait()
            deadline = time.monotonic() + 5
            while True:
                r, took = await _timed_readyz(client)
                assert took < 1.0, f"/readyz took {took:.2f} s during the outage"
                if r.status_code == 503:
                    break
                assert time.monotonic() < deadline, "the outage was not reported within 5 s"
                await asyncio.sleep(0.2)
            body = r.json()
            assert body["status"] == "unavailable" and body["checks"]["bus"] != "ok"
            assert body["checks"]["database"] == "ok" and body["age_s"]["bus"] < 5


async def test_readyz_is_503_with_a_hanging_probe(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, platform):
        assert platform.health is not None
        hang = asyncio.Event()

        async def stuck() -> None:
            await hang.wait()  # a dependency that accepts the connection and never answers

        platform.health.add("stuck", stuck)
        await platform.health.probe_all()
        r, took = await _timed_readyz(client)
        assert r.status_code == 503 and took < 1.0
        assert r.json()["checks"]["stuck"].startswith("no answer within")
        hang.set()
        await platform.health.probe_all()
        r, took = await _timed_readyz(client)
        assert r.status_code == 200 and took < 1.0, r.text


async def test_the_first_probe_may_take_longer_than_the_steady_ones() -> None:
    from gongyun.platform.health import HealthMonitor

    async def first_connection() -> None:
        await asyncio.sleep(0.3)  # opening a pool's first connection on a busy machine

    health = HealthMonitor(interval_s=60, timeout_s=0.1, startup_timeout_s=1.0)
    health.add("database", first_connection)
    await health.start()
    try:
        assert health.report()["checks"] == {"database": "ok"}
        await health.probe_all()  # the same delay later is an outage: steady probes keep their bound
        assert health.report()["checks"] == {"database": "no answer within 0.1 s"}
        assert health.report()["status"] == "unavailable"
    finally:
        await health.stop()
