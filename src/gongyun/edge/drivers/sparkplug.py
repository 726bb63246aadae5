"""Sparkplug B host application (aiomqtt): consumes N/D BIRTH, DATA and DEATH, tracks bdSeq, seq
and aliases, and requests a rebirth on a sequence gap, an unknown alias or data before birth.

:class:`SparkplugHost` is protocol only (metrics in, callbacks out); :class:`SparkplugDriver`
maps one edge node's metrics to the tags of a profile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from gongyun import __version__
from gongyun.core.types import Quality
from gongyun.edge import spb, spbvalues
from gongyun.edge.drivers.base import Driver, DriverManifest, Value
from gongyun.edge.errors import DataSetInvalid, DecodeError, DeviceError, TemplateInvalid
from gongyun.edge.profiles import Tag
from gongyun.edge.spnode import REBIRTH

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Metric:
    """A decoded metric: name resolved from its alias, value, source time, properties.

    Template instances arrive flattened, one metric per leaf member named ``instance/member``;
    a DataSet arrives as a :class:`~gongyun.edge.spbvalues.DataSet`, bytes as ``bytes``.
    """

    name: str
    value: Value | spbvalues.DataSet | bytes
    ts: datetime
    datatype: int
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeState:
    """What the host knows about one edge node."""

    bdseq: int | None = None
    seq: int | None = None
    online: bool = False
    aliases: dict[tuple[str | None, int], str] = field(default_factory=dict)
    types: dict[tuple[str | None, str], int] = field(default_factory=dict)
    templates: dict[str, spbvalues.Template] = field(default_factory=dict)
    instance_refs: dict[tuple[str | None, str], str] = field(default_factory=dict)
    last_rebirth_request: float = 0.0


def quality_property(props: dict[str, Any]) -> Quality:
    """Quality from a ``Quality`` property (OPC DA codes: 192 good, 64-127 uncertain, else bad)."""
    code = props.get("Quality")
    if code is None:
        return Quality.good
    code = int(code)
    return Quality.good if code >= 192 else Quality.uncertain if 64 <= code < 128 else Quality.bad


def sample_value(value: Value | spbvalues.DataSet | bytes) -> Value:
    """What a tag sample carries for a metric value: a DataSet as JSON text, bytes as hex."""
    if isinstance(value, spbvalues.DataSet):
        return value.to_json()
    if isinstance(value, bytes):
        return value.hex()
    return value


# on_data(node key "group/node", device or None, metrics, kind), on_state(node key, device, online).
# on_data may return an awaitable: the host reads nothing more from the broker until it completes.
OnData = Callable[[str, str | None, list[Metric], str], Awaitable[None] | None]
OnState = Callable[[str, str | None, bool], None]
OnError = Callable[[str, str, str], None]


class SocketReading:
    """Pause and resume reading one aiomqtt client's socket, so that TCP flow control and then the
    broker's queue hold what the host cannot take yet (nothing is read into memory meanwhile).

    aiomqtt has no public switch for this: it reads the socket from an event loop reader that it
    installs, so pausing removes that reader and resuming installs an equivalent one (paho's
    ``loop_read``; a failure ends the connection as aiomqtt's own reader does). Without a socket
    (not connected, or another library version) nothing is paused and the bounded incoming queue
    of the client is the backstop. While paused paho still sends keep-alives; a pause longer than
    about twice the keep-alive interval ends the connection and the host reconnects.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.paho: Any = getattr(client, "_client", None)
        self._sock: Any = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        """Whether the socket is not being read now."""
        return self._sock is not None

    def pause(self) -> bool:
        """Stop reading; False when already paused or not possible."""
        sock = self.paho.socket() if self.paho is not None else None
        if self._sock is not None or sock is None or sock.fileno() < 0:
            return False
        asyncio.get_running_loop().remove_reader(sock.fileno())
        self._sock = sock
        self.pauses += 1
        return True

    def resume(self) -> None:
        """Read again (unless the connection closed meanwhile)."""
        sock, self._sock = self._sock, None
        if sock is not None and self.paho.socket() is sock and sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        try:
            while True:
                self.paho.loop_read()
                pending = getattr(self.paho.socket(), "pending", None)  # TLS: decoded bytes left
                if pending is None or pending() <= 0:
                    break
        except Exception as exc:  # the connection broke: end it as aiomqtt's reader would
            disconnected = getattr(self.client, "_disconnected", None)
            if isinstance(disconnected, asyncio.Future) and not disconnected.done():
                disconnected.set_exception(exc)


class SparkplugHost:
    """A Sparkplug B host application for the edge nodes matching ``group``/``node`` (``+`` for any).

    Flow control: while ``on_data`` is busy (it returned an awaitable) or ``max_messages`` received
    messages wait to be handled, the broker connection is not read (:class:`SocketReading`); the
    client's incoming queue is capped at four times that as a backstop (beyond it aiomqtt drops
    messages, which shows as a sequence gap: the host asks for a rebirth).
    """

    def __init__(
        self,
        broker: tuple[str, int],
        group: str,
        node: str = "+",
        *,
        host_id: str | None = None,
        on_data: OnData,
        on_state: OnState | None = None,
        on_error: OnError | None = None,
        rebirth_holdoff: float = 1.0,
        username: str | None = None,
        password: str | None = None,
        max_messages: int = 32,
    ) -> None:
        self.broker, self.group, self.node, self.host_id = broker, group, node, host_id
        self.max_messages = max_messages
        self.reading: SocketReading | None = None
        self.read_pauses = 0
        self.username, self.password = username, password
        self.on_data, self.on_state, self.on_error = on_data, on_state, on_error
        self.rebirth_holdoff = rebirth_holdoff
        self.nodes: dict[str, NodeState] = {}
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.rebirths_requested = 0
        self.errors: dict[str, int] = {}

    def _error(self, key: str, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        log.warning("sparkplug %s: %s: %s", key, kind, message)
        if self.on_error:
            self.on_error(key, kind, message)

    def _state_payload(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": spb.now_ms()}).encode()

    async def request_rebirth(self, group: str, node: str) -> None:
        """Send ``Node Control/Rebirth`` to an edge node (rate limited per node)."""
        state = self.nodes.setdefault(f"{group}/{node}", NodeState())
        now = time.monotonic()
        if now - state.last_rebirth_request < self.rebirth_holdoff or self.client is None:
            return
        state.last_rebirth_request = now
        payload = spb.Payload()
        payload.timestamp = spb.now_ms()
        metric = payload.metrics.add()
        metric.name = REBIRTH
        spb.set_metric_value(metric, True, spb.SpbType.Boolean)
        self.rebirths_requested += 1
        await self.client.publish(str(spb.Topic(group, "NCMD", node)), payload.SerializeToString(), qos=0)

    def _metrics(
        self, state: NodeState, device: str | None, payload: Any, birth: bool
    ) -> tuple[list[Metric], int, list[tuple[str, str]]]:
        """Decoded metrics, the number with an unknown alias, and (kind, message) per rejected metric."""
        out: list[Metric] = []
        unknown = 0
        errors: list[tuple[str, str]] = []
        for m in payload.metrics:
            if m.HasField("name") and m.name:
                name = m.name
                if m.HasField("alias"):
                    state.aliases[(device, m.alias)] = name
            elif m.HasField("alias") and (device, m.alias) in state.aliases:
                name = state.aliases[(device, m.alias)]
            else:
                unknown += 1
                continue
            if m.WhichOneof("value") == "template_value" and m.template_value.is_definition:
                continue  # definitions were taken from the NBIRTH already
            if birth:
                state.types[(device, name)] = m.datatype
            stamp = m.timestamp or payload.timestamp
            ts = datetime.fromtimestamp(stamp / 1000, UTC) if stamp else datetime.now(UTC)
            dtype = m.datatype or state.types.get((device, name), 0)
            try:
                props = spbvalues.decode_properties(m.properties)
                value = spbvalues.decode_value(
                    m, state.templates, birth=birth, dtype=dtype, ref=state.instance_refs.get((device, name))
                )
            except (DataSetInvalid, TemplateInvalid) as exc:
                kind = "dataset" if isinstance(exc, DataSetInvalid) else "template"
                errors.append((kind, f"metric {name!r}: {exc.message}"))
                continue
            if isinstance(value, spbvalues.Template):
                if value.ref:
                    state.instance_refs[(device, name)] = value.ref
                out.extend(
                    Metric(path, member.value, ts, int(member.dtype), {**props, **member.properties})
                    for path, member in value.flatten(name)
                )
                continue
            out.append(Metric(name, value, ts, dtype, props))
        return out, unknown, errors

    def _definitions(self, key: str, state: NodeState, payload: Any) -> None:
        named = {
            m.name: m.template_value
            for m in payload.metrics
            if m.WhichOneof("value") == "template_value" and m.template_value.is_definition
        }
        state.templates, failed = spbvalues.decode_definitions(named)
        for name, message in failed.items():
            self._error(key, "template", f"definition {name!r}: {message}")

    async def handle(self, topic_text: str, raw: bytes) -> None:
        """Process one message (public so tests and the receiver can feed it directly)."""
        topic = spb.parse_topic(topic_text)
        if topic is None or topic.kind in ("NCMD", "DCMD"):
            return
        key = f"{topic.group}/{topic.node}"
        state = self.nodes.setdefault(key, NodeState())
        try:
            payload = spb.parse(raw)
        except DecodeError as exc:
            self._error(key, "decode", f"{topic_text}: {exc}")
            return
        kind = topic.kind
        if kind == "NBIRTH":
            state.aliases = {k: v for k, v in state.aliases.items() if k[0] is not None}
            state.bdseq = next(
                (int(spb.metric_value(m) or 0) for m in payload.metrics if m.name == "bdSeq"), None
            )
            state.seq, state.online = payload.seq, True
            state.instance_refs.clear()
            self._definitions(key, state, payload)
            metrics, _, errors = self._metrics(state, None, payload, birth=True)
            for err_kind, message in errors:
                self._error(key, err_kind, f"{kind}: {message}")
            if self.on_state:
                self.on_state(key, None, True)
            await self._data(key, None, [m for m in metrics if m.name not in ("bdSeq", REBIRTH)], kind)
            return
        if kind == "NDEATH":
            bd = next((int(spb.metric_value(m) or 0) for m in payload.metrics if m.name == "bdSeq"), None)
            if bd is not None and state.bdseq is not None and bd != state.bdseq:
                log.info("ignoring stale NDEATH of %s (bdSeq %s, current %s)", key, bd, state.bdseq)
                return
            state.online, state.seq = False, None
            if self.on_state:
                self.on_state(key, None, False)
            return
        if state.seq is None:  # data from a node whose birth we have not seen
            self._error(key, "no_birth", f"{kind} before NBIRTH")
            await self.request_rebirth(topic.group, topic.node)
            return
        expected = (state.seq + 1) % 256
        state.seq = payload.seq
        if payload.seq != expected:
            self._error(key, "sequence", f"{kind} seq {payload.seq}, expected {expected}")
            await self.request_rebirth(topic.group, topic.node)
        device = topic.device
        if kind == "DBIRTH":
            state.aliases = {k: v for k, v in state.aliases.items() if k[0] != device}
        if kind == "DDEATH":
            if self.on_state:
                self.on_state(key, device, False)
            return
        metrics, unknown, errors = self._metrics(state, device, payload, birth=kind == "DBIRTH")
        for err_kind, message in errors:
            self._error(key, err_kind, f"{kind}: {message}")
        if unknown:
            self._error(key, "alias", f"{unknown} metric(s) with unknown alias in {kind}")
            await self.request_rebirth(topic.group, topic.node)
        if kind == "DBIRTH" and self.on_state:
            self.on_state(key, device, True)
        if metrics:
            await self._data(key, device, metrics, kind)

    async def _data(self, key: str, device: str | None, metrics: list[Metric], kind: str) -> None:
        """Hand metrics to ``on_data``; while it is busy, stop reading from the broker."""
        busy = self.on_data(key, device, metrics, kind)
        if busy is None:
            return
        reading = self.reading
        paused = reading is not None and reading.pause()
        self.read_pauses += paused
        try:
            await busy
        finally:
            if paused and reading is not None:
                reading.resume()

    async def run(self, retry_delay: float = 0.5) -> None:
        """Connect, announce STATE online, consume; reconnect forever."""
        state_topic = f"{spb.NAMESPACE}/STATE/{self.host_id}" if self.host_id else None
        while True:
            will = (
                aiomqtt.Will(state_topic, self._state_payload(False), qos=1, retain=True)
                if state_topic
                else None
            )
            try:
                async with aiomqtt.Client(
                    self.broker[0],
                    self.broker[1],
                    username=self.username,
                    password=self.password,
                    will=will,
                    clean_session=True,
                    max_queued_incoming_messages=4 * self.max_messages,
                ) as client:
                    self.client, self.reading = client, SocketReading(client)
                    base = f"{spb.NAMESPACE}/{self.group}/+/{self.node}"
                    await client.subscribe(base, qos=1)
                    await client.subscribe(f"{base}/+", qos=1)
                    if state_topic:
                        await client.publish(state_topic, self._state_payload(True), qos=1, retain=True)
                    self.connected.set()
                    for key in list(self.nodes):  # a new session may have missed births: ask again
                        group, node = key.split("/", 1)
                        self.nodes[key].seq = None
                        await self.request_rebirth(group, node)
                    async for message in client.messages:
                        raw = message.payload if isinstance(message.payload, bytes) else b""
                        try:
                            await self.handle(str(message.topic), raw)
                        except aiomqtt.MqttError:
                            raise
                        except Exception as exc:  # one bad message must not stop the host
                            log.exception("sparkplug host: failed to process %s", message.topic)
                            self._error(str(message.topic), "internal", repr(exc))
                        self._follow_queue(len(client.messages))
            except aiomqtt.MqttError as exc:
                log.warning("sparkplug host: MQTT error %s; reconnecting", exc)
            finally:
                self.connected.clear()
                self.client = self.reading = None
            await asyncio.sleep(retry_delay)

    def _follow_queue(self, waiting: int) -> None:
        """Stop reading while ``max_messages`` received messages wait; read again once they are handled."""
        reading = self.reading
        if reading is None:
            return
        if not reading.paused and waiting >= self.max_messages:
            if reading.pause():
                self.read_pauses += 1
        elif reading.paused and waiting == 0:
            reading.resume()

    async def command(
        self,
        group: str,
        node: str,
        device: str | None,
        name: str,
        value: Value,
        properties: dict[str, str] | None = None,
    ) -> None:
        """Send an NCMD/DCMD writing one metric (string ``properties`` ride along)."""
        if self.client is None:
            raise DeviceError("not connected to the broker", kind="connect")
        state = self.nodes.get(f"{group}/{node}", NodeState())
        dtype = state.types.get((device, name)) or int(spb.type_for(value))
        payload = spb.Payload()
        payload.timestamp = spb.now_ms()
        metric = payload.metrics.add()
        metric.name = name
        spb.set_metric_value(metric, value, spb.SpbType(dtype))
        for key, text in (properties or {}).items():
            metric.properties.keys.append(key)
            spb.set_metric_value(metric.properties.values.add(), text, spb.SpbType.String, type_field="type")
        kind = "DCMD" if device else "NCMD"
        await self.client.publish(
            str(spb.Topic(group, kind, node, device)), payload.SerializeToString(), qos=1
        )


class SparkplugDriver(Driver):
    """One Sparkplug B edge node (and optionally one of its devices) as a gateway device."""

    protocol = "sparkplug"
    manifest = DriverManifest(
        name="sparkplug",
        version=__version__,
        protocol="sparkplug",
        library="aiomqtt==2.5.1, protobuf==7.36.2",
        reads="Sparkplug B births, data and deaths",
        writes="NCMD/DCMD metric writes",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host, _, port = self.config.broker.rpartition(":")
        self.by_metric = {(t.device or self.config.sparkplug_device, t.metric): t for t in self.profile.tags}
        self.last: dict[str, Value] = {}
        self.host = SparkplugHost(
            (host or "127.0.0.1", int(port or 1883)),
            self.config.group or "",
            self.config.node or "",
            host_id=self.config.host_id,
            on_data=self._on_data,
            on_state=self._on_state,
            on_error=self._on_error,
        )

    def _on_data(self, key: str, device: str | None, metrics: list[Metric], kind: str) -> None:
        samples = []
        for m in metrics:
            tag = self.by_metric.get((device, m.name))
            if tag is None:
                continue
            value = sample_value(m.value)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and (tag.scale != 1 or tag.offset != 0)
            ):
                value = float(value) * tag.scale + tag.offset
            quality = quality_property(m.properties) if value is not None else Quality.bad
            self.last[tag.name] = value
            samples.append(self.sample(tag, value, m.ts, quality))
        if samples:
            self.status.good()
            self.emit(samples)

    def _on_state(self, key: str, device: str | None, online: bool) -> None:
        mine = [
            t
            for t in self.profile.tags
            if device is None or (t.device or self.config.sparkplug_device) == device
        ]
        if device is None:
            self.status.connected = online
        if not online:
            self.mark_bad(mine)

    def _on_error(self, key: str, kind: str, message: str) -> None:
        self.status.error(kind, message)

    async def run(self) -> None:
        """Consume the node's messages until cancelled."""
        await self.host.run(self.config.reconnect_delay)

    async def read(self, tag: Tag) -> Value:
        """The last value reported (Sparkplug is report-by-exception)."""
        if tag.name not in self.last:
            raise DeviceError(f"no value reported yet for {tag.name}", kind="no_data")
        return self.last[tag.name]

    async def write(self, tag: Tag, value: Value) -> None:
        """Send a DCMD (or NCMD for node metrics) to the edge node."""
        await self.host.command(
            self.config.group or "",
            self.config.node or "",
            tag.device or self.config.sparkplug_device,
            tag.metric or tag.name,
            value,
        )
