"""OPC UA and MQTT decoding of real client/server traffic captured on loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from asyncua import Client, ua

from gongyun.security.ids.capture import read_capture, write_pcap
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.mqtt import MqttRecord
from gongyun.security.ids.opcua import OpcUaRecord
from gongyun.security.ids.stats import Stats
from gongyun.sim.cnc import CncServer
from gongyun.sim.range.attacks import _mqtt_packet, _mqtt_str, sparkplug_command
from tests.security.ids.loopback import capture_ports, free_port


async def _opcua_session(port: int) -> None:
    cnc = CncServer(port=port, hosts=("127.0.0.1",))
    await cnc.start()
    try:
        async with Client(cnc.url) as client:
            idx = await client.get_namespace_index("urn:gongyun:sim:cnc")
            node = client.get_node(f"ns={idx};s=CNC.SpindleSetpoint")
            await node.write_value(ua.DataValue(ua.Variant(4321.5, ua.VariantType.Double)))
            await client.get_node(f"ns={idx};s=CNC.SpindleSpeed").read_value()
        await asyncio.sleep(0.2)
    finally:
        await cnc.stop()


def test_opcua_session_write_and_identity(tmp_path: Path) -> None:
    port = free_port()
    with capture_ports({port}) as frames:
        asyncio.run(_opcua_session(port))
    write_pcap(tmp_path / "opcua.pcap", frames)
    stats = Stats()
    recs = [
        r
        for r in Decoder({port: "opcua"}, stats).frames(read_capture(tmp_path / "opcua.pcap", stats))
        if isinstance(r, OpcUaRecord)
    ]
    client = [r for r in recs if r.from_client]
    hello = next(r for r in client if r.msg_type == "HEL")
    assert hello.endpoint_url == f"opc.tcp://127.0.0.1:{port}/gongyun/cnc"
    opn = next(r for r in client if r.msg_type == "OPN")
    assert (opn.security_policy, opn.security_mode) == ("None", "None")
    create = next(r for r in client if r.service == "CreateSessionRequest")
    assert create.endpoint_url and create.session_name
    activate = next(r for r in client if r.service == "ActivateSessionRequest")
    assert activate.identity == "Anonymous"
    write = next(r for r in client if r.service == "WriteRequest")
    assert write.nodes and write.nodes[0].endswith("s=CNC.SpindleSetpoint")
    assert write.values == [4321.5]
    assert any(r.service == "ReadRequest" for r in client)
    assert any(r.service == "WriteResponse" for r in recs if not r.from_client)
    assert not stats.skips


def _broker() -> tuple[str, int] | None:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return "127.0.0.1", 1883
    except OSError:
        return None


def test_mqtt_connect_publish_and_sparkplug_command(tmp_path: Path) -> None:
    broker = _broker()
    if broker is None:
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    with capture_ports({1883}) as frames:
        s = socket.create_connection(broker, timeout=2)
        flags = 0x02 | 0x80 | 0x40  # clean session, user name, password
        body = _mqtt_str("MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + _mqtt_str("ids-test-hmi")
        s.sendall(_mqtt_packet(0x10, body + _mqtt_str("operator") + _mqtt_str("secret")))
        s.recv(4)
        s.sendall(_mqtt_packet(0x82, (1).to_bytes(2, "big") + _mqtt_str("spBv1.0/#") + b"\x00"))
        payload = sparkplug_command("Node Control/Reboot", 1.0)
        s.sendall(_mqtt_packet(0x30, _mqtt_str("spBv1.0/IdsTest/NCMD/Edge1") + payload))
        s.sendall(_mqtt_packet(0xE0, b""))
        s.close()
        import time

        time.sleep(0.3)
    write_pcap(tmp_path / "mqtt.pcap", frames)
    stats = Stats()
    recs = [
        r
        for r in Decoder({1883: "mqtt"}, stats).frames(read_capture(tmp_path / "mqtt.pcap", stats))
        if isinstance(r, MqttRecord) and r.client_id == "ids-test-hmi"
    ]
    connect = next(r for r in recs if r.msg_type == "CONNECT")
    assert connect.username == "operator" and connect.extra["password"] is True
    sub = next(r for r in recs if r.msg_type == "SUBSCRIBE")
    assert sub.topics == ["spBv1.0/#"]
    pub = next(r for r in recs if r.msg_type == "PUBLISH" and r.from_client)
    assert pub.topic == "spBv1.0/IdsTest/NCMD/Edge1"
    assert pub.sparkplug == {
        "group": "IdsTest",
        "type": "NCMD",
        "node": "Edge1",
        "device": None,
        "metrics": {"Node Control/Reboot": 1.0},
    }
    from gongyun.security.ids.detect import Detector
    from gongyun.security.ids.rules import starter_rules

    det = Detector(starter_rules())
    assert "3001" in {e.rule_id for r in recs for e in det.process(r)}  # Sparkplug reboot command
