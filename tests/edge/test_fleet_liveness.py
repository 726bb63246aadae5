"""Remote gateway liveness comes from the status's ``sent`` time: a platform restart replaying old
status does not bring dead gateways back; old entries are forgotten; Sparkplug status is filed under
the tenant id."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gongyun.bus import open_bus
from gongyun.core.types import Sample
from gongyun.edge import fleet as fleet_module
from gongyun.edge.config import load_config
from gongyun.edge.fleet import (
    FORGET_AFTER_S,
    GatewayLimitReached,
    RemoteGateways,
    status_message,
    status_subject,
)
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.platform.gateways import receive_sparkplug
from gongyun.security.accounts import DEFAULT_TENANT, get_tenant_by_name
from gongyun.sim.pump import PumpServer
from tests.apphelp import admin_headers, running_app
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port, require_service

INTERVAL = 0.2
DEVICES = {"pump1": {"device": "pump1", "state": "online", "connected": True}}


def _status(tenant: str, *, online: bool = True, sent: datetime | None = None) -> bytes:
    body = status_message(tenant, {"gateway": "gw1", "devices": DEVICES}, INTERVAL, online=online)
    if sent is None:
        return body
    return json.dumps({**json.loads(body), "sent": sent.isoformat()}).encode()


def _alive(fleet: RemoteGateways, tenant: str) -> bool | None:
    found = fleet.of(tenant)
    return found[0].alive() if found else None


@pytest.fixture(params=["memory", "nats"])
def bus_url(request: pytest.FixtureRequest) -> str:
    """The in-process bus and NATS JetStream (one platform's status stream, shared by tests)."""
    if request.param == "nats":
        require_service("nats")
        return "nats://127.0.0.1:4222"
    return f"memory://liveness-{uuid.uuid4().hex[:8]}"


async def test_replayed_status_after_restart_leaves_gateway_offline(
    bus_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_module, "MAX_SKEW_S", 0.2)  # else a status up to 15 s old counts as current
    tenant = f"t{uuid.uuid4().hex[:10]}"  # the NATS stream keeps other tests' status too
    gw_bus, first, second = open_bus(bus_url), open_bus(bus_url), open_bus(bus_url)
    for bus in (gw_bus, first, second):
        await bus.connect()
    platform = RemoteGateways()
    restarted = RemoteGateways()
    try:
        await platform.subscribe(first)
        await gw_bus.publish(status_subject(tenant, "gw1"), _status(tenant))
        await wait_for(lambda: _alive(platform, tenant) is True)
        # the gateway crashes (no "online": false) and misses its heartbeats
        await wait_for(lambda: _alive(platform, tenant) is False, timeout=5)
        await platform.stop()
        await asyncio.sleep(3 * INTERVAL)  # older than heartbeats plus the tolerated skew
        # a new platform process replays the stream: it learns of the gateway, but as offline
        await restarted.subscribe(second)
        await wait_for(lambda: _alive(restarted, tenant) is not None)
        (gw,) = restarted.of(tenant)
        status = gw.status()
        assert not gw.alive() and status["uplink"]["online"] is False
        assert status["devices"]["pump1"]["state"] == "offline"
        assert status["uplink"]["last_seen_s"] >= 3 * INTERVAL
        # the gateway comes back: its next heartbeat brings it online at once
        await gw_bus.publish(status_subject(tenant, "gw1"), _status(tenant))
        await wait_for(lambda: _alive(restarted, tenant) is True)
        assert restarted.of(tenant)[0].status()["devices"]["pump1"]["state"] == "online"
        if bus_url.startswith("memory"):  # on NATS the stream holds other tests' status too
            assert restarted.rejected == 0
    finally:
        await platform.stop()
        await restarted.stop()
        for bus in (gw_bus, first, second):
            await bus.close()


def test_future_sent_is_not_believed_and_old_messages_are_skipped() -> None:
    fleet = RemoteGateways()
    subject = status_subject("acme", "gw1")
    now = datetime.now(UTC)
    gw = fleet.apply(subject, _status("acme", sent=now + timedelta(hours=1)))
    assert not gw.alive() and gw.status()["uplink"]["clock_ahead_s"] > 3500
    # a little skew is tolerated, either way
    gw = fleet.apply(subject, _status("acme", sent=now + timedelta(seconds=5)))
    assert gw.alive() and "clock_ahead_s" not in gw.status()["uplink"]
    late = RemoteGateways().apply(subject, _status("acme", sent=now - timedelta(seconds=10)))
    assert late.alive()
    dead = RemoteGateways().apply(subject, _status("acme", sent=now - timedelta(seconds=20)))
    assert not dead.alive()
    # an older status (redelivered out of order) does not overwrite a newer one
    gw = fleet.apply(subject, _status("acme", online=False, sent=now - timedelta(seconds=1)))
    assert gw.alive() and gw.online
    # a status without a ``sent`` cannot be dated: refused
    body = json.loads(_status("acme"))
    del body["sent"]
    with pytest.raises(fleet_module.DecodeError):
        fleet.apply(subject, json.dumps(body).encode())


def test_long_silent_gateways_are_forgotten() -> None:
    fleet = RemoteGateways()
    fleet.apply(status_subject("acme", "old"), _status("acme"))
    fleet.apply(status_subject("acme", "new"), _status("acme"))
    fleet.gateways[("acme", "old")].last_seen -= FORGET_AFTER_S + 1
    assert [gw.name for gw in fleet.of("acme")] == ["new"]
    assert fleet.prune(now=time.time() + FORGET_AFTER_S + 1) == 1
    assert fleet.of("acme") == []


async def test_gateways_per_tenant_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_module, "MAX_PER_TENANT", 3)
    bus = open_bus(f"memory://limit-{uuid.uuid4().hex[:8]}")
    await bus.connect()
    fleet = RemoteGateways()
    await fleet.subscribe(bus)
    try:
        for name in ("a", "b", "c"):
            await bus.publish(status_subject("acme", name), _status("acme"))
        await wait_for(lambda: len(fleet.of("acme")) == 3)
        await bus.publish(status_subject("acme", "d"), _status("acme"))
        await wait_for(lambda: fleet.rejected == 1)  # all three alive: the newcomer is refused
        with pytest.raises(GatewayLimitReached):
            fleet.apply(status_subject("acme", "e"), _status("acme"))
        await bus.publish(status_subject("other", "d"), _status("other"))  # other tenants unaffected
        await wait_for(lambda: len(fleet.of("other")) == 1)
        await bus.publish(status_subject("acme", "b"), _status("acme", online=False))
        await wait_for(lambda: not fleet.gateways[("acme", "b")].online)
        await bus.publish(status_subject("acme", "d"), _status("acme"))  # displaces the offline one
        await wait_for(lambda: [gw.name for gw in fleet.of("acme")] == ["a", "c", "d"])
        fleet.node_state("acme", "grp/node", True)  # Sparkplug is bounded too: counted, not raised
        assert fleet.rejected == 2 and len(fleet.of("acme")) == 3
    finally:
        await fleet.stop()
        await bus.close()


