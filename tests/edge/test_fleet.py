"""A remote gateway's device states reach the platform over the bus and over Sparkplug B."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

from gongyun.bus import open_bus
from gongyun.edge.config import load_config
from gongyun.edge.fleet import RemoteGateways
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.registry import GatewayRegistry
from gongyun.edge.runtime import Gateway
from gongyun.sim.pump import PumpServer
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port, require_service


def _state(reg: GatewayRegistry, tenant: str, device: str) -> str | None:
    for gw in reg.of(tenant):
        dev = gw.status()["devices"].get(device)
        if dev is not None:
            return str(dev["state"])
    return None


def _device(port: int) -> str:
    return (
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {port}\ntimeout = 0.3\n'
    )


async def test_device_offline_over_the_bus(tmp_path: Path) -> None:
    pump = PumpServer(port=free_port())
    await pump.start()
    url = f"memory://fleet-{uuid.uuid4().hex[:8]}"
    bus = open_bus(url)
    await bus.connect()
    await bus.ensure_stream("TELEMETRY", ["telemetry.>"])
    reg = GatewayRegistry()
    await reg.remote.subscribe(bus)
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw-remote"\nbuffer = "{tmp_path / "b.db"}"\n\n'
        f'[uplink]\nkind = "bus"\nurl = "{url}"\ntenant = "acme"\nstatus_interval = 0.5\n\n'
        + _device(pump.port)
    )
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles, bus=bus)
    await gateway.start()
    try:
        await wait_for(lambda: _state(reg, "acme", "pump1") == "online", timeout=10)
        assert reg.of("other") == []
        (remote,) = reg.of("acme")
        assert remote.status()["uplink"]["remote"] and remote.status()["buffer"]["depth"] is not None
        await pump.stop()
        stopped = time.monotonic()
        await wait_for(lambda: _state(reg, "acme", "pump1") == "offline", timeout=10)
        assert time.monotonic() - stopped < 5
        # a gateway that goes silent is shown offline after three missed heartbeats
        await pump.start()
        await wait_for(lambda: _state(reg, "acme", "pump1") == "online", timeout=15)
        gateway.uplink.status_interval = 60.0  # type: ignore[union-attr]
        uplink_task = next(t for t in gateway._tasks if t.get_name() == "uplink")
        uplink_task.cancel()
        await wait_for(lambda: _state(reg, "acme", "pump1") == "offline", timeout=10)
    finally:
        await gateway.stop()
        await pump.stop()
        await reg.stop()
        await bus.close()
    assert reg.remote.rejected == 0


async def test_bad_status_messages_are_dropped_and_counted() -> None:
    bus = open_bus(f"memory://fleet-{uuid.uuid4().hex[:8]}")
    await bus.connect()
    fleet = RemoteGateways()
    await fleet.subscribe(bus)
    try:
        await bus.publish("gwstatus.acme.gw1", b"not json")
        await bus.publish(
            "gwstatus.acme.gw1", b'{"devices": {"p": {"state": "sleepy"}}, "interval": 1, "online": true}'
        )
        await wait_for(lambda: fleet.rejected == 2)
        assert fleet.of("acme") == []
    finally:
        await fleet.stop()
        await bus.close()


async def test_device_death_over_sparkplug(tmp_path: Path) -> None:
    require_service("mqtt")
    pump = PumpServer(port=free_port())
    await pump.start()
    group = f"t{uuid.uuid4().hex[:10]}"
    reg = GatewayRegistry()
    receiver = UplinkReceiver(
        ("127.0.0.1", 1883),
        group,
        lambda key, samples: None,
        host_id=f"host-{group}",
        fleet=reg.remote,
        tenant_id="acme",
    )
    rx = asyncio.create_task(receiver.run())
    await asyncio.wait_for(receiver.host.connected.wait(), 10)
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "b.db"}"\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\ngroup = "{group}"\n'
        f'primary_host = "host-{group}"\nconfirm = true\n\n' + _device(pump.port)
    )
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(lambda: _state(reg, "acme", "pump1") == "online", timeout=15)
        (remote,) = reg.of("acme")
        assert remote.name == f"{group}/gw1" and remote.status()["devices"]["pump1"]["protocol"] == "modbus"
        await pump.stop()
        stopped = time.monotonic()
        await wait_for(lambda: _state(reg, "acme", "pump1") == "offline", timeout=10)
        assert time.monotonic() - stopped < 5
        await pump.start()
        await wait_for(lambda: _state(reg, "acme", "pump1") == "online", timeout=15)
        await gateway.uplink.edge.close()  # type: ignore[union-attr]  # NDEATH: all its devices go offline
        await wait_for(lambda: _state(reg, "acme", "pump1") == "offline", timeout=10)
        assert not reg.of("acme")[0].status()["uplink"]["online"]
    finally:
        await gateway.stop()
        await pump.stop()
        rx.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rx
