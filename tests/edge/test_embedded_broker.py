"""The embedded MQTT broker (amqtt): Sparkplug node -> broker -> host, wills, retained, login, policy."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from gongyun.config import load_settings
from gongyun.core.types import Quality, Sample, TagRef
from gongyun.edge.broker import EmbeddedBroker, broker_answers, start_embedded_broker
from gongyun.edge.config import DeviceConfig, load_config
from gongyun.edge.drivers.sparkplug import SparkplugDriver
from gongyun.edge.profiles import load_profile
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.runtime import Gateway
from gongyun.errors import ConfigError
from gongyun.platform import start_platform
from gongyun.sim.packaging import PackagingServer
from gongyun.sim.pump import PumpServer
from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.topics import NAMESPACE
from tests.edge.conftest import PROFILES, wait_for
from tests.services import free_port, require_service

NODE_SCRIPT = """
import asyncio, sys
from gongyun.sim.packaging import PackagingServer

async def main() -> None:
    sim = PackagingServer(mqtt_port=int(sys.argv[1]), group=sys.argv[2], interval=0.1, time_scale=20)
    await sim.start()
    print("online", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    b = EmbeddedBroker("127.0.0.1", free_port())
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def host_driver(port: int, group: str, got: list[Sample]) -> SparkplugDriver:
    cfg = DeviceConfig(
        name="pack1",
        profile=Path("p"),
        broker=f"127.0.0.1:{port}",
        group=group,
        node="PackLine1",
        sparkplug_device="Filler",
        host_id=f"host-{group}",
        reconnect_delay=0.2,
    )
    drv = SparkplugDriver(cfg, load_profile(PROFILES / "packaging.toml"), got.extend)
    drv.host.rebirth_holdoff = 0.0
    return drv


async def test_sparkplug_line_through_embedded_broker(broker: EmbeddedBroker) -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    got: list[Sample] = []
    drv = host_driver(broker.port, group, got)
    task = asyncio.create_task(drv.run())
    await asyncio.wait_for(drv.host.connected.wait(), 10)
    sim = PackagingServer(mqtt_port=broker.port, group=group, interval=0.1, time_scale=20)
    await sim.start()
    try:
        await wait_for(lambda: sum(1 for s in got if s.tag.tag == "count") >= 3)
        counts = [s.value for s in got if s.tag.tag == "count"]
        assert counts == sorted(counts) and counts[-1] > 0  # type: ignore[type-var]
        assert next(s.value for s in got if s.tag.tag == "state") == "RUNNING"
        assert drv.host.nodes[f"{group}/PackLine1"].online and drv.status.error_count == 0
        await drv.write(drv.profile.tag("speed"), 240.0)  # NCMD/DCMD back through the broker
        await wait_for(lambda: sim.model.rate_per_min == 240.0)
    finally:
        await sim.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_gateway_uplink_to_receiver_through_embedded_broker(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    pump = PumpServer(port=free_port())
    await pump.start()
    (tmp_path / "edge.toml").write_text(
        f'[gateway]\nid = "gw1"\nbuffer = "{tmp_path / "buffer.db"}"\n\n'
        f'[uplink]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:{broker.port}"\ngroup = "{group}"\n'
        f'primary_host = "host-{group}"\n\n'
        f'[[devices]]\nname = "pump1"\nprofile = "{PROFILES / "pump.toml"}"\nport = {pump.port}\n'
    )
    config, profiles = load_config(tmp_path / "edge.toml")
    got: list[Sample] = []
    receiver = UplinkReceiver(
        ("127.0.0.1", broker.port), group, lambda key, s: got.extend(s), host_id=f"host-{group}"
    )
    rx = asyncio.create_task(receiver.run())
    gateway = Gateway(config, profiles)
    await gateway.start()
    try:
        await wait_for(lambda: sum(1 for s in got if s.tag == TagRef("pump1", "flow")) >= 5, timeout=20)
        seqs = [s.seq for s in got]
        assert len(seqs) == len(set(seqs)) and receiver.duplicates == 0
        assert gateway.status()["uplink"]["host_online"]
        await wait_for(lambda: gateway.buffer.acked > 0)  # confirmed by the receiver (confirm is the default)
    finally:
        await gateway.stop()
        rx.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rx
        await pump.stop()


async def test_ndeath_will_delivered_when_node_is_killed(broker: EmbeddedBroker) -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    got: list[Sample] = []
    drv = host_driver(broker.port, group, got)
    task = asyncio.create_task(drv.run())
    await asyncio.wait_for(drv.host.connected.wait(), 10)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_SCRIPT, str(broker.port), group, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
            await watcher.subscribe(f"{NAMESPACE}/{group}/NDEATH/#", qos=1)
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"online"
            await wait_for(lambda: sum(1 for s in got if s.tag.tag == "count") >= 3)
            proc.send_signal(signal.SIGKILL)  # no clean disconnect: only the will can tell
            await proc.wait()
            message = await asyncio.wait_for(anext(aiter(watcher.messages)), 10)
        assert str(message.topic) == f"{NAMESPACE}/{group}/NDEATH/PackLine1"
        assert isinstance(message.payload, bytes)
        bdseq = [m for m in spb.parse(message.payload).metrics if m.name == "bdSeq"]
        assert bdseq and spb.metric_value(bdseq[0]) == 0
        await wait_for(lambda: not drv.status.connected)
        assert not drv.host.nodes[f"{group}/PackLine1"].online
        assert {s.quality for s in got[-5:]} == {Quality.bad}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_retained_message_reaches_a_later_subscriber(broker: EmbeddedBroker) -> None:
    topic = f"t/{uuid.uuid4().hex[:10]}/state"
    async with aiomqtt.Client("127.0.0.1", broker.port) as pub:
        await pub.publish(topic, b"ONLINE", qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
        await sub.subscribe(topic, qos=1)
        message = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
    assert message.payload == b"ONLINE" and message.retain


async def test_login_required_when_configured(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-broker-pw"
    b = EmbeddedBroker("127.0.0.1", free_port(), username="plant", password=SecretStr(secret))
    await b.start()
    try:
        for username, password in ((None, None), ("plant", "wrong"), ("other", secret)):
            with pytest.raises(aiomqtt.MqttCodeError):
                async with aiomqtt.Client("127.0.0.1", b.port, username=username, password=password):
                    pass
        async with aiomqtt.Client("127.0.0.1", b.port, username="plant", password=secret) as ok:
            await ok.subscribe("x/#")
            await ok.publish("x/y", b"1", qos=1)
            message = await asyncio.wait_for(anext(aiter(ok.messages)), 10)
        assert message.payload == b"1"
    finally:
        await b.stop()
    assert secret not in caplog.text and secret not in repr(b._config())
    with pytest.raises(ConfigError):
        EmbeddedBroker("127.0.0.1", 1, username="plant")


async def test_auto_leaves_a_running_mosquitto_alone() -> None:
    require_service("mqtt")
    settings = load_settings(mqtt_url="mqtt://127.0.0.1:1883")
    assert await start_embedded_broker(settings) is None
    with pytest.raises(ConfigError, match="cannot start the embedded MQTT broker"):
        await start_embedded_broker(load_settings(mqtt_url="mqtt://127.0.0.1:1883", mqtt_embedded="on"))


async def test_policy_auto_off_and_server_profile() -> None:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    assert await start_embedded_broker(load_settings(mqtt_url=url, mqtt_embedded="off")) is None
    assert await start_embedded_broker(load_settings(mqtt_url="mqtt://mqtt.example:1883")) is None
    server = load_settings(
        profile="server",
        database_url="postgresql+psycopg://x@127.0.0.1/x",
        bus_url="nats://127.0.0.1:4222",
        secret_key="k" * 32,
        mqtt_url=url,
    )
    assert await start_embedded_broker(server) is None
    assert not broker_answers("127.0.0.1", port)
    with pytest.raises(ConfigError, match="server profile"):
        load_settings(**{**server.model_dump(), "mqtt_embedded": "on"})
    with pytest.raises(ConfigError, match="go together"):
        load_settings(mqtt_username="plant")
    started = await start_embedded_broker(load_settings(mqtt_url=url))
    assert started is not None and started.address == ("127.0.0.1", port)
    try:
        assert broker_answers("127.0.0.1", port)
    finally:
        await started.stop()
    assert not broker_answers("127.0.0.1", port)


async def test_auto_gives_way_when_the_port_is_taken_but_silent() -> None:
    port = free_port()
    with socket.socket() as squatter:  # bound, not listening: refuses connections, holds the port
        squatter.bind(("127.0.0.1", port))
        url = f"mqtt://127.0.0.1:{port}"
        assert await start_embedded_broker(load_settings(mqtt_url=url)) is None
        with pytest.raises(ConfigError, match="cannot start the embedded MQTT broker"):
            await start_embedded_broker(load_settings(mqtt_url=url, mqtt_embedded="on"))


async def test_runtime_owns_the_broker(tmp_path: Path) -> None:
    from tests.apphelp import make_settings

    port = free_port()
    settings = make_settings(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{port}")
    runtime = await start_platform(settings, services=False)
    try:
        assert isinstance(runtime.broker, EmbeddedBroker)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.publish("a/b", b"1")
    finally:
        await runtime.close()
    assert not broker_answers("127.0.0.1", port)


async def test_only_the_platform_identity_publishes_commands() -> None:
    group = f"t{uuid.uuid4().hex[:10]}"
    b = EmbeddedBroker("127.0.0.1", free_port(), command_publishers=[])  # nobody is the platform
    await b.start()
    try:
        async with aiomqtt.Client("127.0.0.1", b.port) as sub, aiomqtt.Client("127.0.0.1", b.port) as pub:
            await sub.subscribe(f"{NAMESPACE}/{group}/#", qos=1)
            await sub.subscribe(f"{NAMESPACE}/STATE/#", qos=1)
            for kind in ("NCMD/gw1", "DCMD/gw1/dev"):
                await pub.publish(f"{NAMESPACE}/{group}/{kind}", b"x", qos=1)
            await pub.publish(f"{NAMESPACE}/STATE/host-{group}", b"ONLINE", qos=1)
            await pub.publish(f"{NAMESPACE}/{group}/NDATA/gw1", b"data", qos=1)
            message = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
            assert str(message.topic) == f"{NAMESPACE}/{group}/NDATA/gw1"  # commands were dropped
        will = aiomqtt.Will(f"{NAMESPACE}/{group}/NCMD/gw1", b"x")  # wills skip topic checks
        with pytest.raises(aiomqtt.MqttCodeError):
            async with aiomqtt.Client("127.0.0.1", b.port, will=will):
                pass
    finally:
        await b.stop()
    platform = EmbeddedBroker("127.0.0.1", 1, username="plant", password=SecretStr("pw-pw-pw-pw"))
    guards = [v for k, v in platform._config()["plugins"].items() if "Command" in k]
    assert guards == [{"command_publishers": ["plant"]}] * 2
    assert EmbeddedBroker("127.0.0.1", 1).command_publishers == ["anonymous"]


def test_embedded_broker_on_a_network_address_needs_a_login() -> None:
    for url in ("mqtt://0.0.0.0:1883", "mqtt://192.0.2.7:1883", "mqtt://plant-gw:1883"):
        with pytest.raises(ConfigError, match="anonymous MQTT broker reachable"):
            load_settings(mqtt_url=url, mqtt_embedded="on")
        ok = load_settings(mqtt_url=url, mqtt_embedded="on", mqtt_username="plant", mqtt_password="pw")
        assert ok.mqtt_username == "plant"
        assert load_settings(mqtt_url=url).mqtt_embedded == "auto"  # auto never starts off loopback
    for url in ("mqtt://127.0.0.1:1883", "mqtt://localhost:1883", "mqtt://[::1]:1883"):
        assert load_settings(mqtt_url=url, mqtt_embedded="on").mqtt_embedded == "on"


async def test_only_the_platform_confirms_deliveries() -> None:
    """A forged ``{"seq": 1e12}`` would make a gateway drop what the platform has not stored."""
    group = f"t{uuid.uuid4().hex[:10]}"
    confirm = f"gongyun/confirm/{group}/gw1"
    guarded = EmbeddedBroker("127.0.0.1", free_port(), command_publishers=[])  # nobody is the platform
    platform = EmbeddedBroker("127.0.0.1", free_port())  # anonymous local clients are the platform
    await guarded.start()
    await platform.start()
    try:
        for b, delivered in ((guarded, False), (platform, True)):
            async with (
                aiomqtt.Client("127.0.0.1", b.port) as sub,
                aiomqtt.Client("127.0.0.1", b.port) as pub,
            ):
                await sub.subscribe("gongyun/#", qos=1)
                await pub.publish(confirm, b'{"seq": 1000000000000}', qos=1)
                await pub.publish(f"gongyun/other/{group}", b"marker", qos=1)
                message = await asyncio.wait_for(anext(aiter(sub.messages)), 10)
                assert (str(message.topic) == confirm) is delivered, b.command_publishers
        will = aiomqtt.Will(confirm, b'{"seq": 1000000000000}')  # wills skip topic checks
        with pytest.raises(aiomqtt.MqttCodeError):
            async with aiomqtt.Client("127.0.0.1", guarded.port, will=will):
                pass
    finally:
        await guarded.stop()
        await platform.stop()
