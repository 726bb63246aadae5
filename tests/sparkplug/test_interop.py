"""What our Sparkplug B edge nodes publish, read back by an independent implementation.

The simulated packaging line and the gateway's Sparkplug uplink publish to the real Mosquitto on
127.0.0.1:1883; a subscriber at QoS 2 (so each message arrives at the QoS it was published with)
records every message of a fresh group, and pysparkplug (PyPI; its own protoc-generated
``sparkplug_b.proto`` of Eclipse Tahu, nothing shared with ``gongyun.sparkplug``) decodes them.
pysparkplug's high-level decoder does not handle Template and DataSet metrics: those are read from
its Tahu ``Payload`` message directly, the rest through ``NBirth``/``DBirth``/``NData``/``DData``.

Checked against Sparkplug 3.0: the topic namespace, the QoS and retain flag of each message type,
``seq`` starting at 0 in NBIRTH and counting modulo 256, ``bdSeq`` of NBIRTH equal to that of the
NDEATH will registered for the session, names and datatypes (and unique aliases) in births and
aliases only in data, births before data, complete Template instances in births, and the host's
STATE (the platform's receiver) retained at QoS 1 with an offline will.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gongyun.core.types import Sample, TagRef
from gongyun.edge.buffer import Buffer
from gongyun.edge.codec import DataType
from gongyun.edge.receiver import UplinkReceiver
from gongyun.edge.uplink import SparkplugUplink, spb_type
from gongyun.sim.packaging import PackagingServer
from tests.services import MQTT_HOST, MQTT_PORT, require_service

if os.environ.get("CI") == "true":
    import pysparkplug as psp
else:  # a venv built before the independent decoder was added: `make .venv/.installed-dev`
    psp = pytest.importorskip("pysparkplug")
from pysparkplug import _protobuf as tahu  # Tahu's Payload as pysparkplug compiled it

BIRTHS = {"NBIRTH", "DBIRTH"}
QOS = {"NBIRTH": 0, "DBIRTH": 0, "NDATA": 0, "DDATA": 0, "DDEATH": 0, "NDEATH": 1}
HIGH_LEVEL = {"NBIRTH": psp.NBirth, "DBIRTH": psp.DBirth, "NDATA": psp.NData, "DDATA": psp.DData}
UNSUPPORTED = {16, 19}  # DataSet, Template: pysparkplug raises NotImplementedError on them


@dataclass
class Seen:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@contextlib.asynccontextmanager
async def recording(group: str) -> AsyncIterator[list[Seen]]:
    """Every message of ``spBv1.0/<group>/#`` while the block runs (subscribed before it starts)."""
    seen: list[Seen] = []
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"interop-{group}") as client:
        await client.subscribe(f"spBv1.0/{group}/#", qos=2)

        async def read() -> None:
            async for m in client.messages:
                raw = m.payload if isinstance(m.payload, bytes) else b""
                seen.append(Seen(str(m.topic), raw, m.qos, bool(m.retain)))

        task = asyncio.create_task(read())
        try:
            yield seen
            await asyncio.sleep(0.5)  # the last messages in flight
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``cond()`` holds."""
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


def drop_connection(client: aiomqtt.Client | None) -> None:
    """End an MQTT connection without DISCONNECT, so that the broker publishes its will."""
    assert client is not None
    sock = client._client.socket()  # aiomqtt has no public way to lose a connection uncleanly
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)


def high_level(kind: str, raw: bytes, birth: Any = None) -> Any:
    """pysparkplug's decoding, with the Template and DataSet metrics it cannot read taken out."""
    msg = tahu.Payload.FromString(raw)
    kept = [m for m in msg.metrics if m.datatype not in UNSUPPORTED]
    del msg.metrics[:]
    msg.metrics.extend(kept)
    return HIGH_LEVEL[kind].decode(msg.SerializeToString(), birth=birth)


def bdseq(msg: Any) -> int:
    """The bdSeq metric of an NBIRTH or NDEATH (Tahu Payload)."""
    values = [m.long_value for m in msg.metrics if m.name == "bdSeq"]
    assert len(values) == 1, "exactly one bdSeq metric"
    return int(values[0])