def test_sparkplug_receiver_needs_the_tenant_id() -> None:
    with pytest.raises(TypeError):
        UplinkReceiver(("127.0.0.1", 1883), "g", lambda key, s: None, fleet=RemoteGateways())


async def test_sparkplug_status_reaches_the_devices_api_under_the_tenant_id(tmp_path: Path) -> None:
    require_service("mqtt")
    pump = PumpServer(port=free_port())
    await pump.start()
    group = f"t{uuid.uuid4().hex[:10]}"
    samples: list[Sample] = []
    async with running_app(tmp_path) as (client, runtime):
        async with runtime.db.session() as session:
            tenant_id = str((await get_tenant_by_name(session, DEFAULT_TENANT)).id)
        receiver = receive_sparkplug(
            runtime,
            tenant_id,
            group,
            ("127.0.0.1", 1883),
            lambda key, batch: samples.extend(batch),
            host_id=f"host-{group}",
        )
        path = tmp_path / "edge.toml"
        path.write_text(
            f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "b.db"}"\n\n'
            f'[uplink]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\ngroup = "{group}"\n'
            f'primary_host = "host-{group}"\nconfirm = true\n\n'
            f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
            "timeout = 0.3\n"
        )
        config, profiles = load_config(path)
        gateway = Gateway(config, profiles)
        headers = await admin_headers(client)
        registry = runtime.gateways
        try:
            await receiver.host.connected.wait()
            await gateway.start()
            await wait_for(lambda: any(gw.name == f"{group}/gw1" for gw in runtime.gateways.of(tenant_id)))
            await wait_for(lambda: bool(samples), timeout=15)

            async def listed() -> list[dict[str, Any]]:
                resp = await client.get("/api/v1/devices/status", headers=headers)
                assert resp.status_code == 200, resp.text
                return [d for d in resp.json() if d["gateway"] == f"{group}/gw1"]

            deadline = time.monotonic() + 15
            while [d["state"] for d in await listed()] != ["online"] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert [d["state"] for d in await listed()] == ["online"]
            assert runtime.gateways.remote.of("default") == []  # not filed under the tenant's name
        finally:
            await gateway.stop()
            await pump.stop()
    assert registry.receivers == [] and receiver.host.client is None  # stopped with the runtime
