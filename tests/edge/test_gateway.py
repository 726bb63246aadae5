"""The gateway end to end: simulators -> drivers -> durable buffer -> Sparkplug uplink -> platform host."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.config import load_config
from gongyun.edge.profiles import load_profile
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.sim.cnc import CncServer
from gongyun.sim.pump import PumpServer
from tests.edge.conftest import PROFILES, wait_for
from tests.edge.mqttbroker import Broker
from tests.services import IN_CI, require_service

OUTAGE_S = float(os.environ.get("GONGYUN_OUTAGE_S", "60" if IN_CI else "5"))
RATE = 1200  # samples per second offered to the gateway during the outage test


def edge_toml(tmp: Path, group: str, port: int, devices: str = "", *, confirm: bool = True) -> Path:
    path = tmp / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp / "buffer.db"}"\nstatus_interval = 0.5\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:{port}"\ngroup = "{group}"\n'
        f'primary_host = "host-{group}"\nconfirm = {str(confirm).lower()}\nbatch = 500\n\n{devices}'
    )
    return path


def check_exactly_once_in_order(got: list[Sample]) -> dict[TagRef, list[Sample]]:
    seqs = [s.seq for s in got]
    assert len(seqs) == len(set(seqs)), "a sample arrived twice"
    per_tag: dict[TagRef, list[Sample]] = defaultdict(list)
    for s in got:
        per_tag[s.tag].append(s)
    for samples in per_tag.values():
        assert [s.seq for s in samples] == sorted(s.seq for s in samples)  # type: ignore[type-var]
    return per_tag


@pytest.fixture
async def sims() -> AsyncIterator[tuple[PumpServer, CncServer]]:
    from tests.services import free_port

    pump, cnc = PumpServer(port=free_port()), CncServer(port=free_port())
    await pump.start()
    await cnc.start()
    try:
        yield pump, cnc
    finally:
        await pump.stop()
        await cnc.stop()


async def test_gateway_modbus_and_opcua_to_platform(
    tmp_path: Path, sims: tuple[PumpServer, CncServer]
) -> None:
    require_service("mqtt")
    pump, cnc = sims
    group = f"t{uuid.uuid4().hex[:10]}"
    devices = (
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n\n'
        f'[[devices]]\nname = "cnc1"\nprofile = "{PROFILES / "cnc.toml"}"\nurl = "{cnc.url}"\n'
        "subscription_interval = 0.1\n"
    )
    config, profiles = load_config(edge_toml(tmp_path, group, 1883, devices))
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", 1883), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-t",
        f"spBv1.0/{group}/NBIRTH/#",
        "-C",
        "1",
        "-W",
        "20",
        stdout=subprocess.PIPE,
    )
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(
            lambda: {s.tag.device for s in got} == {"pump1", "cnc1"} and len(got) > 100, timeout=20
        )
        per_tag = check_exactly_once_in_order(got)
        flow = per_tag[TagRef("pump1", "flow")]
        assert all(s.quality is Quality.good for s in flow) and 100 < float(flow[-1].value) < 140  # type: ignore[arg-type]
        assert per_tag[TagRef("cnc1", "state")][0].value == "RUNNING"
        status = gateway.status()
        assert status["devices"]["pump1"]["connected"] and status["devices"]["cnc1"]["connected"]
        assert status["uplink"]["online"] and status["uplink"]["host_online"]
        await wait_for(lambda: gateway.buffer.acked >= got[-1].seq - 600)  # type: ignore[operator]
        out, _ = await asyncio.wait_for(sub.communicate(), 20)
        assert out, "mosquitto_sub did not see the gateway's NBIRTH"
        await wait_for((tmp_path / "buffer.status.json").exists)
    finally:
        await gateway.stop()
        rx.cancel()
        if sub.returncode is None:
            sub.kill()
            await sub.wait()


async def generate(gateway: Gateway, seconds: float, rate: int, tags: int) -> int:
    """Offer ``rate`` samples/s to the gateway as a driver would: values count up per tag."""
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    while (elapsed := loop.time() - start) < seconds:
        due = int(elapsed * rate)
        now = datetime.now(UTC)
        batch = [
            Sample(TagRef("gen", f"t{(sent + i) % tags}"), (sent + i) // tags, now) for i in range(due - sent)
        ]
        gateway.emit(batch)
        sent = due
        await asyncio.sleep(0.01)
    return sent


@pytest.mark.slow
async def test_broker_outage_every_sample_exactly_once_in_order(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    group = f"t{uuid.uuid4().hex[:10]}"
    gen_profile = tmp_path / "gen.toml"
    gen_profile.write_text(
        '[profile]\nname = "gen"\nprotocol = "mqtt"\n'
        + "".join(f'[[tags]]\nname = "t{i}"\ntopic = "x"\ntype = "int64"\n' for i in range(12))
    )
    config, _ = load_config(edge_toml(tmp_path, group, broker.port))
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", broker.port), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    gateway = Gateway(config, {"gen": load_profile(gen_profile)})
    await gateway.start()
    try:
        await wait_for(lambda: gateway.status()["uplink"]["online"], timeout=15)
        gen = asyncio.create_task(generate(gateway, 2 + OUTAGE_S + 2, RATE, 12))
        await asyncio.sleep(2)
        broker.kill()
        await asyncio.sleep(OUTAGE_S)
        depth_during_outage = gateway.buffer.depth
        broker.start()
        sent = await gen
        gateway.flush()
        await wait_for(lambda: len(got) >= sent, timeout=60 + OUTAGE_S)
        await asyncio.sleep(0.5)
        assert len(got) == sent
        per_tag = check_exactly_once_in_order(got)
        for tag, samples in per_tag.items():
            assert [s.value for s in samples] == list(range(len(samples))), f"{tag} lost or reordered values"
        assert depth_during_outage >= RATE * OUTAGE_S * 0.8  # the outage really was buffered
        await wait_for(lambda: gateway.buffer.depth == 0, timeout=10)
        print(
            f"outage {OUTAGE_S:.0f}s at {RATE}/s: {sent} samples, "
            f"{receiver.duplicates} duplicates dropped by seq"
        )
    finally:
        await gateway.stop()
        rx.cancel()
        broker.kill()


def gateway_process(config: Path) -> subprocess.Popen[bytes]:
    code = "from gongyun.cli.edge import app; app()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--config", str(config), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_gateway_kill_9_loses_no_buffered_sample(
    tmp_path: Path, sims: tuple[PumpServer, CncServer]
) -> None:
    require_service("mqtt")
    pump, _ = sims
    group = f"t{uuid.uuid4().hex[:10]}"
    devices = f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    config = edge_toml(tmp_path, group, 1883, devices)
    db = tmp_path / "buffer.db"

    def committed() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            try:
                return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM samples").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    proc = gateway_process(config)  # no host is online: everything stays in the buffer
    try:
        await wait_for(lambda: committed() >= 300, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before_kill = committed()
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", 1883), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    proc = gateway_process(config)
    try:
        await wait_for(lambda: any(s.seq > before_kill for s in got), timeout=30)  # type: ignore[operator]
        check_exactly_once_in_order(got)
        seqs = {s.seq for s in got}
        assert set(range(1, before_kill + 1)) <= seqs, "samples buffered before kill -9 were lost"
        proc.terminate()  # SIGTERM: a clean stop (flush, NDEATH) with exit status 0
        assert proc.wait(15) == 0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rx.cancel()


@pytest.mark.parametrize("backend", ["memory", "nats"])
async def test_gateway_over_the_bus(tmp_path: Path, pump: PumpServer, backend: str) -> None:
    from gongyun.bus import Message, open_bus
    from gongyun.telemetry.consumer import decode_json

    if backend == "nats":
        require_service("nats")
        url = "nats://127.0.0.1:4222"
    else:
        url = f"memory://edge-{uuid.uuid4().hex[:8]}"
    prefix = f"edgetest{uuid.uuid4().hex[:10]}"
    bus = open_bus(url, namespace=prefix)  # the gateway's deployment_id below
    await bus.connect()
    stream = prefix.upper()
    await bus.ensure_stream(stream, [f"{prefix}.>"])
    got: list[Sample] = []
    tenants: set[str] = set()

    async def handler(msg: Message) -> None:
        tenant, samples = decode_json(msg.subject, msg.data)
        tenants.add(tenant)
        got.extend(samples)
        await msg.ack()

    sub = await bus.subscribe(f"{prefix}.>", durable="edge", handler=handler)
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "b.db"}"\n\n'
        f'[uplink]\nkind = "bus"\nurl = "{url}"\nsubject = "{prefix}"\ntenant = "acme"\n'
        f'deployment_id = "{prefix}"\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    )
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles, bus=bus if backend == "memory" else None)
    await gateway.start()
    try:
        await wait_for(lambda: len(got) > 50, timeout=20)
        assert tenants == {"acme"}
        check_exactly_once_in_order(got)
        assert {s.tag for s in got} >= {TagRef("pump1", "flow"), TagRef("pump1", "serial")}
        await wait_for(lambda: gateway.buffer.depth < 100)
        assert gateway.status()["uplink"]["online"]
    finally:
        await gateway.stop()
        await sub.close()
        await bus.delete_stream(stream)
        await bus.close()


async def test_gateway_against_the_whole_virtual_factory(tmp_path: Path) -> None:
    require_service("mqtt")
    from gongyun.sim.factory import Factory, FactoryConfig, edge_config
    from tests.services import free_port

    fc = FactoryConfig(modbus_port=free_port(), opcua_port=free_port(), group=f"t{uuid.uuid4().hex[:10]}")
    factory = Factory(fc)
    await factory.start()
    path = tmp_path / "edge.toml"
    path.write_text(edge_config(fc, tmp_path / "b.db"))
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(
            lambda: all(d.status.connected and d.status.samples > 0 for d in gateway.drivers.values()),
            timeout=20,
        )
        assert set(gateway.drivers) == {"pump-1", "cnc-1", "packline-1"}
        assert gateway.status()["uplink"] == {"kind": "none"}
    finally:
        await gateway.stop()
        await factory.stop()


async def test_remote_command_through_the_uplink(tmp_path: Path, pump: PumpServer) -> None:
    require_service("mqtt")
    group = f"t{uuid.uuid4().hex[:10]}"
    devices = (
        '[commands]\ntenant = "acme"\n\n'
        + f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    )
    config, profiles = load_config(edge_toml(tmp_path, group, 1883, devices))
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", 1883), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(lambda: any(s.tag.tag == "speed_setpoint" for s in got), timeout=20)
        who = {"requested_by": "alice", "role": "operator", "tenant": "acme", "reason": "slow down"}
        result = await receiver.command(f"{group}/gw1", "pump1", "speed_setpoint", 900, who)
        assert result["status"] == "confirmed" and result["read_back"] == 900
        assert result["requested_by"] == "alice" and result["tenant_id"] == "acme"
        assert pump.model.speed_setpoint == 900
        await wait_for(lambda: any(s.tag.tag == "speed_setpoint" and s.value == 900 for s in got))
        refused = await receiver.command(f"{group}/gw1", "pump1", "speed_setpoint", 5000, who)
        assert refused["status"] == "refused" and "above the maximum" in refused["detail"]
        assert refused["code"] == "command_refused"
        viewer = await receiver.command(
            f"{group}/gw1", "pump1", "speed_setpoint", 1000, {**who, "role": "viewer"}
        )
        assert viewer["status"] == "refused" and "may not command" in viewer["detail"]
        unknown = await receiver.command(f"{group}/gw1", "pump9", "speed_setpoint", 1000, who)
        assert unknown["code"] == "not_found"
        journal = (tmp_path / "buffer.commands.jsonl").read_text().splitlines()
        assert (
            len(journal) == 3
        )  # confirmed, refused (limits), refused (role); unknown device is not a command
    finally:
        await gateway.stop()
        rx.cancel()


async def test_uplink_honours_primary_host_state(tmp_path: Path, pump: PumpServer) -> None:
    require_service("mqtt")
    import aiomqtt

    group = f"t{uuid.uuid4().hex[:10]}"
    devices = f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    config, profiles = load_config(edge_toml(tmp_path, group, 1883, devices, confirm=False))
    gateway = Gateway(config, profiles)
    await gateway.start()
    state_topic = f"spBv1.0/STATE/host-{group}"
    try:
        await wait_for(lambda: gateway.buffer.depth > 30)
        assert gateway.status()["uplink"]["online"] is False and gateway.buffer.acked == 0  # host never seen
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(
                state_topic, json.dumps({"online": True, "timestamp": 1}), qos=1, retain=True
            )
            await wait_for(lambda: gateway.buffer.acked > 30)  # the backlog goes out once the host is online
            await client.publish(
                state_topic, json.dumps({"online": False, "timestamp": 2}), qos=1, retain=True
            )
            await wait_for(lambda: not gateway.status()["uplink"]["online"])
            acked = gateway.buffer.acked
            await asyncio.sleep(0.6)
            assert gateway.buffer.acked == acked  # paused while the host is offline
            await client.publish(state_topic, b"", qos=1, retain=True)  # clear the retained STATE
    finally:
        await gateway.stop()


async def test_gateway_keeps_running_when_a_device_misbehaves(
    tmp_path: Path, sims: tuple[PumpServer, CncServer]
) -> None:
    pump, cnc = sims
    devices = (
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
        "timeout = 0.3\nretries = 0\nreconnect_delay = 0.1\nreconnect_max = 0.5\n\n"
        f'[[devices]]\nname = "cnc1"\nprofile = "{PROFILES / "cnc.toml"}"\nurl = "{cnc.url}"\n'
    )
    path = tmp_path / "edge.toml"
    path.write_text(f'[gateway]\nbuffer = "{tmp_path / "b.db"}"\n[uplink]\nkind = "none"\n\n{devices}')
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(lambda: all(d.status.samples > 0 for d in gateway.drivers.values()))
        for mode in ("garbage", "exception", "silent"):
            pump.mode = mode
            errors = gateway.drivers["pump1"].status.error_count
            cnc_samples = gateway.drivers["cnc1"].status.samples
            await wait_for(lambda e=errors: gateway.drivers["pump1"].status.error_count > e + 1, timeout=15)
            await wait_for(lambda c=cnc_samples: gateway.drivers["cnc1"].status.samples > c)
        pump.mode = "normal"
        reads = gateway.drivers["pump1"].status.reads
        await wait_for(lambda: gateway.drivers["pump1"].status.reads > reads, timeout=15)
        status = gateway.status()
        assert set(status["devices"]["pump1"]["errors"]) >= {"io", "exception"}
        assert status["crashes"] == {}
        rows = gateway.buffer.read(0, 100_000)
        assert any(s.tag.device == "pump1" and s.quality is Quality.bad for s in rows)
    finally:
        await gateway.stop()


async def test_gateway_with_secure_opcua(tmp_path: Path) -> None:
    from gongyun.edge.certs import make_app_cert
    from gongyun.sim.cnc import APP_URI
    from tests.services import free_port

    server_cert, server_key = make_app_cert(tmp_path / "pki", "server", APP_URI)
    make_app_cert(tmp_path / "pki", "gateway", "urn:gongyun:edge:gw1")
    cnc = CncServer(port=free_port(), cert=server_cert, key=server_key, users={"edge": "pw"})
    await cnc.start()
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nbuffer = "b.db"\n[uplink]\nkind = "none"\n\n[[devices]]\nname = "cnc1"\n'
        f'profile = "{PROFILES / "cnc.toml"}"\nurl = "{cnc.url}"\nsecurity = "Basic256Sha256"\n'
        'certificate = "pki/gateway.der"\nprivate_key = "pki/gateway.pem"\n'
        'server_certificate = "pki/server.der"\n'
        'username = "edge"\npassword = "pw"\n'
    )
    config, profiles = load_config(path)
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(lambda: gateway.buffer.depth > 10, timeout=20)
        assert gateway.status()["devices"]["cnc1"]["connected"]
    finally:
        await gateway.stop()
        await cnc.stop()
