"""A tag created in one process is accepted by another within a second (HTTP and bus paths)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from gongyun.api.app import create_app
from gongyun.platform import Platform, prepare_database, start_platform
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from tests.apphelp import admin_headers, make_settings
from tests.services import NATS_URL, require_service, scratch_postgres_database


@asynccontextmanager
async def _process(
    tmp_path: Path, db_url: str, *, services: bool
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """One platform process on the shared database and NATS, with an in-process HTTP client."""
    settings = make_settings(tmp_path, db_url, bus_url=NATS_URL, profile="server")
    await prepare_database(settings)
    platform = await start_platform(settings, services=services)
    try:
        transport = httpx.ASGITransport(app=create_app(settings, platform=platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, platform
    finally:
        await platform.close()


async def _post(client: httpx.AsyncClient, headers: dict[str, str], tag: str) -> httpx.Response:
    sample = {"tag": tag, "value": 1.0, "ts": datetime.now(UTC).isoformat()}
    return await client.post("/api/v1/telemetry/ingest", json={"samples": [sample]}, headers=headers)


async def test_tag_created_in_b_is_accepted_by_a_within_a_second(tmp_path: Path) -> None:
    require_service("nats")
    with scratch_postgres_database() as url:
        async with AsyncExitStack() as stack:
            # A ingests (HTTP and the whole bus queue group); B only serves the API.
            client_a, a = await stack.enter_async_context(_process(tmp_path / "a", url, services=True))
            client_b, _ = await stack.enter_async_context(_process(tmp_path / "b", url, services=False))
            headers = await admin_headers(client_a)
            async with a.db.session() as session:
                tenant = (await get_tenant_by_name(session, DEFAULT_TENANT)).id
            device = await client_b.post(
                "/api/v1/assets/devices", json={"name": "pump1", "protocol": "modbus"}, headers=headers
            )
            assert device.status_code == 201, device.text

            # A learns "pump1/temp is unknown" on both paths (and caches that answer)
            refused = (await _post(client_a, headers, "pump1/temp")).json()
            assert [r["reason"] for r in refused["rejected"]] == ["unknown_tag"]
            store = a.running_telemetry().store
            await a.bus.publish(
                f"telemetry.{tenant}.gw",
                orjson.dumps(
                    {
                        "tenant": tenant,
                        "samples": [
                            {"tag": "pump1/temp", "value": 5.0, "ts": int(time.time() * 1000) - 5000}
                        ],
                    }
                ),
            )
            await asyncio.sleep(1.0)  # consumed (and refused) by A
            assert await store.raw(tenant, "pump1/temp", 0, 2**62) == []

            created = await client_b.post(
                f"/api/v1/assets/devices/{device.json()['id']}/tags", json={"name": "temp"}, headers=headers
            )
            assert created.status_code == 201, created.text
            changed = time.monotonic()

            while (body := (await _post(client_a, headers, "pump1/temp")).json())["accepted"] != 1:
                assert time.monotonic() - changed < 1.0, f"A still refuses the new tag: {body}"
                await asyncio.sleep(0.05)
            assert time.monotonic() - changed < 1.0  # published on the bus within the second, too
            await a.bus.publish(
                f"telemetry.{tenant}.gw",
                orjson.dumps(
                    {
                        "tenant": tenant,
                        "samples": [
                            {"tag": "pump1/temp", "value": 7.0, "ts": int(time.time() * 1000) - 4000}
                        ],
                    }
                ),
            )
            while not [p for p in await store.raw(tenant, "pump1/temp", 0, 2**62) if p.value == 7.0]:
                assert time.monotonic() - changed < 5.0, "A dropped the bus sample of the new tag"
                await asyncio.sleep(0.05)