def check_template_instances(metric: Any, definitions: dict[str, Any], where: str) -> int:
    """Every Template instance in a birth metric (nested ones too) carries every member of its
    definition; returns how many instances were checked."""
    tpl = metric.template_value
    ref = tpl.template_ref
    assert ref in definitions, f"{where}: instance of undefined template {ref!r}"
    have = {m.name for m in tpl.metrics}
    want = {m.name for m in definitions[ref].metrics}
    assert want <= have, f"{where}: Template instance {metric.name!r} misses {sorted(want - have)}"
    nested = [m for m in tpl.metrics if m.WhichOneof("value") == "template_value"]
    return 1 + sum(check_template_instances(m, definitions, where) for m in nested)


@dataclass
class Report:
    """What the check saw, for assertions about coverage."""

    kinds: dict[str, int]
    seq_wraps: int
    wills: int
    template_instances: int
    aliased_data_metrics: int


def check_conformance(seen: list[Seen], group: str, node: str) -> Report:
    """Assert the Sparkplug 3.0 rules over everything one edge node published, in arrival order."""
    kinds: dict[str, int] = {}
    births: dict[str | None, Any] = {}  # high-level NBirth (None) / DBirth (device) of this session
    aliases: dict[int, tuple[str | None, str]] = {}
    definitions: dict[str, Any] = {}
    born = False
    last_seq: int | None = None
    session_bdseq: int | None = None
    wraps = wills = instances = aliased = 0
    for m in seen:
        parts = m.topic.split("/")
        assert parts[0] == "spBv1.0" and parts[1] == group, m.topic
        topic = psp.Topic.from_str(m.topic)  # the independent parser accepts it
        kind = str(topic.message_type)
        assert parts[3] == node and topic.edge_node_id == node, m.topic
        if kind.startswith("D"):
            assert len(parts) == 5 and parts[4], f"{kind} needs a device: {m.topic}"
        else:
            assert len(parts) == 4, f"{kind} has no device: {m.topic}"
        assert kind in QOS, f"unexpected message type {kind}"
        assert m.qos == QOS[kind], f"{kind} published at QoS {m.qos}, Sparkplug 3.0 says {QOS[kind]}"
        assert not m.retain, f"{kind} must not be retained"
        kinds[kind] = kinds.get(kind, 0) + 1
        msg = tahu.Payload.FromString(m.payload)
        device = parts[4] if len(parts) == 5 else None
        if kind == "NDEATH":
            wills += 1
            assert not msg.HasField("seq"), "NDEATH carries no seq"
            assert session_bdseq is not None and bdseq(msg) == session_bdseq, (
                f"NDEATH bdSeq {bdseq(msg)} is not the NBIRTH's {session_bdseq}"
            )
            born, births, last_seq = False, {}, None
            continue
        assert msg.HasField("seq") and 0 <= msg.seq <= 255, f"{kind} seq {msg.seq}"
        if kind == "NBIRTH":
            assert msg.seq == 0, "NBIRTH starts the sequence at 0"
            session_bdseq, born, births, aliases = bdseq(msg), True, {}, {}
            definitions = {
                x.name: x.template_value
                for x in msg.metrics
                if x.WhichOneof("value") == "template_value" and x.template_value.is_definition
            }
        else:
            assert born, f"{kind} before NBIRTH"
            assert last_seq is not None and msg.seq == (last_seq + 1) % 256, (
                f"{kind} seq {msg.seq} after {last_seq}"
            )
            wraps += msg.seq == 0
        last_seq = msg.seq
        if kind == "DDEATH":
            births.pop(device, None)
            continue
        if kind in BIRTHS:
            for x in msg.metrics:
                assert x.name and x.datatype, f"{kind}: every birth metric has a name and a datatype"
                if x.HasField("alias"):
                    assert aliases.setdefault(x.alias, (device, x.name)) == (device, x.name), (
                        f"alias {x.alias} used for two metrics of the node"
                    )
                if x.WhichOneof("value") == "template_value" and not x.template_value.is_definition:
                    instances += check_template_instances(x, definitions, f"{kind} {m.topic}")
            births[device] = high_level(kind, m.payload)
            continue
        assert device in births, f"{kind} on {m.topic} before its birth"
        for x in msg.metrics:
            assert x.HasField("alias") and not x.name, f"{kind}: data metrics carry their alias only"
            assert aliases.get(x.alias, (None, ""))[0] == device, f"{kind}: alias {x.alias} not born here"
            aliased += 1
        decoded = high_level(kind, m.payload, births[device])
        assert all(met.name for met in decoded.metrics), "pysparkplug resolved every alias"
    return Report(kinds, wraps, wills, instances, aliased)


