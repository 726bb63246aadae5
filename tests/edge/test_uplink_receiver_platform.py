"""A remote gateway on the default (Sparkplug B over MQTT) uplink reaches the platform's ingest and
device status through the receivers ``sparkplug_groups`` starts; receipt is confirmed only once
the samples are stored."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gongyun.assets.schemas import Level
from gongyun.assets.seed import Placement, seed
from gongyun.config import load_settings
from gongyun.core.types import Sample
from gongyun.edge.config import load_config
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.errors import ConfigError
from gongyun.idres.objects import object_registrar
from gongyun.platform import Platform
from gongyun.platform.gateways import sparkplug_receiver_enabled
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from gongyun.sim.pump import PumpServer
from tests.apphelp import admin_headers, running_app
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port, require_service


def _edge_toml(tmp_path: Path, name: str, url: str, group: str, host: str, pump_port: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[gateway]\nid = "{name}"\nbuffer = "{tmp_path / f"{name}.db"}"\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "{url}"\ngroup = "{group}"\n'
        f'primary_host = "{host}"\nconfirm = true\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump_port}\n'
        "timeout = 0.3\n"
    )
    return path


@asynccontextmanager
async def _gateway(path: Path) -> AsyncIterator[Gateway]:
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def _tenant_id(runtime: Platform) -> str:
    async with runtime.db.session() as session:
        tenant_id = str((await get_tenant_by_name(session, DEFAULT_TENANT)).id)
        layout = [
            Placement("Utilities", "Pump station", Level.line, "Pump P-101", "pump1", PROFILES / "pump.toml")
        ]
        await seed(session, tenant_id, layout, minter=object_registrar(runtime.settings, runtime.db))
    return tenant_id


async def _eventually(check: Any, timeout: float = 20.0) -> None:
    """Wait until the async ``check()`` is true or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def _stored_and_rejected(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """Points stored for the tenant plus samples ingest rejected (each counted once)."""
    now = datetime.now(UTC)
    total = 0
    for tag in (await client.get("/api/v1/telemetry/tags", headers=headers)).json():
        params = {
            "tag": tag,
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
        }
        resp = await client.get("/api/v1/telemetry/raw", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        total += len(resp.json()["points"])
    stats = (await client.get("/api/v1/telemetry/stats", headers=headers)).json()
    return total + sum(sum(s["rejected"].values()) for s in stats.values())


async def _gateway_reaches_platform(
    client: httpx.AsyncClient, runtime: Platform, tmp_path: Path, url: str, group: str, host: str
) -> None:
    """Run a gateway in ``group`` and one in a group the platform does not receive; check both."""
    tenant_id = await _tenant_id(runtime)
    headers = await admin_headers(client)
    pump = PumpServer(port=free_port())
    await pump.start()
    stranger_group = f"{group}-unknown"
    try:
        async with (
            _gateway(_edge_toml(tmp_path, "gw1", url, group, host, pump.port)) as gateway,
            _gateway(_edge_toml(tmp_path, "gw2", url, stranger_group, host, pump.port)) as stranger,
        ):

            async def listed() -> bool:
                resp = await client.get("/api/v1/devices/status", headers=headers)
                assert resp.status_code == 200, resp.text
                mine = [d for d in resp.json() if d["gateway"] == f"{group}/gw1"]
                return [(d["device"], d["state"]) for d in mine] == [("pump1", "online")]

            async def flowing() -> bool:
                latest = (await client.get("/api/v1/telemetry/latest", headers=headers)).json()
                return "pump1/flow" in latest and "pump1/pressure" in latest

            await _eventually(listed)
            await _eventually(flowing)
            # the buffer drains: everything written so far is confirmed...
            target = gateway.buffer.next_seq - 1
            assert target > 0
            await wait_for(lambda: gateway.buffer.acked >= target, timeout=20)
            # ...and a confirmation never runs ahead of what the platform stored
            acked = gateway.buffer.acked
            assert await _stored_and_rejected(client, headers) >= acked
            # the group the platform does not receive: nothing listed, nothing confirmed
            assert stranger.buffer.next_seq > 1
            assert stranger.buffer.acked == 0
            listed_gateways = {
                d["gateway"] for d in (await client.get("/api/v1/devices/status", headers=headers)).json()
            }
            assert f"{stranger_group}/gw2" not in listed_gateways
            assert all(gw.name != f"{stranger_group}/gw2" for gw in runtime.gateways.remote.of(tenant_id))
            assert runtime.gateways.remote.of(DEFAULT_TENANT) == []  # filed under the id, not the name
    finally:
        await pump.stop()


async def test_gateway_over_mosquitto_reaches_ingest_and_device_status(tmp_path: Path) -> None:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    host = f"host-{group}"
    async with running_app(
        tmp_path, sparkplug_groups={group: DEFAULT_TENANT}, sparkplug_host_id=host, mqtt_embedded="off"
    ) as (client, runtime):
        registry = runtime.gateways
        ((receiver, _task),) = registry.receivers
        await asyncio.wait_for(receiver.host.connected.wait(), 10)
        assert receiver.host.broker == ("127.0.0.1", 1883)
        await _gateway_reaches_platform(client, runtime, tmp_path, "mqtt://127.0.0.1:1883", group, host)
        assert receiver.store_failures == 0
    assert registry.receivers == [] and receiver.host.client is None  # stopped with the runtime


async def test_gateway_through_the_embedded_broker(tmp_path: Path) -> None:
    port = free_port()
    group = f"t{uuid.uuid4().hex[:10]}"
    url = f"mqtt://127.0.0.1:{port}"
    async with running_app(
        tmp_path, mqtt_url=url, mqtt_embedded="on", sparkplug_groups={group: DEFAULT_TENANT}
    ) as (client, runtime):
        assert runtime.broker.address == ("127.0.0.1", port)
        ((receiver, _task),) = runtime.gateways.receivers
        await asyncio.wait_for(receiver.host.connected.wait(), 10)
        assert receiver.host.broker == ("127.0.0.1", port) and receiver.host.host_id == "gongyun"
        await _gateway_reaches_platform(client, runtime, tmp_path, url, group, "gongyun")


async def test_receiver_off_starts_nothing(tmp_path: Path) -> None:
    async with running_app(
        tmp_path, sparkplug_groups={"plant1": DEFAULT_TENANT}, sparkplug_receiver="off", mqtt_embedded="off"
    ) as (_client, runtime):
        assert runtime.gateways.receivers == []


async def test_unknown_tenant_name_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plant1.*no-such-tenant"):
        async with running_app(tmp_path, sparkplug_groups={"plant1": "no-such-tenant"}, mqtt_embedded="off"):
            pass


def test_server_profile_receives_only_when_on() -> None:
    server = {
        "profile": "server",
        "database_url": "postgresql+psycopg://postgres@127.0.0.1:5432/unused",
        "bus_url": "nats://127.0.0.1:4222",
        "secret_key": "s" * 40,
        "sparkplug_groups": {"plant1": "acme"},
    }

    assert not sparkplug_receiver_enabled(load_settings(**server))
    assert sparkplug_receiver_enabled(load_settings(**server, sparkplug_receiver="on"))
    assert sparkplug_receiver_enabled(load_settings(sparkplug_groups={"plant1": "acme"}))
    assert not sparkplug_receiver_enabled(load_settings(sparkplug_receiver="on"))  # no groups
    with pytest.raises(ConfigError, match="Sparkplug group id"):
        load_settings(sparkplug_groups={"plant/1": "acme"})


async def test_failed_store_is_not_confirmed_and_the_gateway_replays(tmp_path: Path) -> None:
    """The first batch fails to store: nothing is confirmed until the gateway, asked for a rebirth,
    replays it; in the end every sequence number is stored once or more and the buffer drains."""
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    host = f"host-{group}"
    stored: list[int] = []
    failed: list[int] = []
    calls = 0

    async def store(_key: str, samples: list[Sample]) -> Awaitable[object]:
        nonlocal calls
        calls += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if calls == 1:
            failed.extend(s.seq or 0 for s in samples)
            future.set_exception(OSError("disk full"))
        else:
            stored.extend(s.seq or 0 for s in samples)
            future.set_result(None)
        return future

    receiver = UplinkReceiver(("127.0.0.1", 1883), group, None, host_id=host, store=store)
    receiver.host.rebirth_holdoff = 0.2
    rx = asyncio.create_task(receiver.run())
    pump = PumpServer(port=free_port())
    await pump.start()
    try:
        await asyncio.wait_for(receiver.host.connected.wait(), 10)
        async with _gateway(
            _edge_toml(tmp_path, "gw1", "mqtt://127.0.0.1:1883", group, host, pump.port)
        ) as gw:
            await wait_for(lambda: receiver.store_failures == 1, timeout=20)
            await wait_for(lambda: len(stored) > 0, timeout=20)
            target = gw.buffer.next_seq - 1
            assert target > 0
            await wait_for(lambda: gw.buffer.acked >= target, timeout=20)
            assert failed[0] == 1 and set(failed) <= set(stored)  # the failed batch came back
            assert set(range(1, gw.buffer.acked + 1)) <= set(stored)  # no gap
        assert receiver.host.rebirths_requested >= 1 and receiver.store_failures == 1
    finally:
        await pump.stop()
        rx.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rx
