"""A Sparkplug B edge node over MQTT (aiomqtt): births, deaths, bdSeq, seq, aliases, rebirth, STATE.

Used by the gateway's uplink and by the simulated packaging line. The node publishes only while
it is connected and, when ``primary_host`` is set, while that host application's STATE is online.
As Sparkplug 3.0 requires, births, data and DDEATH go at QoS 0, the NDEATH (the session's will,
carrying the bdSeq of its NBIRTH) at QoS 1; ``seq`` starts at 0 in every NBIRTH and wraps after
255; every metric but bdSeq, the rebirth control and Template definitions has an alias, births
carry names, aliases and datatypes, data the alias only; Template instances in births carry every
member of their definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gongyun.sparkplug import payload as spb
from gongyun.sparkplug import values as spbvalues
from gongyun.sparkplug.errors import NotOnline, SparkplugPayloadInvalid
from gongyun.sparkplug.topics import NAMESPACE, QOS, Topic, parse_topic, state_topic

log = logging.getLogger(__name__)
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"


@dataclass(slots=True)
class MetricDef:
    """A metric announced in a birth certificate."""

    name: str
    dtype: spb.SpbType
    alias: int
    value: Any = None
    properties: dict[str, tuple[spb.SpbType, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class Point:
    """One value to publish: metric name, value, source time (ms) and per-metric properties."""

    name: str
    value: Any
    ts_ms: int
    properties: dict[str, tuple[spb.SpbType, Any]] = field(default_factory=dict)


def value_type(value: Any) -> spb.SpbType:
    """The Sparkplug type for a Python value, DataSet and Template included."""
    if isinstance(value, spbvalues.DataSet):
        return spb.SpbType.DataSet
    if isinstance(value, spbvalues.Template):
        return spb.SpbType.Template
    return spb.type_for(value)


def parse_state(payload: bytes) -> bool:
    """True when a STATE payload says the host is online (Sparkplug 3.0 JSON or 2.2 text)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text in ("ONLINE", "OFFLINE"):
        return text == "ONLINE"
    try:
        return bool(json.loads(text).get("online"))
    except (ValueError, AttributeError):
        return False