async def test_packaging_line_speaks_sparkplug_3(tmp_path: Path) -> None:
    """The simulated packaging line: births with a complete Recipe instance, DDATA at QoS 0 with
    aliases, and after a lost connection the NDEATH will and a new session with the next bdSeq."""
    require_service("mqtt")
    group = f"interop{uuid.uuid4().hex[:10]}"
    line = PackagingServer(MQTT_HOST, MQTT_PORT, group=group, time_scale=120.0, interval=0.05)
    async with recording(group) as seen:
        await line.start()
        try:
            await until(lambda: line.published >= 20)
            births = line.edge.births
            drop_connection(line.edge.client)
            await until(lambda: line.edge.births > births and line.edge.online.is_set())
            published = line.published
            await until(lambda: line.published >= published + 5)
        finally:
            await line.stop()
    report = check_conformance(seen, group, line.node)
    assert report.kinds.get("NBIRTH") == 2 and report.kinds.get("DBIRTH") == 2
    assert report.kinds.get("NDEATH") == 2  # the will of the lost session, then the clean one
    assert report.kinds.get("DDATA", 0) >= 20 and report.template_instances == 2


async def test_gateway_uplink_speaks_sparkplug_3(tmp_path: Path) -> None:
    """The gateway's Sparkplug uplink: NDATA per batch past a seq wrap, a device's DBIRTH, DDATA and
    DDEATH, and the NDEATH will of a lost session."""
    require_service("mqtt")
    group = f"interop{uuid.uuid4().hex[:10]}"
    buffer = Buffer(tmp_path / "buffer.db")
    now = datetime.now(UTC)
    buffer.append([Sample(TagRef("pump1", "flow"), float(i), now) for i in range(300)])
    device = {"state": "online", "last_error": None}
    uplink = SparkplugUplink(
        buffer,
        (MQTT_HOST, MQTT_PORT),
        group,
        "gw1",
        {"pump1/flow": spb_type(DataType.float64, scaled=False)},
        confirm=False,
        batch=1,
        status_source=lambda: {"devices": {"pump1": dict(device)}},
        devices={"pump1": "modbus"},
    )
    async with recording(group) as seen:
        task = asyncio.create_task(uplink.run())
        try:
            await until(lambda: buffer.acked == 300)
            await until(lambda: uplink.announced["pump1"][0] == "online")
            device["last_error"] = "timeout"  # a DDATA of the device's state
            await until(lambda: uplink.announced["pump1"] == ("online", "timeout"))
            device["state"] = "offline"  # DDEATH
            await until(lambda: uplink.announced["pump1"][0] == "offline")
            births = uplink.edge.births
            drop_connection(uplink.edge.client)
            await until(lambda: uplink.edge.births > births and uplink.edge.online.is_set())
            await uplink.edge.close()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            buffer.close()
    report = check_conformance(seen, group, "gw1")
    assert report.kinds.get("NDATA", 0) >= 300 and report.seq_wraps >= 1
    assert report.kinds.get("DBIRTH", 0) >= 1 and report.kinds.get("DDATA", 0) >= 1
    assert report.kinds.get("DDEATH", 0) >= 1 and report.wills >= 1
    assert report.aliased_data_metrics >= 300


async def test_host_state_is_retained_at_qos_1() -> None:
    """The platform's host application (the Sparkplug receiver) announces STATE as Sparkplug 3.0
    wants: JSON ``{"online", "timestamp"}``, retained, QoS 1, and its will says offline."""
    require_service("mqtt")
    host_id = f"interop-host-{uuid.uuid4().hex[:10]}"
    topic = f"spBv1.0/STATE/{host_id}"
    receiver = UplinkReceiver(
        (MQTT_HOST, MQTT_PORT), f"interop{uuid.uuid4().hex[:10]}", None, host_id=host_id
    )
    task = asyncio.create_task(receiver.run())
    try:
        await asyncio.wait_for(receiver.host.connected.wait(), 10)
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as sub:
            await sub.subscribe(topic, qos=2)
            messages = aiter(sub.messages)
            first = await asyncio.wait_for(anext(messages), 10)  # the retained announcement
            raw = first.payload if isinstance(first.payload, bytes) else b""
            assert first.retain and first.qos == 1 and psp.State.decode(raw).online
            drop_connection(receiver.host.client)
            will = await asyncio.wait_for(anext(messages), 10)
            raw = will.payload if isinstance(will.payload, bytes) else b""
            assert will.qos == 1 and not psp.State.decode(raw).online
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as cleaner:
            await cleaner.publish(topic, b"", qos=1, retain=True)  # no retained state left behind
