"""Deployments sharing one NATS server: each stores exactly its own bus batches; an id has one owner."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from gongyun.errors import ConfigError
from gongyun.platform import Platform
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from tests.apphelp import admin_headers, running_app
from tests.services import NATS_URL, require_service, scratch_postgres_database

BATCHES, PER_BATCH = 40, 20
T0_MS = 1_780_000_000_000


async def _tenant_with_tag(client: httpx.AsyncClient, platform: Platform) -> str:
    headers = await admin_headers(client)
    device = await client.post(
        "/api/v1/assets/devices", json={"name": "pump1", "protocol": "modbus"}, headers=headers
    )
    assert device.status_code == 201, device.text
    tag = await client.post(
        f"/api/v1/assets/devices/{device.json()['id']}/tags", json={"name": "temp"}, headers=headers
    )
    assert tag.status_code == 201, tag.text
    async with platform.db.session() as session:
        return (await get_tenant_by_name(session, DEFAULT_TENANT)).id


async def _stored(platform: Platform, tenant: str) -> int:
    store = platform.running_telemetry().store
    return len(await store.raw(tenant, "pump1/temp", 0, 2**62))


async def test_two_deployments_on_one_nats_keep_their_own_batches(tmp_path: Path) -> None:
    require_service("nats")
    with scratch_postgres_database() as url_a, scratch_postgres_database() as url_b:
        async with AsyncExitStack() as stack:
            ids = [f"dep{uuid.uuid4().hex[:8]}", f"dep{uuid.uuid4().hex[:8]}"]
            apps = [
                await stack.enter_async_context(
                    running_app(
                        tmp_path / str(i), db_url=url, bus_url=NATS_URL, profile="server", deployment_id=d
                    )
                )
                for i, (url, d) in enumerate(zip((url_a, url_b), ids, strict=True))
            ]
            tenants = [await _tenant_with_tag(client, platform) for client, platform in apps]
            for i, (_, platform) in enumerate(apps):
                for b in range(BATCHES):
                    samples = [
                        {"tag": "pump1/temp", "value": float(k), "ts": T0_MS + (b * PER_BATCH + k) * 1000 + i}
                        for k in range(PER_BATCH)
                    ]
                    body = {"tenant": tenants[i], "samples": samples}
                    await platform.bus.publish(f"telemetry.{tenants[i]}.gw", orjson.dumps(body))
            deadline = time.monotonic() + 20
            while [await _stored(p, t) for (_, p), t in zip(apps, tenants, strict=True)] != [800, 800]:
                counts = [await _stored(p, t) for (_, p), t in zip(apps, tenants, strict=True)]
                assert time.monotonic() < deadline, f"stored {counts} of 800 each"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # nothing more (a duplicate) arrives
            assert [await _stored(p, t) for (_, p), t in zip(apps, tenants, strict=True)] == [800, 800]


async def test_same_deployment_id_with_another_database_refuses_to_start(tmp_path: Path) -> None:
    require_service("nats")
    dep = f"dep{uuid.uuid4().hex[:8]}"
    with scratch_postgres_database() as url_a, scratch_postgres_database() as url_b:
        common = {"bus_url": NATS_URL, "profile": "server", "deployment_id": dep}
        async with running_app(tmp_path / "a", db_url=url_a, **common):
            with pytest.raises(ConfigError, match=rf"deployment_id '{dep}' is already used"):
                async with running_app(tmp_path / "b", db_url=url_b, **common):
                    pass
            # another process of the same deployment (same database) starts
            async with running_app(tmp_path / "a2", db_url=url_a, **common) as (client, _):
                assert (await client.get("/readyz")).status_code == 200
