"""Sparkplug B host application (aiomqtt): consumes N/D BIRTH, DATA and DEATH, tracks bdSeq, seq
and aliases, and requests a rebirth on a sequence gap, an unknown alias or data before birth.

Protocol only: payloads are decoded by :func:`gongyun.sparkplug.decode.decode` into
:class:`~gongyun.sparkplug.decode.Metrics` columns handed to ``on_data``; what they mean (tags,
samples, tenants) is the caller's business.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gongyun.sparkplug import payload as spb
from gongyun.sparkplug.decode import Births, Metrics, decode
from gongyun.sparkplug.errors import NotOnline, SparkplugPayloadInvalid
from gongyun.sparkplug.flow import SocketReading
from gongyun.sparkplug.node import BDSEQ, REBIRTH
from gongyun.sparkplug.topics import NAMESPACE, QOS, STATE_QOS, Topic, parse_topic, state_topic

log = logging.getLogger(__name__)
Scalar = float | int | bool | str | None


@dataclass
class NodeState:
    """What the host knows about one edge node."""

    bdseq: int | None = None
    seq: int | None = None
    online: bool = False
    births: Births = field(default_factory=Births)
    last_rebirth_request: float = 0.0


# on_data(node key "group/node", device or None, metrics, kind), on_state(node key, device, online).
# on_data may return an awaitable: the host reads nothing more from the broker until it completes.
OnData = Callable[[str, str | None, Metrics, str], Awaitable[None] | None]
OnState = Callable[[str, str | None, bool], None]
OnError = Callable[[str, str, str], None]


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
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.broker, self.group, self.node, self.host_id = broker, group, node, host_id
        self.tls = tls
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
        await self.client.publish(
            str(Topic(group, "NCMD", node)), payload.SerializeToString(), qos=QOS["NCMD"]
        )

    async def handle(self, topic_text: str, raw: bytes) -> None:
        """Process one message (public so tests and the receiver can feed it directly)."""
        topic = parse_topic(topic_text)
        if topic is None or topic.kind in ("NCMD", "DCMD"):
            return
        key = f"{topic.group}/{topic.node}"
        state = self.nodes.setdefault(key, NodeState())
        try:
            payload = spb.parse(raw)
        except SparkplugPayloadInvalid as exc:
            self._error(key, "decode", f"{topic_text}: {exc}")
            return
        kind = topic.kind
        if kind == "NBIRTH":
            state.bdseq = _bdseq(payload)
            state.seq, state.online = payload.seq, True
            for name, message in state.births.node_birth(payload).items():
                self._error(key, "template", f"definition {name!r}: {message}")
            decoded = decode(payload, state.births, None, birth=True)
            for err_kind, message in decoded.errors:
                self._error(key, err_kind, f"{kind}: {message}")
            if self.on_state:
                self.on_state(key, None, True)
            await self._data(key, None, decoded.metrics.without({BDSEQ, REBIRTH}), kind)
            return
        if kind == "NDEATH":
            bd = _bdseq(payload)
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
        if kind == "DDEATH":
            if self.on_state:
                self.on_state(key, device, False)
            return
        if kind == "DBIRTH" and device is not None:
            state.births.device_birth(device)
        decoded = decode(payload, state.births, device, birth=kind == "DBIRTH")
        for err_kind, message in decoded.errors:
            self._error(key, err_kind, f"{kind}: {message}")
        if decoded.unknown_aliases:
            self._error(key, "alias", f"{decoded.unknown_aliases} metric(s) with unknown alias in {kind}")
            await self.request_rebirth(topic.group, topic.node)
        if kind == "DBIRTH" and self.on_state:
            self.on_state(key, device, True)
        if len(decoded.metrics):
            await self._data(key, device, decoded.metrics, kind)

    async def _data(self, key: str, device: str | None, metrics: Metrics, kind: str) -> None:
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
        state = state_topic(self.host_id) if self.host_id else None
        while True:
            will = (
                aiomqtt.Will(state, self._state_payload(False), qos=STATE_QOS, retain=True) if state else None
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
                    tls_context=self.tls,
                ) as client:
                    self.client, self.reading = client, SocketReading(client)
                    base = f"{NAMESPACE}/{self.group}/+/{self.node}"
                    await client.subscribe(base, qos=1)
                    await client.subscribe(f"{base}/+", qos=1)
                    if state:
                        await client.publish(state, self._state_payload(True), qos=STATE_QOS, retain=True)
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
                # counted and reported like any error: a broker that refuses the connection (no or a
                # revoked client certificate, a TLS failure) shows on the device's status
                self._error(f"{self.broker[0]}:{self.broker[1]}", "connect", str(exc))
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
        value: Scalar,
        properties: dict[str, str] | None = None,
    ) -> None:
        """Send an NCMD/DCMD writing one metric (string ``properties`` ride along); raise NotOnline."""
        if self.client is None:
            raise NotOnline("not connected to the broker")
        state = self.nodes.get(f"{group}/{node}", NodeState())
        dtype = state.births.types.get((device, name)) or int(spb.type_for(value))
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
            str(Topic(group, kind, node, device)), payload.SerializeToString(), qos=QOS[kind]
        )


def _bdseq(payload: Any) -> int | None:
    """The bdSeq metric of an NBIRTH or NDEATH."""
    return next((int(spb.metric_value(m) or 0) for m in payload.metrics if m.name == BDSEQ), None)