class EdgeNode:
    """One Sparkplug B edge node with its devices; call :meth:`run` in a task."""

    def __init__(
        self,
        group: str,
        node: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        primary_host: str | None = None,
        on_command: Callable[[str | None, str, Any, dict[str, Any]], Awaitable[None]] | None = None,
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes], Awaitable[None]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: connect over TLS with this context (with the node's client certificate for mTLS)."""
        self.group, self.node, self.host, self.port = group, node, host, port
        self.tls = tls
        self.primary_host, self.on_command = primary_host, on_command
        self.subscriptions, self.on_message = list(subscriptions), on_message
        self.devices: dict[str, dict[str, MetricDef]] = {}
        self.device_online: dict[str, bool] = {}
        self.node_metrics: dict[str, MetricDef] = {}
        self.templates: dict[str, spbvalues.Template] = {}
        self.bdseq = -1
        self.seq = 0
        self._alias = 0
        self.client: aiomqtt.Client | None = None
        self.host_online = primary_host is None
        self.online = asyncio.Event()
        self.births = 0
        self.lock = asyncio.Lock()

    def define(self, device: str | None, name: str, dtype: spb.SpbType, value: Any = None) -> None:
        """Declare a metric of the node (device None) or of a device, before or after births."""
        table = self.node_metrics if device is None else self._device(device)
        if name not in table:
            self._alias += 1
            table[name] = MetricDef(name, dtype, self._alias, value)

    def _device(self, device: str) -> dict[str, MetricDef]:
        self.device_online.setdefault(device, True)
        return self.devices.setdefault(device, {})

    def define_template(self, name: str, definition: spbvalues.Template) -> None:
        """Declare a Template definition; it goes out in every NBIRTH (call before the node runs)."""
        if not definition.is_definition:
            raise ValueError("define_template needs a definition (is_definition=True)")
        self.templates[name] = definition

    def add_device(self, device: str, online: bool = True) -> None:
        """Declare a device (its metrics may follow); an offline device gets no DBIRTH until it is online."""
        self._device(device)
        self.device_online[device] = online

    async def set_device_online(self, device: str, online: bool) -> None:
        """Announce a device's state change: DBIRTH when it comes online, DDEATH when it goes offline."""
        self._device(device)
        if self.device_online[device] == online:
            return
        self.device_online[device] = online
        client = self.client
        if client is None or not self.online.is_set():
            return  # the next birth reflects the state
        async with self.lock:
            if online:
                await self._dbirth(client, device)
            else:
                payload = spb.Payload()
                payload.timestamp = spb.now_ms()
                payload.seq = self._next_seq()
                await client.publish(
                    self.topic("DDEATH", device), payload.SerializeToString(), qos=QOS["DDEATH"]
                )

    def topic(self, kind: str, device: str | None = None) -> str:
        """Topic of a message of this node."""
        return str(Topic(self.group, kind, self.node, device))

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    def _payload(
        self, metrics: Sequence[tuple[MetricDef, Point | None]], *, birth: bool, seq: bool = True
    ) -> bytes:
        payload = spb.Payload()
        payload.timestamp = spb.now_ms()
        if seq:
            payload.seq = self._next_seq()
        for mdef, point in metrics:
            metric = payload.metrics.add()
            if birth:
                metric.name = mdef.name
            if mdef.alias:
                metric.alias = mdef.alias
            metric.timestamp = point.ts_ms if point else payload.timestamp
            value = point.value if point else mdef.value
            if birth and isinstance(value, spbvalues.Template) and not value.is_definition:
                value = spbvalues.complete(value, self.templates)
            spbvalues.set_value(metric, value, mdef.dtype)
            props = point.properties if point else mdef.properties
            if props:
                spbvalues.encode_properties(metric.properties, props)
        return payload.SerializeToString()  # type: ignore[no-any-return]

    def _definitions(self) -> list[tuple[MetricDef, Point | None]]:
        """Template definitions as NBIRTH metrics (no alias: they are never sent in DATA)."""
        return [(MetricDef(name, spb.SpbType.Template, 0, tpl), None) for name, tpl in self.templates.items()]

    def _death(self) -> bytes:
        bd = MetricDef(BDSEQ, spb.SpbType.Int64, 0, self.bdseq)
        payload = spb.Payload()
        payload.timestamp = spb.now_ms()
        metric = payload.metrics.add()
        metric.name = bd.name
        spb.set_metric_value(metric, bd.value, bd.dtype)
        return payload.SerializeToString()  # type: ignore[no-any-return]

    async def birth(self) -> None:
        """Publish NBIRTH and every DBIRTH (seq restarts at 0)."""
        client = self.client
        if client is None:
            raise NotOnline("not connected")
        async with self.lock:
            self.seq = 0
            node = [
                (MetricDef(BDSEQ, spb.SpbType.Int64, 0, self.bdseq), None),
                (MetricDef(REBIRTH, spb.SpbType.Boolean, 0, False), None),
                *self._definitions(),
                *[(m, None) for m in self.node_metrics.values()],
            ]
            await client.publish(self.topic("NBIRTH"), self._payload(node, birth=True), qos=QOS["NBIRTH"])
            for device in self.devices:
                if self.device_online.get(device, True):
                    await self._dbirth(client, device)
            self.births += 1

    async def _dbirth(self, client: aiomqtt.Client, device: str) -> None:
        metrics = [(m, None) for m in self.devices[device].values()]
        await client.publish(
            self.topic("DBIRTH", device), self._payload(metrics, birth=True), qos=QOS["DBIRTH"]
        )

    async def publish(self, device: str | None, points: list[Point]) -> None:
        """Publish NDATA/DDATA; unknown metrics are declared and re-birthed first. Raise NotOnline.

        A device that was announced offline (DDEATH) gets no DDATA until it is online again.
        """
        client = self.client
        if client is None or not self.online.is_set():
            raise NotOnline("edge node offline")
        if device is not None and not self.device_online.get(device, True):
            raise NotOnline(f"device {device} is offline")
        table = self.node_metrics if device is None else self._device(device)
        new = [p for p in points if p.name not in table]
        for point in new:
            self.define(device, point.name, value_type(point.value), point.value)
        if new and device is None:
            await self.birth()
        async with self.lock:
            if new and device is not None:
                await self._dbirth(client, device)
            for point in points:
                table[point.name].value = point.value
            data = self._payload([(table[p.name], p) for p in points], birth=False)
            kind = "NDATA" if device is None else "DDATA"
            await client.publish(self.topic(kind, device), data, qos=QOS[kind])

    async def publish_payload(self, kind: str, device: str | None, payload: Any) -> None:
        """Publish a hand-built ``spb.Payload`` as NDATA/DDATA in sequence (fault injection, tools)."""
        client = self.client
        if client is None or not self.online.is_set():
            raise NotOnline("edge node offline")
        async with self.lock:
            payload.timestamp = payload.timestamp or spb.now_ms()
            payload.seq = self._next_seq()
            await client.publish(self.topic(kind, device), payload.SerializeToString(), qos=QOS[kind])

    async def _handle(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        raw = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        if self.primary_host and topic in (state_topic(self.primary_host), f"STATE/{self.primary_host}"):
            was, self.host_online = self.host_online, parse_state(raw)
            if self.host_online and not was:
                await self.birth()
                self.online.set()
            elif not self.host_online:
                self.online.clear()
            return
        parsed = parse_topic(topic)
        if parsed is None or parsed.kind not in ("NCMD", "DCMD"):
            if self.on_message is not None:
                await self.on_message(topic, raw)
            return
        try:
            payload = spb.parse(raw)
        except SparkplugPayloadInvalid as exc:
            log.warning("ignoring undecodable %s: %s", topic, exc)
            return
        for metric in payload.metrics:
            value = spb.metric_value(metric)
            if parsed.kind == "NCMD" and metric.name == REBIRTH and value:
                log.info("rebirth requested for %s/%s", self.group, self.node)
                await self.birth()
            elif self.on_command is not None:
                props = {
                    k: spb.metric_value(v)
                    for k, v in zip(metric.properties.keys, metric.properties.values, strict=False)
                }
                await self.on_command(parsed.device, metric.name, value, props)

    async def run(self, retry_delay: float = 0.5) -> None:
        """Connect, birth, serve commands; reconnect forever (new bdSeq per session)."""
        while True:
            self.bdseq = (self.bdseq + 1) % 256
            will = aiomqtt.Will(self.topic("NDEATH"), self._death(), qos=QOS["NDEATH"])
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=f"{self.group}-{self.node}",
                    will=will,
                    clean_session=True,
                    tls_context=self.tls,
                ) as client:
                    self.client = client
                    await client.subscribe(f"{NAMESPACE}/{self.group}/NCMD/{self.node}", qos=1)
                    await client.subscribe(f"{NAMESPACE}/{self.group}/DCMD/{self.node}/+", qos=1)
                    for extra in self.subscriptions:
                        await client.subscribe(extra, qos=1)
                    if self.primary_host:
                        self.host_online = False
                        await client.subscribe(state_topic(self.primary_host), qos=1)
                    else:
                        await self.birth()
                        self.online.set()
                    async for message in client.messages:
                        await self._handle(message)
            except aiomqtt.MqttError as exc:
                log.warning("edge node %s/%s: MQTT error %s; reconnecting", self.group, self.node, exc)
            finally:
                self.online.clear()
                self.client = None
            await asyncio.sleep(retry_delay)

    async def close(self) -> None:
        """Publish NDEATH (clean shutdown) and disconnect."""
        client = self.client
        self.online.clear()
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topic("NDEATH"), self._death(), qos=QOS["NDEATH"])
